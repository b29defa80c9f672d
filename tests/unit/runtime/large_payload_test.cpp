// A single frame larger than 2 GiB (MPI's int count limit) between two ranks.
#include "mpi_test.hpp"

TEST(Transport, FrameOverTwoGiB) {
  auto& rt = test_runtime();
  ASSERT_EQ(rt.size(), 2);
  const std::size_t payload = (std::size_t{2} << 30) + 12345;  // 2 GiB + a bit
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  if (rt.rank() == 1) {
    rankflow::bytes f = rankflow::detail::new_frame();
    f.resize(rankflow::detail::frame_header_bytes + payload);
    for (std::size_t i = 0; i < payload; i += 4096) f[rankflow::detail::frame_header_bytes + i] = char(i / 4096 % 251);
    f.back() = 'Z';
    auto s = rankflow::detail::isend_frame(comm, 0, 7, std::move(f), rt.settings().segment_bytes);
    s.wait();
  } else {
    rankflow::detail::frame_in in;
    rankflow::detail::backoff idle;
    while (!rankflow::detail::try_recv_frame(comm, 1, 7, rt.settings().segment_bytes, in)) idle.wait();
    ASSERT_EQ(in.payload_size(), payload);
    for (std::size_t i = 0; i < payload; i += 4096) ASSERT_EQ(in.payload()[i], char(i / 4096 % 251)) << i;
    EXPECT_EQ(in.payload()[payload - 1], 'Z');
  }
  MPI_Comm_free(&comm);
}

TEST(Transport, ParallelMapResultOverTwoGiBOnAllRanks) {
  auto& rt = test_runtime();
  // One 2.1 GiB string result, broadcast to every rank through segments.
  const std::size_t n = (std::size_t{2} << 30) + 100 * 1024 * 1024;
  auto out = rt.parallel_map(
      rankflow::range(0, 1), [&](std::int64_t) { return std::vector<char>(n, 'q'); }, {.results_on_all_ranks = true});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].size(), n);
  EXPECT_EQ(out[0][n - 1], 'q');
}
