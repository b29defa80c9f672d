// A synthetic experiment of n runs, as n stops would leave it (the run index
// and the links; the run files themselves are not made): for timing what
// reads the index (`rankflow runs`, the runs table of `rankflow ui`).
#pragma once

#include <cstdint>
#include <string>

void make_synthetic_experiment(const std::string& file, std::int64_t runs);
