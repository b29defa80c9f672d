// Progress of a long collective call, shown by rank 0: a bar on a terminal, a
// log line every few seconds otherwise (Slurm's output files are not ttys).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <rankflow/runtime/config.hpp>

namespace rankflow::detail {

class progress_meter {
 public:
  progress_meter(const config& cfg, std::string step, std::int64_t total, bool enabled);
  void update(std::int64_t done);
  void finish();

 private:
  using clock = std::chrono::steady_clock;
  void draw(std::int64_t done, bool final);

  std::string step_;
  std::int64_t total_;
  bool enabled_;
  bool bar_;
  bool shown_ = false;
  double delay_s_;     // nothing is shown for calls shorter than this
  double interval_s_;  // between redraws / lines
  clock::time_point start_ = clock::now();
  clock::time_point last_ = start_;
};

}  // namespace rankflow::detail
