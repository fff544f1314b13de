// nn::checksum and the checksum a training-state file records: a file whose bytes changed after the save (one
// flipped bit in a tensor, an edited metadata value) is refused naming the file, and nothing is loaded.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::expect_error;

namespace {

class CheckpointChecksumTest : public braid::test::TempDirTest {};

nn::Sequential make_model(uint64_t seed) {
  manual_seed(seed);
  return nn::Sequential(nn::Linear(4, 6), nn::ReLU(), nn::Linear(6, 2));
}

// Flips one bit of the byte `from_end` bytes before the end of the file (inside the last tensor's data).
void flip_bit(const std::string& file, std::streamoff from_end) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.is_open()) << file;
  f.seekg(-from_end, std::ios::end);
  char byte = 0;
  f.read(&byte, 1);
  byte = char(byte ^ 0x10);
  f.seekp(-from_end, std::ios::end);
  f.write(&byte, 1);
}

std::vector<float> weights(const nn::Sequential& m) {
  std::vector<float> out;
  for (const auto& [name, t] : m->state_dict()) {
    auto v = t.to_vector<float>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

}  // namespace

TEST(Checksum, ChangesWithAnyBitNameOrShape) {
  nn::StateDict a{{"w", from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2})}, {"b", zeros({2})}};
  const uint32_t base = nn::checksum(a);
  EXPECT_EQ(nn::checksum(a), base);
  nn::StateDict copy{{"w", from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2})}, {"b", zeros({2})}};
  EXPECT_EQ(nn::checksum(copy), base) << "equal contents, equal checksum";

  nn::StateDict bit = copy;
  bit["w"] = from_vector(std::vector<float>{1, 2, 3, std::nextafter(4.0f, 5.0f)}, {2, 2});
  EXPECT_NE(nn::checksum(bit), base);
  nn::StateDict shape = copy;
  shape["w"] = from_vector(std::vector<float>{1, 2, 3, 4}, {4});
  EXPECT_NE(nn::checksum(shape), base);
  nn::StateDict name{{"v", copy["w"]}, {"b", copy["b"]}};
  EXPECT_NE(nn::checksum(name), base);
  nn::StateDict dtype{{"w", copy["w"]}, {"b", zeros({2}, DType::Float64)}};
  EXPECT_NE(nn::checksum(dtype), base);
  // A strided view checksums as its contiguous copy.
  Tensor t = from_vector(std::vector<float>{1, 3, 2, 4}, {2, 2});
  EXPECT_EQ(nn::checksum({{"w", ops::transpose(t, 0, 1)}, {"b", zeros({2})}}), base);
}

TEST_F(CheckpointChecksumTest, CorruptTrainingStateIsRefusedNamingTheFile) {
  nn::Sequential model = make_model(1);
  optim::SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9});
  optim::CosineAnnealingLR sched(opt, 10);
  Tensor x = randn({8, 4});
  nn::cross_entropy(model(x), from_vector(std::vector<int64_t>{0, 1, 0, 1, 1, 0, 0, 1}, {8})).backward();
  opt.step();
  sched.step();
  const std::string good = path("good.safetensors");
  nn::save_training_state(good, *model, opt, sched, {{"epoch", "3"}});
  ASSERT_EQ(nn::load_metadata(good).at("braid.checksum").rfind("crc32:", 0), 0u);

  nn::Sequential target = make_model(2);
  optim::SGD target_opt(target->parameters(), {.lr = 0.1, .momentum = 0.9});
  optim::CosineAnnealingLR target_sched(target_opt, 10);
  const std::vector<float> before = weights(target);

  // One bit of a tensor's data.
  const std::string flipped = path("flipped.safetensors");
  std::filesystem::copy_file(good, flipped);
  flip_bit(flipped, 3);
  expect_error([&] { nn::load_training_state(flipped, *target, target_opt, target_sched); },
               {"nn::load_training_state", flipped, "corrupt", "checksum"});
  EXPECT_EQ(weights(target), before) << "a corrupt file changes nothing";
  EXPECT_EQ(target_sched.last_epoch(), 0);

  // A metadata value edited in place (same length, so the file stays well-formed).
  const std::string edited = path("edited.safetensors");
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t at = bytes.find("\"extra.epoch\":\"3\"");
    ASSERT_NE(at, std::string::npos);
    bytes[at + std::string("\"extra.epoch\":\"").size()] = '4';
    std::ofstream(edited, std::ios::binary) << bytes;
  }
  ASSERT_EQ(nn::load_metadata(edited).at("extra.epoch"), "4");
  expect_error([&] { nn::load_training_state(edited, *target, target_opt, target_sched); },
               {"nn::load_training_state", edited, "corrupt", "checksum"});
  EXPECT_EQ(weights(target), before);

  // The intact file loads.
  nn::Metadata extra = nn::load_training_state(good, *target, target_opt, target_sched);
  EXPECT_EQ(extra.at("epoch"), "3");
  EXPECT_EQ(weights(target), weights(model));
}
