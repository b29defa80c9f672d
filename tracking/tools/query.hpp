// `rankflow runs --where ... --sort ... --cols ...`: columns of the run index
// and a small expression language over them (docs/tracking.md, "Finding runs").
//
//   params/lr<1e-3 and status=succeeded
//   (sweep=slurm-812 or name~resnet) and not train/loss:min>0.5
//
// A column is a run attribute (id, name, status, reason, start, end,
// duration, ranks, hosts, sweep, slurm_job_id, ...), a field path (a scalar
// field's value, a series' last value), or a series path with :last, :min,
// :max, :count or :step. Comparisons: = == != < <= > >= and ~ (contains).
// A run without the column never matches a comparison.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "run_index.hpp"

namespace rankflow::query {

/// A cell: a number (Int, Float, Datetime, times, counts) or text.
struct cell {
  enum class kind { missing, number, text } k = kind::missing;
  double num = 0;
  std::string text;  ///< how it is shown (numbers too: an Int as an integer, a Datetime as ISO 8601)
};

/// The shortest text that reads back as `v` (integers without a point).
std::string number_text(double v);

/// A scalar field's value as a cell (Bool as true/false, Datetime as ISO 8601).
cell atom_cell(const tracking::atom_value& a);

/// The value of `column` for a run.
cell value_of(const tracking::index_entry& e, const std::string& column);

/// A parsed --where expression. Throws usage_error naming the token that is
/// wrong, its position, and what was expected.
class expression {
 public:
  explicit expression(const std::string& text);
  ~expression();
  expression(expression&&) noexcept;
  expression& operator=(expression&&) noexcept;
  bool matches(const tracking::index_entry& e) const;
  struct node;

 private:
  std::unique_ptr<node> root_;
};

/// One --sort key: a column, descending when written with a leading '-'.
struct sort_key {
  std::string column;
  bool descending = false;
};
/// "-eval/acc,params/lr" -> keys. Throws usage_error on an empty key.
std::vector<sort_key> parse_sort(const std::string& text);
/// Sorts stably by the keys; runs missing a key's column come after the others.
void sort_runs(std::vector<const tracking::index_entry*>& runs, const std::vector<sort_key>& keys);

/// "a,b,c" -> columns (empty parts refused).
std::vector<std::string> parse_columns(const std::string& text);

}  // namespace rankflow::query
