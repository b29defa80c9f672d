// Journal replay (tracking::replay over scan_journal): what `recover`, a
// resumed job and `rankflow show` do with a journal left by a killed run. Any
// bytes must give a run record or a rankflow error, never a crash, a hang or
// an allocation the file does not justify.
//
// Records are CRC-32C protected, which random mutation almost never gets
// right, so for inputs of odd length the target rewrites every complete
// record's CRC before writing the file: the payload decoder and
// run_record::apply then see mutated records. Inputs of even length keep
// their CRCs (torn and garbled tails). The length decides rather than a byte
// of the input, so every byte reaches the file, the magic included.
#include <cstring>
#include <string>

#include <rankflow/core/error.hpp>
#include <rankflow/tracking/experiment.hpp>

#include "../../tracking/src/journal.hpp"
#include "fuzz_util.hpp"

using namespace rankflow;

namespace {

// Layout from journal.cpp: 8 bytes of magic, then [u32 length][u32 crc][payload].
void fix_crcs(std::string& b) {
  std::size_t pos = 8;
  while (pos + 8 <= b.size()) {
    std::uint32_t n = 0;
    std::memcpy(&n, b.data() + pos, 4);
    if (n > b.size() - pos - 8) return;
    const std::uint32_t crc = tracking::crc32c(b.data() + pos + 8, n);
    std::memcpy(b.data() + pos + 4, &crc, 4);
    pos += 8 + n;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratch_dir() + "/run.journal";
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size % 2 == 1) fix_crcs(bytes);
  fuzz::write_file(path, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  try {
    bool torn = false;
    auto rec = tracking::replay(path, &torn, true);
    // What load_run does for a live or killed run: artifact bytes are read
    // from the journal at the offsets its records claim.
    for (auto& [field, f] : rec.fields) {
      if (f.type == field_type::file && f.file.size) {
        f.file.data = tracking::read_range(path, static_cast<std::uint64_t>(f.file.journal_offset), f.file.size);
      }
    }
    // Rank 0 of a resumed run and merge_run replay without points.
    (void)tracking::replay(path, nullptr, false);
    (void)tracking::read_journal(path, true);
  } catch (const rankflow::error&) {
    // A clear refusal is the wanted outcome for a damaged journal.
  }
  return 0;
}
