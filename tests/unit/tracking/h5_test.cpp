#include <fstream>

#include "mpi_test.hpp"
#include "h5.hpp"  // tracking/src: HDF5 helpers private to rankflow (HDF5 is ours, not the user's)

namespace h5 = rankflow::h5;

TEST(H5, CollectiveBlocksReadBackExactly) {
  auto& rt = test_runtime();
  const std::string path = "h5_blocks_np" + std::to_string(rt.size()) + ".h5";
  const std::uint64_t rows = 37, cols = 11;
  const auto mine = rt.owned_items(rankflow::range(0, rows), 1);
  std::vector<double> block;
  for (auto i = mine.first; i < mine.last; ++i)
    for (std::uint64_t j = 0; j < cols; ++j) block.push_back(i * 1000.0 + j + 0.25);
  {
    auto f = h5::create_parallel(path, MPI_COMM_WORLD);
    h5::write_block(f.id(), "m", block.data(), {static_cast<std::uint64_t>(mine.size()), cols}, {rows, cols},
                    {static_cast<std::uint64_t>(mine.first), 0});
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rt.is_scheduler()) {
    auto f = h5::open_read(path);
    std::vector<std::uint64_t> shape;
    auto all = h5::read_all(f.id(), "m", &shape);
    EXPECT_EQ(shape, (std::vector<std::uint64_t>{rows, cols}));
    for (std::uint64_t i = 0; i < rows; ++i)
      for (std::uint64_t j = 0; j < cols; ++j) ASSERT_EQ(all[i * cols + j], i * 1000.0 + j + 0.25);
  }
}

TEST(H5, BadInputIsAClearError) {
  auto& rt = test_runtime();
  const std::string path = "h5_bad_np" + std::to_string(rt.size()) + ".h5";
  auto f = h5::create_parallel(path, MPI_COMM_WORLD);
  double x = 0;
  EXPECT_THROW_WITH(h5::write_block(f.id(), "m", &x, {2, 2}, {3, 2}, {2, 0}), rankflow::usage_error, "exceeds dimension 0");
  if (rt.is_scheduler()) {
    std::ofstream("not_hdf5.txt") << "hello";
    EXPECT_THROW_WITH(h5::open_read("not_hdf5.txt"), rankflow::storage_error, "H5Fopen", "not_hdf5.txt");
    EXPECT_THROW_WITH(h5::open_read("does/not/exist.h5"), rankflow::storage_error, "H5Fopen");
  }
}
