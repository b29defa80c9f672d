#include "progress.hpp"

#include <unistd.h>

#include <cstdio>

#include <rankflow/core/log.hpp>

namespace rankflow::detail {

progress_meter::progress_meter(const config& cfg, std::string step, std::int64_t total, bool enabled)
    : step_(std::move(step)), total_(total), enabled_(enabled && cfg.progress != progress_mode::off && total > 0) {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  bar_ = tty;
  // auto: stay quiet for short calls; on: report from the start.
  delay_s_ = cfg.progress == progress_mode::on ? 0.0 : (tty ? 1.0 : cfg.progress_interval_s);
  interval_s_ = tty ? 0.1 : cfg.progress_interval_s;
}

void progress_meter::update(std::int64_t done) {
  if (!enabled_) return;
  const auto now = clock::now();
  const double since_start = std::chrono::duration<double>(now - start_).count();
  const double since_last = std::chrono::duration<double>(now - last_).count();
  if (since_start < delay_s_ || (shown_ && since_last < interval_s_)) return;
  last_ = now;
  draw(done, false);
}

void progress_meter::finish() {
  if (!enabled_ || !shown_) return;
  draw(total_, true);
}

void progress_meter::draw(std::int64_t done, bool final) {
  shown_ = true;
  const double elapsed = std::chrono::duration<double>(clock::now() - start_).count();
  const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  const double left = frac > 0 ? elapsed * (1 - frac) / frac : 0.0;
  char text[160];
  if (bar_) {
    constexpr int width = 30;
    const int fill = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(fill), '#');
    bar.resize(width, '.');
    const int n = std::snprintf(text, sizeof text, "\r%s [%s] %3d%% %lld/%lld partitions %.1fs%s", step_.c_str(),
                                bar.c_str(), static_cast<int>(frac * 100), static_cast<long long>(done),
                                static_cast<long long>(total_), elapsed, final ? "\n" : "");
    if (n > 0) (void)!::write(STDERR_FILENO, text, static_cast<std::size_t>(std::min<int>(n, sizeof text - 1)));
  } else {
    std::snprintf(text, sizeof text, "progress: %lld/%lld partitions (%d%%), %.1f s elapsed%s",
                  static_cast<long long>(done), static_cast<long long>(total_), static_cast<int>(frac * 100),
                  elapsed, final ? ", done" : "");
    std::string line = text;
    if (!final) line += ", about " + std::to_string(static_cast<long long>(left + 0.5)) + " s left";
    log::info() << line;
  }
}

}  // namespace rankflow::detail
