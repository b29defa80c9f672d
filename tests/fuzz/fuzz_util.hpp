// Helpers shared by the libFuzzer targets of this directory.
#pragma once

#include <unistd.h>

#include <sys/stat.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace rankflow::fuzz {

/// A directory of this process's own under TMPDIR (or /tmp): the readers under
/// test take paths, and parallel fuzzing jobs must not share files.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* t = std::getenv("TMPDIR");
    std::string d = std::string(t && *t ? t : "/tmp") + "/rankflow-fuzz-" + std::to_string(::getpid());
    ::mkdir(d.c_str(), 0700);
    return d;
  }();
  return dir;
}

/// Replaces `path` with exactly `size` bytes of `data`; aborts on failure, so
/// that a full disk is never mistaken for a finding-free run.
inline void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f.flush()) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

/// A broken invariant: libFuzzer records the input as a crash.
[[noreturn]] inline void violated(const char* what) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
  std::abort();
}

}  // namespace rankflow::fuzz
