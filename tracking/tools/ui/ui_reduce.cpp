// The min/max reduction of a series to a chart's width (ui_data.hpp,
// minmax_reducer): fed one point at a time by /api/series and the report.
#include <algorithm>
#include <cmath>

#include "ui_data.hpp"

namespace rankflow::ui {

minmax_reducer::minmax_reducer(std::size_t width, std::optional<double> lo, std::optional<double> hi)
    : width_(std::max<std::size_t>(width, 1)), lo_(lo), hi_(hi) {}

void minmax_reducer::add(std::uint64_t k, double x, double y) {
  if ((lo_ && x < *lo_) || (hi_ && x > *hi_)) return;
  ++window_;
  if (!reducing_) {
    raw_.push_back({k, x, y});
    if (raw_.size() <= 2 * width_) return;
    reducing_ = true;
    buckets_.assign(width_, bucket{});
    for (const auto& p : raw_) to_bucket(p);
    raw_.clear();
    raw_.shrink_to_fit();
    return;
  }
  to_bucket({k, x, y});
}

void minmax_reducer::to_bucket(const point& p) {
  std::size_t b = 0;
  if (lo_ && hi_) {
    const double span = *hi_ - *lo_;
    b = span > 0 ? static_cast<std::size_t>((p.x - *lo_) / span * static_cast<double>(width_)) : 0;
  } else if (n_ > 0) {
    b = static_cast<std::size_t>(static_cast<long double>(p.k) * width_ / n_);
  }
  auto& q = buckets_[std::min(b, width_ - 1)];
  if (std::isnan(p.y)) {
    if (!q.has_nan) q.nan = p;
    q.has_nan = true;
    return;
  }
  if (!q.any) {
    q.lo = q.hi = p;
    q.any = true;
  } else if (p.y < q.lo.y) {
    q.lo = p;
  } else if (p.y > q.hi.y) {
    q.hi = p;
  }
}

json minmax_reducer::points() const {
  json out = json::array();
  auto put = [&](const point& p) { out.push_back(json::array({p.x, std::isfinite(p.y) ? json(p.y) : json(nullptr)})); };
  if (!reducing_) {
    for (const auto& p : raw_) put(p);
    return out;
  }
  for (const auto& q : buckets_) {
    if (!q.any) {
      if (q.has_nan) put(q.nan);
      continue;
    }
    if (q.lo.k == q.hi.k) {
      put(q.lo);
    } else {
      put(q.lo.k < q.hi.k ? q.lo : q.hi);
      put(q.lo.k < q.hi.k ? q.hi : q.lo);
    }
  }
  return out;
}

}  // namespace rankflow::ui
