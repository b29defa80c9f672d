// `rankflow runs --where/--sort/--cols` on hand-made index entries: the
// expression language, its errors, and the order of runs missing a column.
#include <cmath>
#include <limits>
#include <map>

#include <gtest/gtest.h>

#include <rankflow/core/error.hpp>

#include "mpi_test.hpp"
#include "query.hpp"

namespace tr = rankflow::tracking;
namespace q = rankflow::query;
using rankflow::field_type;

namespace {

tr::index_entry run(int n, double lr, const std::string& status, double loss_last, double loss_min) {
  tr::index_entry e;
  e.info.id = "RUN-" + std::to_string(n);
  e.info.name = n % 2 ? "resnet" : "vit";
  e.info.status = status;
  e.info.start_time = 1700000000 + n;
  e.info.end_time = 1700000010 + 2 * n;
  e.info.ranks = n;
  tr::atom_value a;
  a.type = field_type::float_;
  a.d = lr;
  e.scalars.emplace_back("params/lr", a);
  tr::atom_value b;
  b.type = field_type::bool_;
  b.i = n % 2;
  e.scalars.emplace_back("params/aug", b);
  tr::index_series s;
  s.path = "train/loss";
  s.type = field_type::float_series;
  s.count = 10u * static_cast<unsigned>(n);
  s.last_step = static_cast<double>(s.count - 1);
  s.summary.add(loss_min);
  s.summary.add(loss_last);
  e.series.push_back(s);
  return e;
}

std::vector<tr::index_entry> runs() {
  return {run(1, 1e-2, "succeeded", 0.5, 0.4), run(2, 1e-4, "failed", 0.9, 0.8), run(3, 5e-4, "succeeded", 0.3, 0.2),
          run(4, 1e-3, "running", std::numeric_limits<double>::quiet_NaN(), 0.7)};
}

std::vector<std::string> ids_where(const std::string& where) {
  q::expression e(where);
  std::vector<std::string> out;
  for (const auto& r : runs()) {
    if (e.matches(r)) out.push_back(r.info.id);
  }
  return out;
}

using ids = std::vector<std::string>;

}  // namespace

TEST(Query, ComparisonsOnFieldsAttributesAndSeriesParts) {
  EXPECT_EQ(ids_where("params/lr<1e-3"), (ids{"RUN-2", "RUN-3"}));
  EXPECT_EQ(ids_where("params/lr<1e-3 and status=succeeded"), (ids{"RUN-3"}));
  EXPECT_EQ(ids_where("status = failed or ranks >= 4"), (ids{"RUN-2", "RUN-4"}));
  EXPECT_EQ(ids_where("not (status=succeeded)"), (ids{"RUN-2", "RUN-4"}));
  EXPECT_EQ(ids_where("name~res"), (ids{"RUN-1", "RUN-3"}));
  EXPECT_EQ(ids_where("name='vit'"), (ids{"RUN-2", "RUN-4"}));
  EXPECT_EQ(ids_where("params/aug=true"), (ids{"RUN-1", "RUN-3"}));
  EXPECT_EQ(ids_where("train/loss<0.6"), (ids{"RUN-1", "RUN-3"}));  // the last value; NaN never compares
  EXPECT_EQ(ids_where("train/loss:min<0.75"), (ids{"RUN-1", "RUN-3", "RUN-4"}));
  EXPECT_EQ(ids_where("train/loss:count>=30"), (ids{"RUN-3", "RUN-4"}));
  EXPECT_EQ(ids_where("duration>12"), (ids{"RUN-3", "RUN-4"}));  // 10 + n seconds
  // Precedence: and binds tighter than or.
  EXPECT_EQ(ids_where("status=failed or status=succeeded and ranks>2"), (ids{"RUN-2", "RUN-3"}));
  // A column no run has matches nothing, whatever the comparison.
  EXPECT_TRUE(ids_where("params/nope=1").empty());
  EXPECT_TRUE(ids_where("params/nope!=1").empty());
  // A number against a word: no order.
  EXPECT_TRUE(ids_where("params/lr<abc").empty());
}

TEST(Query, BadExpressionsNameTheTokenAndWhere) {
  EXPECT_THROW_WITH(q::expression("params/lr<"), rankflow::usage_error, "expected a value", "position 11",
                    "the end of the expression");
  EXPECT_THROW_WITH(q::expression("params/lr 3"), rankflow::usage_error, "a comparison", "position 11", "'3'");
  EXPECT_THROW_WITH(q::expression("(status=succeeded"), rankflow::usage_error, "expected ')'");
  EXPECT_THROW_WITH(q::expression("a=1 b=2"), rankflow::usage_error, "'and', 'or'", "'b'");
  EXPECT_THROW_WITH(q::expression("a=1 & b=2"), rankflow::usage_error, "unexpected character '&'", "position 5");
  EXPECT_THROW_WITH(q::expression("name='x"), rankflow::usage_error, "no closing");
  EXPECT_THROW_WITH(q::expression("a!b"), rankflow::usage_error, "'!'", "'!='");
  EXPECT_THROW_WITH(q::expression(""), rankflow::usage_error, "empty");
  EXPECT_THROW_WITH(q::expression("or=1"), rankflow::usage_error, "a column");
}

TEST(Query, SortPutsMissingValuesLastInEitherDirection) {
  const auto all = runs();
  std::vector<const tr::index_entry*> v;
  for (const auto& r : all) v.push_back(&r);
  q::sort_runs(v, q::parse_sort("-train/loss"));
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0]->info.id, "RUN-2");
  EXPECT_EQ(v[1]->info.id, "RUN-1");
  EXPECT_EQ(v[2]->info.id, "RUN-3");
  EXPECT_EQ(v[3]->info.id, "RUN-4");  // NaN: after the numbers
  q::sort_runs(v, q::parse_sort("status,-params/lr"));
  EXPECT_EQ(v[0]->info.id, "RUN-2");  // failed
  EXPECT_EQ(v[1]->info.id, "RUN-4");  // running
  EXPECT_EQ(v[2]->info.id, "RUN-1");  // succeeded, lr 1e-2
  EXPECT_EQ(v[3]->info.id, "RUN-3");
  EXPECT_THROW_WITH(q::parse_sort("-"), rankflow::usage_error, "needs a column");
  EXPECT_THROW_WITH(q::parse_columns("id,,name"), rankflow::usage_error, "empty column");
}

TEST(Query, CellsShowIntsAsIntegersAndTimesAsIso) {
  const auto r = runs()[0];
  EXPECT_EQ(q::value_of(r, "ranks").text, "1");
  EXPECT_EQ(q::value_of(r, "start").text, "2023-11-14T22:13:21.000000Z");
  EXPECT_EQ(q::value_of(r, "params/lr").text, "0.01");
  EXPECT_EQ(q::value_of(r, "train/loss:step").text, "9");
  EXPECT_EQ(q::value_of(r, "params/aug").text, "true");
  EXPECT_EQ(q::value_of(r, "nope").k, q::cell::kind::missing);
}

TEST(RunIndex, KeepsFindingFieldsAndClipsLongText) {
  tr::run_record rec;
  rec.info.id = "RUN-1";
  auto put = [&](const std::string& path, field_type t, auto&& set) {
    tr::op o;
    o.kind = tr::op_kind::assign;
    o.path = path;
    o.atom.type = t;
    set(o.atom);
    std::vector<tr::rejection> refused;
    ASSERT_TRUE(rec.apply(o, refused)) << path;
  };
  std::string long_text;
  for (int k = 0; k < 300; ++k) long_text += "\xc3\xa9";  // 600 bytes of 'é'
  put("notes/long", field_type::string, [&](tr::atom_value& a) { a.s = long_text; });
  put("params/lr", field_type::float_, [](tr::atom_value& a) { a.d = 0.5; });
  put("sys/provenance/source/revision", field_type::string, [](tr::atom_value& a) { a.s = "abc123"; });
  put("sys/provenance/environment", field_type::string_list,
      [](tr::atom_value& a) { a.list.assign(100, "SLURM_SOMETHING=a value of some length"); });
  const auto e = tr::summarize(rec);
  std::map<std::string, tr::atom_value> got(e.scalars.begin(), e.scalars.end());
  ASSERT_TRUE(got.count("notes/long"));
  EXPECT_EQ(got["notes/long"].s.size(), 256u);  // 128 whole characters: never half of one
  EXPECT_EQ(got["notes/long"].s, long_text.substr(0, 256));
  EXPECT_EQ(got["params/lr"].d, 0.5);
  EXPECT_EQ(got["sys/provenance/source/revision"].s, "abc123");
  EXPECT_FALSE(got.count("sys/provenance/environment"));  // kilobytes per run: in the run's file only
  // And the entry survives its codec.
  const auto back = tr::decode_entry(tr::encode_entry(e));
  EXPECT_EQ(tr::encode_entry(back), tr::encode_entry(e));
  EXPECT_THROW(tr::decode_entry(tr::encode_entry(e).substr(0, 40)), rankflow::format_error);
}
