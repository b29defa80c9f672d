#include "engine_backups.hpp"

#include <rankflow/core/log.hpp>

namespace rankflow::detail {

void report_backups(runtime_state& st, const std::string& step, std::int64_t backups,
                    const std::vector<std::int64_t>& lost_by_rank) {
  std::int64_t lost = 0;
  std::string who;
  for (int r = 0; r < st.size; ++r) {
    const auto n = lost_by_rank[static_cast<std::size_t>(r)];
    if (n == 0) continue;
    lost += n;
    who += (who.empty() ? "" : ", ") + std::string("rank ") + std::to_string(r) + ": " + std::to_string(n);
    auto& total = st.lost_copies[static_cast<std::size_t>(r)];
    const auto before = total;
    total += n;
    // Said once at 3 lost copies and again at each tenfold: a node that
    // keeps losing is slow (throttled, shared, failing), not unlucky.
    for (std::int64_t at = 3; at <= total; at *= 10) {
      if (before < at) {
        log::warn() << "rank " << r << " (host " << st.hosts[static_cast<std::size_t>(r)] << ") keeps losing: "
                    << total << " of its partitions were finished first by backup copies on other ranks "
                    << "so far; its node may be slow (throttled, shared or failing)";
        break;
      }
    }
  }
  log::info() << step << ": " << backups << " backup cop" << (backups == 1 ? "y" : "ies")
              << " of partitions running long; " << lost << " cop" << (lost == 1 ? "y" : "ies")
              << " discarded as finished second" << (who.empty() ? "" : " (" + who + ")");
}

}  // namespace rankflow::detail
