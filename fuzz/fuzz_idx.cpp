// libFuzzer target for the IDX reader: any bytes, plain or gzip-compressed, through read_idx and, when that
// accepts them, read_idx_images and read_idx_labels. A braid::Error is the reader's answer to a malformed file; a
// crash, a sanitizer report or any other exception is a finding (keep its input in fuzz/regressions/idx).
#include <cstddef>
#include <cstdint>

#include "braid/data/idx.h"
#include "memory_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static braid::fuzz::MemoryFile file;
  const std::string& path = file.hold(data, size);
  try {
    braid::data::read_idx(path);
  } catch (const braid::Error&) {
    return 0;
  }
  try {
    braid::data::read_idx_images(path);
  } catch (const braid::Error&) {
  }
  try {
    braid::data::read_idx_labels(path);
  } catch (const braid::Error&) {
  }
  return 0;
}
