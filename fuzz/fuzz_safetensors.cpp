// libFuzzer target for the safetensors loader: any bytes through nn::load (header, metadata and tensor data in one
// read). A braid::Error is the loader's answer to a malformed file; a crash, a sanitizer report or any other
// exception (a JSON library error escaping, say) is a finding (keep its input in fuzz/regressions/safetensors).
#include <cstddef>
#include <cstdint>

#include "braid/nn/checkpoint.h"
#include "memory_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static braid::fuzz::MemoryFile file;
  const std::string& path = file.hold(data, size);
  try {
    braid::nn::Metadata metadata;
    braid::nn::load(path, metadata);
  } catch (const braid::Error&) {
  }
  return 0;
}
