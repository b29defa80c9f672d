// Hostile input to run tracking (issue 12): string values that a file could
// not hold as written (invalid UTF-8, NUL) are refused naming the field, and
// a damaged experiment file is a format_error on every rank of a job that
// reads it (read-only mode, --resume), never a crash.
#include <hdf5.h>

#include <string>
#include <vector>

#include "mpi_test.hpp"
#include "h5.hpp"  // tracking/src: HDF5 helpers private to rankflow (HDF5 is ours, not the user's)

namespace tr = rankflow::tracking;

namespace {

std::string bytes(const char* s, std::size_t n) { return std::string(s, n); }

// Runs `edit(run group)` on run `id` of `file`, with HDF5's C API, on rank 0.
template <class F>
void edit_run(const std::string& file, const std::string& id, F edit) {
  auto& rt = test_runtime();
  if (rt.is_scheduler()) {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t g = H5Gopen2(f, ("runs/" + id).c_str(), H5P_DEFAULT);
    ASSERT_GE(g, 0);
    edit(g);
    H5Gclose(g);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace

TEST(TrackingInput, Utf8IsCheckedByteForByte) {
  EXPECT_EQ(tr::invalid_utf8_at(""), std::string_view::npos);
  EXPECT_EQ(tr::invalid_utf8_at("plain ascii"), std::string_view::npos);
  EXPECT_EQ(tr::invalid_utf8_at("h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80"), std::string_view::npos);
  EXPECT_EQ(tr::invalid_utf8_at("\xf4\x8f\xbf\xbf"), std::string_view::npos);  // U+10FFFF, the last code point
  EXPECT_EQ(tr::invalid_utf8_at("ab\xff"), 2u);
  EXPECT_EQ(tr::invalid_utf8_at("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(tr::invalid_utf8_at("\xe0\x80\xaf"), 0u);      // overlong, 3 bytes
  EXPECT_EQ(tr::invalid_utf8_at("x\xed\xa0\x80"), 1u);     // a UTF-16 surrogate
  EXPECT_EQ(tr::invalid_utf8_at("\xf4\x90\x80\x80"), 0u);  // past U+10FFFF
  EXPECT_EQ(tr::invalid_utf8_at("ok\xe2\x82"), 2u);        // cut short
  EXPECT_EQ(tr::invalid_utf8_at("\xe2\x28\xa1"), 0u);      // bad continuation
  EXPECT_EQ(tr::invalid_utf8_at("\x80"), 0u);              // a lone continuation byte
  EXPECT_TRUE(tr::string_problem("fine \xc3\xa9").empty());
  EXPECT_NE(tr::string_problem(bytes("a\0b", 3)).find("NUL character at byte 1"), std::string::npos);
  EXPECT_NE(tr::string_problem("a\xfe").find("byte 1 (0xfe) is not valid UTF-8"), std::string::npos);
}

TEST(TrackingInput, StringsAFileCannotHoldAreRefusedNamingTheField) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("track_input_strings");
  const auto me = "r" + std::to_string(rt.rank());
  const std::string good = "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80";
  std::string id;
  {
    auto run = rt.start_run("strings", tracked_in(file));
    id = run.id();
    // The writing rank refuses at the write itself (rank 0 checks again,
    // for whatever reaches it by other paths).
    EXPECT_THROW_WITH(run[me + "/nul"] = bytes("before\0after", 12), rankflow::type_error, "'" + me + "/nul'",
                      "NUL character at byte 6");
    run.wait();
    EXPECT_FALSE(run[me + "/nul"].exists()) << "a refused value was kept (cut at the NUL?)";
    EXPECT_THROW_WITH(run[me + "/latin1"] = "caf\xe9", rankflow::type_error, "'" + me + "/latin1'",
                      "byte 3 (0xe9) is not valid UTF-8");
    EXPECT_THROW_WITH((run[me + "/list"] = std::vector<std::string>{"ok", "\xff"}), rankflow::type_error, "StringList",
                      "'" + me + "/list'", "item 1");
    EXPECT_THROW_WITH(run[me + "/set"].add(std::vector<std::string>{"a", bytes("b\0", 2)}), rankflow::type_error,
                      "'" + me + "/set'", "NUL");
    // File names are checked by rank 0.
    run[me + "/file"].upload_bytes("data", "name\xff.txt");
    EXPECT_THROW_WITH(run.wait(), rankflow::tracking_error, "'" + me + "/file'", "file name");
    // A series keeps its good points; the bad ones are refused and take no step.
    run[me + "/log"].append("first");
    EXPECT_THROW_WITH(run[me + "/log"].append("bad \xc0\xaf"), rankflow::type_error, "StringSeries",
                      "'" + me + "/log'");
    EXPECT_THROW_WITH(run[me + "/log"].append(bytes("bad\0", 4)), rankflow::type_error, "NUL");
    run[me + "/log"].append("second");
    run.wait();
    const auto log = run[me + "/log"].fetch_values<std::string>();
    EXPECT_EQ(log.values, (std::vector<std::string>{"first", "second"}));
    EXPECT_EQ(log.steps, (std::vector<double>{0, 1}));
    // Valid UTF-8, any script, is kept byte for byte.
    run[me + "/good"] = good;
    run.wait();
    EXPECT_EQ(run[me + "/good"].fetch<std::string>(), good);
  }
  {
    auto run = rt.start_run("strings_sync", tracked_in(file, rankflow::tracking_mode::sync));
    EXPECT_THROW_WITH(run[me] = "\xed\xa0\x80", rankflow::type_error, "'" + me + "'", "not valid UTF-8");
    EXPECT_FALSE(run[me].exists());
  }
  if (rt.is_scheduler()) {
    const auto rec = tr::load_run(file, id);
    for (int r = 0; r < rt.size(); ++r) {
      const auto p = "r" + std::to_string(r);
      ASSERT_NE(rec.find(p + "/good"), nullptr);
      EXPECT_EQ(rec.find(p + "/good")->atom.s, good);
      EXPECT_EQ(rec.find(p + "/nul"), nullptr);
      EXPECT_EQ(rec.find(p + "/latin1"), nullptr);
      EXPECT_EQ(rec.find(p + "/log")->series.s, (std::vector<std::string>{"first", "second"}));
    }
  }
}

// The reader behind `rankflow show` also runs inside jobs: read-only mode and
// --resume load the run. A damaged run is a format_error on every rank.
TEST(TrackingInput, DamagedRunsAreFormatErrorsInJobs) {
  auto& rt = test_runtime();
  const auto file = fresh_experiment("track_input_damaged");
  std::string id;
  {
    auto run = rt.start_run("damaged", tracked_in(file));
    id = run.id();
    if (rt.is_scheduler()) {
      run["params/lr"] = 0.5;
      run["params/name"] = "x";
    }
    run.fail("stopped so that it can be resumed");
  }
  auto read_only = tracked_in(file, rankflow::tracking_mode::read_only);
  read_only.with_id = id;
  auto resume = tracked_in(file);
  resume.resume = id;

  // A group that links to itself: followed, it recursed until the stack overflowed.
  edit_run(file, id,
           [](hid_t g) { ASSERT_GE(H5Lcreate_hard(g, "params", g, "params/loop", H5P_DEFAULT, H5P_DEFAULT), 0); });
  EXPECT_THROW_WITH(rt.start_run("damaged", read_only), rankflow::format_error, "params/loop", "cycle");
  EXPECT_THROW_WITH(rt.start_run("damaged", resume), rankflow::format_error, "params/loop", "cycle");
  edit_run(file, id, [](hid_t g) { ASSERT_GE(H5Ldelete(g, "params/loop", H5P_DEFAULT), 0); });

  // A soft link, dangling: an exception used to cross H5Literate here.
  edit_run(file, id,
           [](hid_t g) { ASSERT_GE(H5Lcreate_soft("/nowhere", g, "params/soft", H5P_DEFAULT, H5P_DEFAULT), 0); });
  EXPECT_THROW_WITH(rt.start_run("damaged", read_only), rankflow::format_error, "params/soft", "soft link");
  edit_run(file, id, [](hid_t g) { ASSERT_GE(H5Ldelete(g, "params/soft", H5P_DEFAULT), 0); });

  // A type a newer minor format may add.
  edit_run(file, id, [](hid_t g) {
    const hid_t d = H5Dopen2(g, "params/lr", H5P_DEFAULT);
    ASSERT_GE(H5Adelete(d, "rankflow_type"), 0);
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 6);
    const hid_t sp = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(d, "rankflow_type", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, "Tensor");
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Dclose(d);
  });
  EXPECT_THROW_WITH(rt.start_run("damaged", read_only), rankflow::format_error, "params/lr",
                    "unknown rankflow_type 'Tensor'");
  EXPECT_THROW_WITH(rt.start_run("damaged", resume), rankflow::format_error, "params/lr", "Tensor");

  // Nothing was changed by the refusals: the run is still there, failed.
  if (rt.is_scheduler()) {
    const auto runs = tr::list_runs(file);
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].status, "failed");
  }
}
