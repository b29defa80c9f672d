// mpirun -n N bigsum [--rows 80000] [--cols 80000] [--seed S] [--mode auto|materialize|stream] [--block-rows B] [--isa auto|scalar|avx2|avx512]
#include <charconv>
#include <cstdio>
#include <limits>
#include <map>

#include <CLI/CLI.hpp>

#include "bigsum.hpp"

namespace {

// CLI11 turns "99999999999999999999" into INT64_MAX and "-1" into a huge
// unsigned seed without a word, and its range check prints "Value 0 not in
// range 0.000000 to 1.79e308". Numbers are checked here first, strictly.
template <class T>
CLI::Validator whole_number(T lo, T hi, const char* what) {
  return CLI::Validator(
      [lo, hi, what](std::string& text) -> std::string {
        T v{};
        const char* b = text.data();
        const char* e = b + text.size();
        const auto [end, ec] = std::from_chars(b, e, v);
        const std::string range = std::to_string(lo) + " to " + std::to_string(hi);
        if (ec == std::errc::result_out_of_range || (ec == std::errc() && end == e && (v < lo || v > hi))) {
          return "'" + text + "' is out of range: " + what + " from " + range;
        }
        if (ec != std::errc() || end != e) return "'" + text + "' is not a whole number: " + what + " from " + range;
        return {};
      },
      std::string(what));
}

}  // namespace

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv, {.program_handles_help = true});
  const bool root = rt.is_scheduler();

  bigsum::params p;
  CLI::App app{
      "bigsum: the sum of a rows x cols matrix of uniform [0, 1) doubles, on every MPI rank.\n"
      "The matrix and the printed sum are the same for any number of ranks and either mode."};
  constexpr auto int_max = std::numeric_limits<std::int64_t>::max();
  app.add_option("--rows", p.rows, "matrix rows")
      ->capture_default_str()
      ->check(whole_number<std::int64_t>(1, int_max, "give rows"));
  app.add_option("--cols", p.cols, "matrix columns")
      ->capture_default_str()
      ->check(whole_number<std::int64_t>(1, int_max, "give columns"));
  app.add_option("--seed", p.seed, "generator seed")
      ->capture_default_str()
      ->check(whole_number<std::uint64_t>(0, std::numeric_limits<std::uint64_t>::max(), "give a seed"));
  app.add_option("--mode", p.how,
                 "materialize: each rank fills and sums its rows in memory; stream: rows are generated and summed "
                 "on the fly in constant memory; auto: materialize when it fits")
      ->transform(
          CLI::CheckedTransformer(std::map<std::string, bigsum::mode>{{"auto", bigsum::mode::automatic},
                                                                      {"materialize", bigsum::mode::materialize},
                                                                      {"stream", bigsum::mode::stream}}))
      ->default_str("auto");
  app.add_option("--block-rows", p.block_rows, "rows per partition (0: automatic, about 2048 partitions)")
      ->capture_default_str()
      ->check(whole_number<std::int64_t>(0, int_max, "give rows per partition (0: automatic)"));
  app.add_option_function<std::string>(
         "--isa",
         [&p](const std::string& v) { bigsum::parse_isa(v, p.generator); },  // checked below, before this runs
         "generator path: auto (each rank's best), scalar, avx2 or avx512. The matrix and the sum are the same "
         "on every path; only the speed differs (tests pin scalar to keep their timings)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            std::optional<bigsum::isa> ignored;
            return bigsum::parse_isa(v, ignored) ? std::string()
                                                 : "'" + v + "' is not one of auto, scalar, avx2, avx512";
          },
          "auto|scalar|avx2|avx512"))
      ->default_str("auto");
  app.add_flag("--save", p.save,
               "store the materialised matrix in the run as the Array 'matrix' (collective parallel HDF5 write)");
  app.footer("\n" + rankflow::help_text());

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    if (root) std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    if (root) std::fprintf(stderr, "bigsum: error: %s\nRun with --help for usage.\n", e.what());
    return 2;
  }

  try {
    // Every bigsum is a tracked run in --experiment (default rankflow.h5);
    // --tracking-mode debug tracks nothing.
    rankflow::Run run = rt.start_run("bigsum");
    bigsum::track_params(rt, run, p);
    const bigsum::result r = bigsum::run(rt, p, &run);
    bigsum::track(rt, run, p, r);
    run.stop();
    if (root) {
      std::printf("bigsum: %lld x %lld doubles (%s), seed %llu, %s mode, %d ranks, %lld partitions, %s generator\n",
                  static_cast<long long>(p.rows), static_cast<long long>(p.cols),
                  rankflow::format_bytes(r.bytes).c_str(), static_cast<unsigned long long>(p.seed),
                  bigsum::to_string(r.used), rt.size(), static_cast<long long>(r.partitions),
                  bigsum::to_string(r.generator));
      std::printf("The sum is %.6f.\n", r.sum);
      std::printf("Exact sum: %a\n", r.sum);
      std::printf("Computing it took %.0fms.\n", r.sum_ms);
      if (r.used == bigsum::mode::materialize) {
        std::printf("Generating the matrix took %.0fms; summing it took %.0fms.\n", r.generate_ms, r.sum_ms);
      } else {
        std::printf("Generating and summing (streamed together) took %.0fms.\n", r.sum_ms);
      }
      if (p.save) {
        std::printf("Saved the matrix as %s/runs/%s/matrix in %.0fms.\n", run.experiment().c_str(), run.id().c_str(),
                    r.save_ms);
      }
      std::printf("Tracked as run %s in %s (rankflow show %s %s).\n", run.id().c_str(), run.experiment().c_str(),
                  run.experiment().c_str(), run.id().c_str());
    }
  } catch (const rankflow::usage_error& e) {
    if (root) std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const rankflow::resource_error& e) {
    if (root) std::fprintf(stderr, "%s\n", e.what());
    return 3;
  } catch (const rankflow::interrupted& e) {
    // A time limit or scancel: the run is marked killed; 75 (EX_TEMPFAIL)
    // tells a batch script "try again later".
    if (root) std::fprintf(stderr, "bigsum: %s\n", e.what());
    return 75;
  } catch (const rankflow::storage_error& e) {
    if (root) std::fprintf(stderr, "bigsum: %s\n", e.what());
    return 4;
  }
  return 0;
}
