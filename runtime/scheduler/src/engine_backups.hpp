// Private to rank 0's scheduler (engine_rank0.cpp): what backup copies of
// slow partitions need apart from the protocol itself: the typical partition
// time, and the report of a call's copies (docs/usage.md, "Slow ranks").
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <rankflow/runtime/detail/engine.hpp>

namespace rankflow::detail {

/// The seconds of the latest 64 partitions; their median is the call's
/// typical partition time (a median, so that a slow rank does not set it).
class recent_costs {
 public:
  void add(double s) noexcept { v_[static_cast<std::size_t>(n_++ % static_cast<std::int64_t>(v_.size()))] = s; }
  bool empty() const noexcept { return n_ == 0; }
  double median() const {
    const auto n = static_cast<int>(std::min<std::int64_t>(n_, static_cast<std::int64_t>(v_.size())));
    std::array<double, 64> v{};
    std::copy(v_.begin(), v_.begin() + n, v.begin());
    std::nth_element(v.begin(), v.begin() + n / 2, v.begin() + n);
    return v[static_cast<std::size_t>(n / 2)];
  }

 private:
  std::array<double, 64> v_{};
  std::int64_t n_ = 0;
};

/// Rank 0, at the end of a call that made backup copies: logs how many and
/// which ranks' copies finished second (`lost`, per rank), adds those to the
/// program's totals, and warns when a rank keeps losing.
void report_backups(runtime_state& st, const std::string& step, std::int64_t backups,
                    const std::vector<std::int64_t>& lost);

}  // namespace rankflow::detail
