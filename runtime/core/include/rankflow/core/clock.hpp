// The clocks every layer reads: one implementation of each.
#pragma once

#include <cstdint>

namespace rankflow::detail {

/// Wall-clock seconds since the Unix epoch: what the ledger, series
/// timestamps and run times record (comparable across hosts).
double unix_now() noexcept;

/// Monotonic nanoseconds, for intervals and timeouts on one host.
std::int64_t steady_ns() noexcept;

}  // namespace rankflow::detail
