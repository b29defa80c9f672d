#include <rankflow/runtime/errors.hpp>

#include <utility>

namespace rankflow {

namespace {
std::string task_message(const task_error::details& d) {
  if (d.task_id >= 0) {
    std::string m = "task '" + d.step + "' (id " + std::to_string(d.task_id) + ")";
    if (d.rank < 0) return m + " failed: " + d.message;
    m += " failed on rank " + std::to_string(d.rank) + " (host " + d.host + ")";
    if (d.attempts > 1) m += " after " + std::to_string(d.attempts) + " attempts";
    return m + ": " + d.message;
  }
  if (d.item < 0 && d.partition < 0) {  // no item to blame: mapreduce's reduce combining partition results
    return d.step + " failed on rank " + std::to_string(d.rank) + " (host " + d.host + "): " + d.message;
  }
  std::string m = d.step + " failed: item " + std::to_string(d.item) + " (partition " + std::to_string(d.partition) +
                  ") raised on rank " + std::to_string(d.rank) + " (host " + d.host + ")";
  if (d.attempts > 1) m += " after " + std::to_string(d.attempts) + " attempts";
  return m + ": " + d.message;
}
}  // namespace

task_error::task_error(details d) : error(task_message(d)), d_(std::move(d)) {}

}  // namespace rankflow
