// Command lines: rankflow::parse_config (every rankflow program's flags,
// both overloads) and parse_submission + batch_script (`--with slurm`).
// The input is the argument list, NUL-separated. Any arguments must parse or
// be refused with usage_error, and:
//  - parse_config(argc, argv) leaves exactly the arguments it did not take,
//    in order (the program parses those);
//  - the batch script holds no line that the arguments put there: values go
//    into #SBATCH lines and a comment, where a newline would start a shell
//    command of the job.
#include <cstring>
#include <string>
#include <vector>

#include <rankflow/runtime/config.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/runtime/with_slurm.hpp>

#include "fuzz_util.hpp"

using namespace rankflow;

namespace {

std::size_t lines_before_launch(const std::string& script) {
  // The first launch line is the template's: a quoted argument may hold
  // "\nexec mpirun" itself, after it, where it is harmless.
  const auto at = script.find("\nexec mpirun");
  if (at == std::string::npos) fuzz::violated("the batch script has no launch line");
  std::size_t n = 0;
  for (std::size_t i = 0; i < at; ++i) n += script[i] == '\n';
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Flags also come from the environment; the fuzzer's must not decide.
  for (const char* v :
       {"RANKFLOW_MAX_WORKERS", "RANKFLOW_MAX_NUM_SPLITS", "RANKFLOW_LOG_LEVEL", "RANKFLOW_PROGRESS",
        "RANKFLOW_PROGRESS_INTERVAL", "RANKFLOW_SEGMENT_BYTES", "RANKFLOW_EXPERIMENT", "RANKFLOW_TRACKING_MODE", "RANKFLOW_SWEEP", "RANKFLOW_PROVENANCE",
        "RANKFLOW_LABELS", "RANKFLOW_PEER_TIMEOUT", "RANKFLOW_RUN_NAME", "RANKFLOW_RESUME", "RANKFLOW_WITH"})
    ::unsetenv(v);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args;
  const char* p = reinterpret_cast<const char*>(data);
  const char* end = p + size;
  while (p < end) {
    const char* z = static_cast<const char*>(std::memchr(p, '\0', static_cast<std::size_t>(end - p)));
    if (!z) z = end;
    args.emplace_back(p, z);
    p = z + 1;
  }

  std::vector<std::string> rest;
  bool parsed = false;
  try {
    (void)parse_config(args, &rest);
    parsed = true;
  } catch (const usage_error&) {
  }
  // The argv overload: same decision, and argv compacted to `rest`.
  std::vector<std::string> storage{"prog"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  int argc = static_cast<int>(storage.size());
  try {
    (void)parse_config(argc, argv.data());
    if (!parsed) fuzz::violated("parse_config(argc, argv) accepted what parse_config(args) refused");
    if (static_cast<std::size_t>(argc) != rest.size() + 1) fuzz::violated("argc after parse_config != 1 + rest");
    for (std::size_t i = 0; i < rest.size(); ++i)
      if (rest[i] != argv[i + 1]) fuzz::violated("argv after parse_config differs from rest");
  } catch (const usage_error&) {
    if (parsed) fuzz::violated("parse_config(argc, argv) refused what parse_config(args) accepted");
  }

  std::vector<std::string> program_args;
  slurm_submission sub;
  try {
    sub = parse_submission(args, &program_args);
  } catch (const usage_error&) {
    return 0;
  }
  if (!sub.requested) return 0;
  // The origin comment is the command line as typed; the script for the same
  // submission with plain values is the reference line count.
  std::string origin = "prog";
  for (const auto& a : args) origin += " " + a;
  std::string script;
  try {
    script = batch_script(sub, "/opt/prog", program_args, "/work", sub.job_dir + "/prog-%j.out", origin);
  } catch (const usage_error&) {
    return 0;  // refusing a value that cannot go into a batch script is fine
  }
  slurm_submission plain = sub;
  for (auto* s : {&plain.mem, &plain.time, &plain.partition})
    if (!s->empty()) *s = "x";
  plain.job_dir = "x";
  const auto ref = batch_script(plain, "/opt/prog", {}, "/work", plain.job_dir + "/prog-%j.out", "prog");
  if (lines_before_launch(script) != lines_before_launch(ref))
    fuzz::violated("an argument added a line to the batch script outside the quoted launch line");
  return 0;
}
