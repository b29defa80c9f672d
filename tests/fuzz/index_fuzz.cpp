// The run index (tracking/src/run_index.cpp): what `rankflow runs`, `sweeps`
// and list_runs read from `<experiment>.d/index`, a file anyone can change.
// Any bytes must give entries or a format_error (never a crash, a read past
// the data, or a huge allocation), as a whole index file and as one record;
// a decoded record must survive an encode/decode round trip unchanged.
#include <cmath>
#include <string>
#include <string_view>

#include <rankflow/core/error.hpp>

#include "fuzz_util.hpp"
#include "run_index.hpp"

using namespace rankflow;
using namespace rankflow::tracking;

namespace {

void round_trip(const index_entry& e) {
  const std::string once = encode_entry(e);
  index_entry back;
  try {
    back = decode_entry(once);
  } catch (const format_error&) {
    fuzz::violated("an encoded index entry does not decode");
  }
  if (encode_entry(back) != once) fuzz::violated("encode(decode(encode(entry))) differs from encode(entry)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  // 1. One record's payload.
  try {
    round_trip(decode_entry(in));
  } catch (const format_error&) {
  }
  // 2. A whole index file, every byte committed (as if the experiment file said so).
  const std::string path = fuzz::scratch_dir() + "/index";
  fuzz::write_file(path, data, size);
  try {
    for (const auto& e : read_index(path, size)) round_trip(e);
  } catch (const format_error&) {
  }
  return 0;
}
