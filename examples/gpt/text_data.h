// The GPT example's corpus: the English text of Debian's `fortunes` package, read as bytes (the vocabulary is the
// 256 byte values), split by position into training and validation text, and cut into random windows for batches.
//
// Deterministic: the files are taken in name order, and the batches are a function of the sampler's seed alone,
// so every tensor-parallel rank that builds a sampler with the same seed draws the same batches.
#pragma once

#include <braid/braid.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gpt {

inline constexpr const char* default_fortunes_root = "/usr/share/games/fortunes";

struct TextCorpus {
  std::vector<std::string> files;   // the files read, in order
  std::vector<uint8_t> train;       // the first train_fraction of the concatenated bytes
  std::vector<uint8_t> validation;  // the rest
};

// The fortune files of `root`: regular files and symlinks to files not already listed, without the strfile
// indexes (.dat), sorted by name. A missing or empty folder is a braid::Error naming it and the package.
std::vector<std::string> fortune_files(const std::string& root);

// Concatenates fortune_files(root) and splits the bytes at train_fraction (in (0, 1)) of their length.
TextCorpus load_fortunes(const std::string& root = default_fortunes_root, double train_fraction = 0.9);

// Cross-entropy, in bits per byte, of `text` under the byte frequencies of `reference` (add-one smoothed, so a
// byte `reference` lacks costs finite bits). With text == reference, close to the reference's own entropy: the
// loss of the best model that ignores context.
double unigram_bits_per_byte(const std::vector<uint8_t>& reference, const std::vector<uint8_t>& text);

// Random windows of block_size + 1 consecutive bytes: inputs are the first block_size, targets the last block_size
// (the next byte at every position).
class BatchSampler {
 public:
  BatchSampler(const std::vector<uint8_t>& text, int64_t block_size, uint64_t seed);
  // {inputs, targets}, each int64 [batch_size, block_size] on the CPU.
  std::pair<braid::Tensor, braid::Tensor> next(int64_t batch_size);

 private:
  const std::vector<uint8_t>& text_;
  int64_t block_size_;
  braid::Generator generator_;
};

}  // namespace gpt
