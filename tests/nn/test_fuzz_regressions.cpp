// The fuzzers' inputs replayed through the readers in the normal build (fuzz/CMakeLists.txt): every seed in
// fuzz/corpus is a valid file and must load; every input in fuzz/regressions once exposed a defect (a crash, a
// sanitizer report, an exception other than braid::Error) and must now be a braid::Error naming the file. Plus the
// defect no fuzzer input can reach within its length limit: a JSON header nested deep enough to overflow the stack.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/data/idx.h"
#include "braid/nn/checkpoint.h"

namespace {

using braid::test::expect_error;
namespace fs = std::filesystem;

// BRAID_TEST_DATA_DIR is tests/data; fuzz/ sits beside tests/.
const fs::path fuzz_dir = fs::path(BRAID_TEST_DATA_DIR).parent_path().parent_path() / "fuzz";

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(FuzzCorpus, EveryIdxSeedReads) {
  std::vector<std::string> seeds = files_in(fuzz_dir / "corpus" / "idx");
  ASSERT_GE(seeds.size(), 10u);
  for (const std::string& p : seeds) {
    SCOPED_TRACE(p);
    EXPECT_GE(braid::data::read_idx(p).dim(), 1);
  }
  braid::Tensor images = braid::data::read_idx_images((fuzz_dir / "corpus" / "idx" / "images_u8.idx.gz").string());
  EXPECT_EQ(images.shape(), braid::Shape({3, 4}));
  EXPECT_FLOAT_EQ(images.to_vector<float>()[1], 23.0f / 255.0f);
}

TEST(FuzzCorpus, EverySafetensorsSeedLoads) {
  std::vector<std::string> seeds = files_in(fuzz_dir / "corpus" / "safetensors");
  ASSERT_GE(seeds.size(), 5u);
  for (const std::string& p : seeds) {
    SCOPED_TRACE(p);
    braid::nn::Metadata metadata;
    EXPECT_NO_THROW(braid::nn::load(p, metadata));
  }
  braid::nn::Metadata metadata;
  braid::nn::StateDict mixed = braid::nn::load((fuzz_dir / "corpus" / "safetensors" / "mixed.safetensors").string(),
                                               metadata);
  EXPECT_EQ(mixed.size(), 4u);
  EXPECT_EQ(metadata.at("format"), "pt");
  EXPECT_EQ(mixed.at("a").to_vector<double>(), std::vector<double>({1.0, -3.25}));
}

TEST(FuzzRegressions, EveryIdxFindingIsAnErrorNamingTheFile) {
  std::vector<std::string> findings = files_in(fuzz_dir / "regressions" / "idx");
  ASSERT_GE(findings.size(), 1u);
  for (const std::string& p : findings) {
    SCOPED_TRACE(p);
    expect_error([&] { braid::data::read_idx(p); }, {p});
    expect_error([&] { braid::data::read_idx_images(p); }, {p});
    expect_error([&] { braid::data::read_idx_labels(p); }, {p});
  }
}

TEST(FuzzRegressions, EverySafetensorsFindingIsAnErrorNamingTheFile) {
  std::vector<std::string> findings = files_in(fuzz_dir / "regressions" / "safetensors");
  ASSERT_GE(findings.size(), 1u);
  for (const std::string& p : findings) {
    SCOPED_TRACE(p);
    expect_error([&] { braid::nn::load(p); }, {p});
  }
}

// An empty array whose other dims multiply past int64: its strides (and an image's rows * cols) overflowed.
TEST(FuzzRegressions, IdxZeroThenHugeDimsIsRejected) {
  std::string p = (fuzz_dir / "regressions" / "idx" / "zero_then_huge_dims.idx").string();
  expect_error([&] { braid::data::read_idx_images(p); }, {p, "[0, 4294967295, 4294967295]", "too many elements"});
}

TEST(FuzzRegressions, SafetensorsZeroThenHugeDimsIsRejected) {
  std::string p = (fuzz_dir / "regressions" / "safetensors" / "zero_then_huge_dims.safetensors").string();
  expect_error([&] { braid::nn::load(p); }, {p, "tensor 't'", "too large to be real"});
}

// Printing the bad shape entry used to dump() it, which recurses once per nesting level.
TEST(FuzzRegressions, SafetensorsDeeplyNestedShapeIsAnErrorNotACrash) {
  fs::path dir = fs::temp_directory_path() / ("braid_fuzz_regressions_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string p = (dir / "deep.safetensors").string();
  const size_t depth = 300'000;
  std::string header = R"({"t":{"dtype":"F32","shape":[)" + std::string(depth, '[') + std::string(depth, ']') +
                       R"(],"data_offsets":[0,0]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  {
    std::ofstream out(p, std::ios::binary);
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out.put(char(n >> (8 * i) & 0xFF));
    out << header;
  }
  expect_error([&] { braid::nn::load(p); }, {p, "tensor 't'", "shape entry array"});
  fs::remove_all(dir);
}

}  // namespace
