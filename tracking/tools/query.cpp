#include "query.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include <rankflow/core/error.hpp>
#include <rankflow/tracking/types.hpp>

namespace rankflow::query {

std::string number_text(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  // The shortest form that reads back as the same double.
  char b[32];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(b, sizeof b, "%.*g", digits, v);
    if (std::strtod(b, nullptr) == v) break;
  }
  return b;
}

namespace {

cell number(double v) { return {cell::kind::number, v, number_text(v)}; }
cell number(double v, std::string shown) { return {cell::kind::number, v, std::move(shown)}; }
cell text(std::string s) { return {cell::kind::text, 0, std::move(s)}; }


cell series_cell(const tracking::index_series& s, std::string_view part) {
  if (part == "count") return number(static_cast<double>(s.count));
  if (part == "step") return s.count ? number(s.last_step) : cell{};
  if (s.count == 0) return {};
  if (s.type == field_type::string_series) return part == "last" ? text(s.summary.last_text) : cell{};
  if (part == "last") {
    if (s.type == field_type::int_series && std::isfinite(s.summary.last)) {
      return number(s.summary.last, std::to_string(static_cast<long long>(s.summary.last)));
    }
    return number(s.summary.last);
  }
  if (!s.summary.has_number) return {};
  return number(part == "min" ? s.summary.min : s.summary.max);
}

}  // namespace

cell atom_cell(const tracking::atom_value& a) {
  switch (a.type) {
    case field_type::int_:
      return number(static_cast<double>(a.i), std::to_string(a.i));
    case field_type::float_:
      return number(a.d);
    case field_type::bool_:
      return text(a.i ? "true" : "false");
    case field_type::string:
      return text(a.s);
    case field_type::datetime:
      return number(a.d, format_time(a.d));
    case field_type::string_set:
    case field_type::string_list: {
      std::string s;
      for (const auto& x : a.list) s += (s.empty() ? "" : ",") + x;
      return text(s);
    }
    default:
      return {};
  }
}

cell value_of(const tracking::index_entry& e, const std::string& column) {
  const auto& i = e.info;
  if (column == "id") return text(i.id);
  if (column == "name") return text(i.name);
  if (column == "status") return text(i.status);
  if (column == "reason") return text(i.reason);
  if (column == "start") return i.start_time > 0 ? number(i.start_time, format_time(i.start_time)) : cell{};
  if (column == "end") return i.end_time > 0 ? number(i.end_time, format_time(i.end_time)) : cell{};
  if (column == "duration") {
    if (!(i.end_time > 0 && i.start_time > 0)) return {};
    char b[32];
    std::snprintf(b, sizeof b, "%.3f", i.end_time - i.start_time);
    return number(i.end_time - i.start_time, b);
  }
  if (column == "ranks") return number(i.ranks);
  if (column == "hosts") {
    std::set<std::string> h(i.hosts.begin(), i.hosts.end());
    std::string s;
    for (const auto& x : h) s += (s.empty() ? "" : ",") + x;
    return text(s);
  }
  if (column == "sweep") {
    auto s = e.sweep();
    return s.empty() ? cell{} : text(std::move(s));
  }
  if (column == "command_line") return text(i.command_line);
  // A field, or a series with a part.
  std::string path = column;
  std::string part = "last";
  if (const auto colon = column.rfind(':'); colon != std::string::npos) {
    path = column.substr(0, colon);
    part = column.substr(colon + 1);
  }
  for (const auto& s : e.series) {
    if (s.path == path) return series_cell(s, part);
  }
  if (part == "last" && path == column) {
    for (const auto& [p, a] : e.scalars) {
      if (p == path) return atom_cell(a);
    }
    if (auto it = i.context.find(column); it != i.context.end()) return text(it->second);
  }
  return {};
}

// ------------------------------------------------------------ expressions --

namespace {

enum class tok { word, string, op, lparen, rparen, end };

struct token {
  tok t = tok::end;
  std::string text;
  std::size_t at = 0;  // 1-based position in the expression
};

std::vector<token> tokenize(const std::string& s) {
  std::vector<token> out;
  std::size_t i = 0;
  auto word_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' || c == ':' || c == '-' ||
           c == '+';
  };
  while (i < s.size()) {
    const char c = s[i];
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    const std::size_t at = i + 1;
    if (c == '(' || c == ')') {
      out.push_back({c == '(' ? tok::lparen : tok::rparen, std::string(1, c), at});
      ++i;
    } else if (c == '\'' || c == '"') {
      const auto close = s.find(c, i + 1);
      if (close == std::string::npos) {
        throw usage_error("--where: the string starting at position " + std::to_string(at) + " (" + s.substr(i) +
                          ") has no closing " + std::string(1, c));
      }
      out.push_back({tok::string, s.substr(i + 1, close - i - 1), at});
      i = close + 1;
    } else if (c == '<' || c == '>' || c == '=' || c == '!' || c == '~') {
      std::string op(1, c);
      if (i + 1 < s.size() && s[i + 1] == '=' && c != '~') op += '=';
      if (op == "!") throw usage_error("--where: '!' at position " + std::to_string(at) + " must be '!='");
      out.push_back({tok::op, op, at});
      i += op.size();
    } else if (word_char(c)) {
      std::size_t j = i;
      while (j < s.size() && word_char(s[j])) ++j;
      out.push_back({tok::word, s.substr(i, j - i), at});
      i = j;
    } else {
      throw usage_error("--where: unexpected character '" + std::string(1, c) + "' at position " + std::to_string(at) +
                        "; columns are field paths or run attributes, values numbers, words or 'quoted text'");
    }
  }
  out.push_back({tok::end, "", s.size() + 1});
  return out;
}

bool as_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

}  // namespace

struct expression::node {
  enum class kind { both, either, negate, compare } k = kind::compare;
  std::unique_ptr<node> a, b;
  std::string column, op, value;
  bool value_is_number = false;
  double value_num = 0;

  bool eval(const tracking::index_entry& e) const {
    switch (k) {
      case kind::both:
        return a->eval(e) && b->eval(e);
      case kind::either:
        return a->eval(e) || b->eval(e);
      case kind::negate:
        return !a->eval(e);
      case kind::compare:
        break;
    }
    const cell c = value_of(e, column);
    if (c.k == cell::kind::missing) return false;
    if (op == "~") return c.text.find(value) != std::string::npos;
    int order = 0;
    if (c.k == cell::kind::number && value_is_number) {
      if (std::isnan(c.num)) return op == "!=";
      order = c.num < value_num ? -1 : c.num > value_num ? 1 : 0;
    } else if (c.k == cell::kind::number) {
      // A number against a word: only (in)equality with how it is shown
      // (a Datetime against its ISO text); no order.
      if (op == "=" || op == "==") return c.text == value;
      if (op == "!=") return c.text != value;
      return false;
    } else {
      order = c.text.compare(value);
      order = order < 0 ? -1 : order > 0 ? 1 : 0;
    }
    if (op == "=" || op == "==") return order == 0;
    if (op == "!=") return order != 0;
    if (op == "<") return order < 0;
    if (op == "<=") return order <= 0;
    if (op == ">") return order > 0;
    return order >= 0;  // >=
  }
};

namespace {

class parser {
 public:
  explicit parser(const std::string& s) : src_(s), t_(tokenize(s)) {}

  std::unique_ptr<expression::node> parse() {
    if (t_.front().t == tok::end) throw usage_error("--where: the expression is empty");
    auto n = either();
    if (peek().t != tok::end) fail("'and', 'or' or the end of the expression");
    return n;
  }

 private:
  const token& peek() const { return t_[i_]; }
  const token& next() { return t_[i_++]; }
  bool keyword(const char* k) const { return peek().t == tok::word && peek().text == k; }

  [[noreturn]] void fail(const std::string& expected) const {
    const token& t = peek();
    const std::string got = t.t == tok::end ? "the end of the expression" : "'" + t.text + "'";
    throw usage_error("--where: expected " + expected + " at position " + std::to_string(t.at) + ", got " + got +
                      " (in: " + src_ + ")");
  }

  // `operand` ('word' operand)*: left-associative, as and/or are.
  template <class Operand>
  std::unique_ptr<expression::node> chain(const char* word, expression::node::kind k, Operand operand) {
    auto n = (this->*operand)();
    while (keyword(word)) {
      ++i_;
      auto m = std::make_unique<expression::node>();
      m->k = k;
      m->a = std::move(n);
      m->b = (this->*operand)();
      n = std::move(m);
    }
    return n;
  }
  std::unique_ptr<expression::node> either() { return chain("or", expression::node::kind::either, &parser::both); }
  std::unique_ptr<expression::node> both() { return chain("and", expression::node::kind::both, &parser::unary); }
  std::unique_ptr<expression::node> unary() {
    if (keyword("not")) {
      ++i_;
      auto m = std::make_unique<expression::node>();
      m->k = expression::node::kind::negate;
      m->a = unary();
      return m;
    }
    if (peek().t == tok::lparen) {
      ++i_;
      auto n = either();
      if (peek().t != tok::rparen) fail("')'");
      ++i_;
      return n;
    }
    return compare();
  }
  std::unique_ptr<expression::node> compare() {
    if (peek().t != tok::word || keyword("and") || keyword("or")) fail("a column (a field path or a run attribute)");
    auto m = std::make_unique<expression::node>();
    m->column = next().text;
    if (peek().t != tok::op) fail("a comparison (= != < <= > >= ~) after '" + m->column + "'");
    m->op = next().text;
    if (peek().t != tok::word && peek().t != tok::string) fail("a value after '" + m->column + m->op + "'");
    const token& v = next();
    m->value = v.text;
    m->value_is_number = v.t == tok::word && as_number(v.text, m->value_num);
    return m;
  }

  std::string src_;
  std::vector<token> t_;
  std::size_t i_ = 0;
};

}  // namespace

expression::expression(const std::string& text) : root_(parser(text).parse()) {}
expression::~expression() = default;
expression::expression(expression&&) noexcept = default;
expression& expression::operator=(expression&&) noexcept = default;
bool expression::matches(const tracking::index_entry& e) const { return root_->eval(e); }

// ------------------------------------------------------- sorting, columns --

std::vector<std::string> parse_columns(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = std::min(text.find(',', start), text.size());
    auto part = text.substr(start, comma - start);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (part.empty()) throw usage_error("'" + text + "' has an empty column name (two commas, or a comma at an end)");
    out.push_back(std::move(part));
    start = comma + 1;
  }
  return out;
}

std::vector<sort_key> parse_sort(const std::string& text) {
  std::vector<sort_key> keys;
  for (auto& c : parse_columns(text)) {
    sort_key k;
    k.descending = c.front() == '-';
    k.column = k.descending ? c.substr(1) : c;
    if (k.column.empty()) throw usage_error("--sort: '-' needs a column after it, e.g. --sort -eval/acc");
    keys.push_back(std::move(k));
  }
  return keys;
}

void sort_runs(std::vector<const tracking::index_entry*>& runs, const std::vector<sort_key>& keys) {
  if (keys.empty()) return;
  // The cells once per run and key, not once per comparison.
  std::vector<std::vector<cell>> cells(runs.size());
  for (std::size_t r = 0; r < runs.size(); ++r) {
    for (const auto& k : keys) cells[r].push_back(value_of(*runs[r], k.column));
  }
  std::vector<std::size_t> order(runs.size());
  for (std::size_t r = 0; r < order.size(); ++r) order[r] = r;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const cell& a = cells[x][k];
      const cell& b = cells[y][k];
      const bool am = a.k == cell::kind::missing || (a.k == cell::kind::number && std::isnan(a.num));
      const bool bm = b.k == cell::kind::missing || (b.k == cell::kind::number && std::isnan(b.num));
      if (am || bm) {
        if (am != bm) return bm;  // present before missing, whatever the direction
        continue;
      }
      int c = 0;
      if (a.k == cell::kind::number && b.k == cell::kind::number) {
        c = a.num < b.num ? -1 : a.num > b.num ? 1 : 0;
      } else if (a.k != b.k) {
        c = a.k == cell::kind::number ? -1 : 1;  // numbers before text
      } else {
        c = a.text.compare(b.text);
      }
      if (c != 0) return keys[k].descending ? c > 0 : c < 0;
    }
    return false;
  });
  std::vector<const tracking::index_entry*> sorted;
  sorted.reserve(runs.size());
  for (auto r : order) sorted.push_back(runs[r]);
  runs.swap(sorted);
}

}  // namespace rankflow::query
