// The GPT example's model and corpus (examples/gpt): input errors name the sizes, the data split and batches are
// deterministic, a missing corpus names the folder and the package, and generation is reproducible.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>

#include "gpt_model.h"
#include "text_data.h"

using namespace braid;

namespace {

// One process: the tensor-parallel group of size 1, i.e. the plain model.
dist::ProcessGroupPtr single() {
  if (!dist::is_initialized()) dist::init();
  return dist::world();
}

gpt::GPTConfig tiny() { return {.block_size = 8, .n_layer = 1, .n_head = 2, .n_embd = 16}; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(GPTModel, SequenceLongerThanBlockSizeIsAnErrorNamingBoth) {
  manual_seed(0);
  gpt::GPT model(tiny(), single());
  std::string msg = error_of([&] { model(zeros({2, 9}, DType::Int64)); });
  EXPECT_NE(msg.find("sequence of 9 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("block_size 8"), std::string::npos) << msg;
}

TEST(GPTModel, TokenIdOutsideTheVocabularyIsAnErrorNamingIt) {
  manual_seed(0);
  gpt::GPT model(tiny(), single());
  Tensor idx = from_vector(std::vector<int64_t>{1, 2, 256, 3}, {1, 4});
  std::string msg = error_of([&] { model(idx); });
  EXPECT_NE(msg.find("token id 256"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[0, 256)"), std::string::npos) << msg;
  msg = error_of([&] { model(from_vector(std::vector<int64_t>{-1, 2}, {1, 2})); });
  EXPECT_NE(msg.find("token id -1"), std::string::npos) << msg;
}

TEST(GPTModel, ForwardShapeParameterCountAndInitialLoss) {
  manual_seed(0);
  gpt::GPTConfig c = tiny();
  gpt::GPT model(c, single());
  Tensor idx = from_vector(std::vector<int64_t>{72, 101, 108, 108, 111, 32, 119, 111}, {1, 8});
  EXPECT_EQ(model(idx).shape(), (Shape{1, 8, 256}));
  // wte 256x16, wpe 8x16, per block 2 LayerNorms (4x16), c_attn 16x48+48, c_proj 16x16+16, c_fc 16x64+64,
  // mlp.c_proj 64x16+16, ln_f 2x16; the head is tied to wte.
  const int64_t expected =
      256 * 16 + 8 * 16 + 4 * 16 + (16 * 48 + 48) + (16 * 16 + 16) + (16 * 64 + 64) + (64 * 16 + 16) + 2 * 16;
  EXPECT_EQ(model->num_parameters(), expected);
  // GPT-2's small init makes the first prediction nearly uniform: loss close to ln 256 (for targets other than the
  // inputs: the tied head slightly favours repeating the input byte).
  Tensor next = from_vector(std::vector<int64_t>{101, 108, 108, 111, 32, 119, 111, 114}, {1, 8});
  double loss = model->loss(idx, next).item<double>();
  EXPECT_NEAR(loss, std::log(256.0), 0.05);
}

TEST(GPTModel, CProjectionsUseTheScaledInit) {
  manual_seed(0);
  gpt::GPTConfig c{.block_size = 16, .n_layer = 8, .n_head = 4, .n_embd = 128};
  gpt::GPT model(c, single());
  auto stddev = [](const Tensor& t) {
    std::vector<double> v = t.to_vector<double>();
    double s = 0;
    for (double x : v) s += x * x;
    return std::sqrt(s / double(v.size()));
  };
  auto& block = model->h->at<gpt::BlockImpl>(0);
  EXPECT_NEAR(stddev(block.attn->c_attn->weight), 0.02, 0.001);
  EXPECT_NEAR(stddev(block.mlp->c_proj->weight), 0.02 / std::sqrt(16.0), 0.0005);
  EXPECT_NEAR(stddev(block.attn->c_proj->weight), 0.02 / std::sqrt(16.0), 0.0005);
  EXPECT_NEAR(stddev(model->wte->weight), 0.02, 0.001);
  EXPECT_NEAR(stddev(model->wpe->weight), 0.02, 0.002);
  EXPECT_EQ(block.attn->c_attn->bias.to_vector<float>(), std::vector<float>(48 * 8, 0.f));
}

TEST(GPTModel, GenerationIsReproducibleAndGreedyIgnoresTheGenerator) {
  manual_seed(0);
  gpt::GPT model(tiny(), single());
  Generator a(7), b(7), c(1), d(2);
  // Longer than block_size: the window slides.
  EXPECT_EQ(gpt::generate(*model, "hello", 20, 0.8, a), gpt::generate(*model, "hello", 20, 0.8, b));
  EXPECT_EQ(gpt::generate(*model, "hello", 20, 0, c), gpt::generate(*model, "hello", 20, 0, d));
  EXPECT_EQ(gpt::generate(*model, "hello", 20, 0, c).size(), 20u);
  EXPECT_TRUE(model->is_training());
}

TEST(TextData, MissingCorpusNamesTheFolderAndThePackage) {
  std::string msg = error_of([] { gpt::load_fortunes("/no/such/folder"); });
  EXPECT_NE(msg.find("/no/such/folder"), std::string::npos) << msg;
  EXPECT_NE(msg.find("apt-get install fortunes"), std::string::npos) << msg;
}

TEST(TextData, SplitsNinetyTenByPositionAndSkipsIndexesAndDuplicateLinks) {
  if (!std::filesystem::exists(gpt::default_fortunes_root)) GTEST_SKIP() << "fortunes is not installed";
  gpt::TextCorpus corpus = gpt::load_fortunes();
  for (const auto& f : corpus.files) {
    EXPECT_NE(std::filesystem::path(f).extension(), ".dat") << f;
    EXPECT_NE(std::filesystem::path(f).extension(), ".u8") << f;
  }
  EXPECT_TRUE(std::is_sorted(corpus.files.begin(), corpus.files.end()));
  const double total = double(corpus.train.size() + corpus.validation.size());
  EXPECT_NEAR(double(corpus.train.size()) / total, 0.9, 1e-6);
  // The unigram baseline sits between a few bits (English letters) and 8 (uniform bytes).
  const double unigram = gpt::unigram_bits_per_byte(corpus.train, corpus.validation);
  EXPECT_GT(unigram, 4.0);
  EXPECT_LT(unigram, 5.5);
}

TEST(TextData, BatchesAreNextBytesAndDependOnTheSeedOnly) {
  std::vector<uint8_t> text;
  for (int i = 0; i < 1000; ++i) text.push_back(uint8_t(i % 251));
  gpt::BatchSampler a(text, 16, 3), b(text, 16, 3), c(text, 16, 4);
  auto [xa, ya] = a.next(4);
  auto [xb, yb] = b.next(4);
  auto [xc, yc] = c.next(4);
  EXPECT_EQ(xa.shape(), (Shape{4, 16}));
  EXPECT_EQ(xa.to_vector<int64_t>(), xb.to_vector<int64_t>());
  EXPECT_NE(xa.to_vector<int64_t>(), xc.to_vector<int64_t>());
  std::vector<int64_t> x = xa.to_vector<int64_t>(), y = ya.to_vector<int64_t>();
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], (x[i] + 1) % 251) << i;
}

TEST(TextData, UnigramBaselineIsTheCrossEntropyOfTheFrequencies) {
  std::vector<uint8_t> reference(1000, 'a'), text(10, 'a');
  reference.insert(reference.end(), 744, 'b');  // counts 1001 and 745 of 2000 after add-one smoothing
  double expected = -std::log2(1001.0 / 2000.0);
  EXPECT_NEAR(gpt::unigram_bits_per_byte(reference, text), expected, 1e-12);
}
