#include "text_data.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

namespace fs = std::filesystem;

namespace gpt {

namespace {

std::string missing_corpus(const std::string& root, const std::string& why) {
  return "fortunes corpus: '" + root + "' " + why + " (install Debian's fortunes package: apt-get install fortunes)";
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  BRAID_CHECK(in, "fortunes corpus: cannot open '", path.string(), "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BRAID_CHECK(!in.bad(), "fortunes corpus: cannot read '", path.string(), "'");
  return bytes;
}

}  // namespace

std::vector<std::string> fortune_files(const std::string& root) {
  std::error_code ec;
  BRAID_CHECK(fs::is_directory(root, ec), missing_corpus(root, "is not a folder"));
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(root)) entries.push_back(entry.path());
  std::sort(entries.begin(), entries.end());
  // Debian ships each file twice, the second time as a ".u8" symlink: a target is read once, whatever links to it.
  std::set<fs::path> targets;
  for (const auto& path : entries)
    if (!fs::is_symlink(path) && fs::is_regular_file(path) && path.extension() != ".dat")
      targets.insert(fs::canonical(path));
  std::vector<std::string> files;
  std::set<fs::path> taken;
  for (const auto& path : entries) {
    if (path.extension() == ".dat" || !fs::is_regular_file(path)) continue;
    fs::path target = fs::canonical(path);
    if (target.extension() == ".dat") continue;
    if (fs::is_symlink(path) && targets.count(target)) continue;  // read under its own name
    if (taken.insert(target).second) files.push_back(path.string());
  }
  BRAID_CHECK(!files.empty(), missing_corpus(root, "holds no fortune files"));
  return files;
}

TextCorpus load_fortunes(const std::string& root, double train_fraction) {
  BRAID_CHECK(train_fraction > 0 && train_fraction < 1, "load_fortunes: train_fraction must be in (0, 1), got ",
              train_fraction);
  TextCorpus corpus;
  corpus.files = fortune_files(root);
  std::vector<uint8_t> all;
  for (const auto& file : corpus.files) {
    std::vector<uint8_t> bytes = read_bytes(file);
    all.insert(all.end(), bytes.begin(), bytes.end());
  }
  const auto split = static_cast<std::ptrdiff_t>(std::floor(double(all.size()) * train_fraction));
  corpus.train.assign(all.begin(), all.begin() + split);
  corpus.validation.assign(all.begin() + split, all.end());
  return corpus;
}

double unigram_bits_per_byte(const std::vector<uint8_t>& reference, const std::vector<uint8_t>& text) {
  BRAID_CHECK(!text.empty(), "unigram_bits_per_byte: the text is empty");
  std::vector<double> counts(256, 1.0);
  for (uint8_t b : reference) counts[b] += 1;
  const double total = double(reference.size()) + 256;
  double bits = 0;
  for (uint8_t b : text) bits -= std::log2(counts[b] / total);
  return bits / double(text.size());
}

BatchSampler::BatchSampler(const std::vector<uint8_t>& text, int64_t block_size, uint64_t seed)
    : text_(text), block_size_(block_size), generator_(seed) {
  BRAID_CHECK(block_size >= 1, "BatchSampler: block_size must be at least 1, got ", block_size);
  BRAID_CHECK(int64_t(text.size()) > block_size, "BatchSampler: the text has ", text.size(),
              " bytes, too few for one window of block_size + 1 = ", block_size + 1);
}

std::pair<braid::Tensor, braid::Tensor> BatchSampler::next(int64_t batch_size) {
  BRAID_CHECK(batch_size >= 1, "BatchSampler::next: batch_size must be at least 1, got ", batch_size);
  const auto starts = uint64_t(text_.size()) - uint64_t(block_size_);  // window starts 0 .. size - block - 1
  std::vector<int64_t> inputs(size_t(batch_size * block_size_)), targets(inputs.size());
  for (int64_t b = 0; b < batch_size; ++b) {
    const uint64_t start = generator_.next() % starts;
    for (int64_t t = 0; t < block_size_; ++t) {
      inputs[size_t(b * block_size_ + t)] = text_[start + uint64_t(t)];
      targets[size_t(b * block_size_ + t)] = text_[start + uint64_t(t) + 1];
    }
  }
  return {braid::from_vector(inputs, {batch_size, block_size_}),
          braid::from_vector(targets, {batch_size, block_size_})};
}

}  // namespace gpt
