// Every rankflow feature once, for running across hosts (tests/multinode):
// parallel_map, mapreduce, an error raised on the last host, tracking from
// every rank into one experiment file, and tasks routed by host label. Rank 0
// prints one line per check for the test script to compare.
#include <cstdio>
#include <set>
#include <string>

#include <rankflow/rankflow.hpp>

int main(int argc, char** argv) {
  rankflow::Runtime rt(argc, argv);
  const bool root = rt.is_scheduler();
  const std::set<std::string> host_set(rt.hosts().begin(), rt.hosts().end());
  const std::string last_host = *host_set.rbegin();
  if (root) {
    std::string all;
    for (const auto& h : host_set) all += (all.empty() ? "" : " ") + h;
    std::printf("hosts: %s\n", all.c_str());
  }

  // parallel_map: which host computed each item; results in order on rank 0.
  const auto where = rt.parallel_map(
      rankflow::range(0, 2000), [&](std::int64_t i) { return std::make_pair(i * i, rt.host()); }, {.chunk_size = 5});
  if (root) {
    std::set<std::string> seen;
    bool ordered = true;
    for (std::size_t i = 0; i < where.size(); ++i) {
      seen.insert(where[i].second);
      ordered = ordered && where[i].first == static_cast<std::int64_t>(i * i);
    }
    std::printf("parallel_map: %zu results, in order %s, computed on %zu hosts\n", where.size(), ordered ? "yes" : "NO",
                seen.size());
  }

  // mapreduce: bit-identical on any layout.
  const double harmonic = rt.mapreduce(
      rankflow::range(1, 1'000'001), [](std::int64_t i) { return 1.0 / static_cast<double>(i); }, std::plus<>{});
  if (root) std::printf("mapreduce: %.17g\n", harmonic);

  // An error on a rank of the last host reaches every rank, naming that host.
  try {
    rt.parallel_map(rankflow::range(0, 400), [&](std::int64_t i) -> int {
      if (rt.host() == last_host) throw std::runtime_error("bad item " + std::to_string(i) + " on " + rt.host());
      return 0;
    });
    if (root) std::printf("error: none raised\n");
  } catch (const rankflow::task_error& e) {
    if (root) std::printf("error: host %s rank %d: %s\n", e.host().c_str(), e.rank(), e.original_message().c_str());
  }

  // Tracking from every rank, on both hosts, into one file.
  {
    auto run = rt.start_run("multinode");
    run["ranks/" + std::to_string(rt.rank()) + "/host"] = rt.host();
    run["hosts_seen"].add(rt.host());
    run["per_rank"].append(static_cast<std::int64_t>(rt.rank()));  // steps assigned by rank 0 in arrival order
    run.stop();
    if (root) std::printf("tracked: %s in %s\n", run.id().c_str(), run.experiment().c_str());
  }

  // Tasks routed by the host-name label.
  rt.define("host", [](rankflow::task_context& ctx) { return ctx.host(); });
  rt.drive([&](rankflow::Scheduler& s) {
    for (const auto& h : host_set) {
      bool has_worker = false;
      for (const auto& w : s.labels()) has_worker = has_worker || w.has_label(h);
      if (!has_worker) continue;  // with few ranks, rank 0's host may have no worker
      std::printf("task for %s ran on %s\n", h.c_str(), s.require(h).submit<std::string>("host").get().c_str());
    }
  });
  return 0;
}
