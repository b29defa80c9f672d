// Operation decoding (tracking::decode_into) and run_record::apply: what rank
// 0 does with every message from every rank and with every journal record.
// Any bytes must decode to operations or throw format_error; each decoded
// operation must survive an encode/decode round trip unchanged, and applying
// it must either succeed or be refused, never crash.
#include <string>
#include <string_view>
#include <vector>

#include <rankflow/core/error.hpp>
#include <rankflow/tracking/detail/store.hpp>

#include "fuzz_util.hpp"

using namespace rankflow;
using namespace rankflow::tracking;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  run_record rec;
  // Both ways rank 0 keeps a run: with points (replay for reading) and
  // without (a live run, whose points stay in the journal).
  rec.keep_points = size % 2 == 0;
  std::vector<rejection> refused;
  op o;  // reused, as rank 0 does, so stale buffers from the last op are covered
  std::size_t pos = 0;
  while (pos < in.size()) {
    const std::size_t before = pos;
    try {
      decode_into(in, pos, o);
    } catch (const format_error&) {
      break;
    }
    if (pos <= before || pos > in.size()) fuzz::violated("decode_into did not advance within its input");
    // The journal stores what apply() leaves in `o`, and rank 0 decodes it
    // again: encoding must be stable under a round trip.
    std::string once, twice;
    encode(o, once);
    std::size_t p = 0;
    op back;
    try {
      back = decode(once, p);
    } catch (const format_error&) {
      fuzz::violated("an encoded operation does not decode");
    }
    if (p != once.size()) fuzz::violated("decode read a different length than encode wrote");
    encode(back, twice);
    if (once != twice) fuzz::violated("encode(decode(encode(op))) differs from encode(op)");
    try {
      if (rec.apply(o, refused)) {
        std::string journaled;
        encode(o, journaled);  // what would be appended to the journal
      }
    } catch (const rankflow::error&) {
      // A refusal by exception (usage_error on a bad path) is fine.
    }
  }
  return 0;
}
