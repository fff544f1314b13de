// Checkpoints: round trips, the exact .safetensors layout, and loud failures on damaged files or mismatched models.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/core/creation.h"
#include "braid/core/ops.h"
#include "braid/nn/checkpoint.h"
#include "braid/nn/module.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;
using nlohmann::json;

namespace {

class CheckpointTest : public braid::test::TempDirTest {
 protected:
  static std::vector<uint8_t> read_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
  }
  static void write_bytes(const std::string& p, const std::vector<uint8_t>& bytes) {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  // A file as any safetensors writer could produce it: the given header text (unpadded), then `data`.
  static std::vector<uint8_t> safetensors_bytes(const std::string& header, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> out;
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out.push_back(uint8_t(n >> (8 * i)));
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }
  template <class T>
  static std::vector<uint8_t> raw(const std::vector<T>& v) {
    std::vector<uint8_t> out(v.size() * sizeof(T));
    std::memcpy(out.data(), v.data(), out.size());
    return out;
  }
};

void expect_same(const Tensor& got, const Tensor& want) {
  ASSERT_TRUE(got.defined());
  EXPECT_EQ(got.dtype(), want.dtype());
  EXPECT_EQ(got.shape(), want.shape());
  EXPECT_TRUE(got.is_contiguous());
  if (want.dtype() == DType::Int64)
    EXPECT_EQ(got.to_vector<int64_t>(), want.to_vector<int64_t>());
  else
    EXPECT_EQ(got.to_vector<double>(), want.to_vector<double>());  // bit-exact, not approximately
}

nn::StateDict sample_dict() {
  Generator gen(1);
  Tensor matrix = randn({4, 3}, DType::Float32, &gen);
  return {
      {"layer.weight", matrix},
      {"layer.weight_t", ops::transpose(matrix, 0, 1)},  // a non-contiguous view
      {"layer.bias", randn({3}, DType::Float64, &gen)},
      {"steps", from_vector(std::vector<int64_t>{-5, 0, int64_t(1) << 40}, {3})},
      {"scale", scalar_tensor(0.25)},                                        // 0-d
      {"empty", zeros({0, 3})},                                              // no elements
      {"slice", ops::narrow(randn({5, 2}, DType::Float64, &gen), 0, 1, 3)},  // a view with an offset
  };
}

// Parameters and a buffer registered directly, so these tests need no layers.
struct TinyNet : nn::Module {
  TinyNet(int64_t out, int64_t in, bool extra = false) : nn::Module("TinyNet") {
    weight = register_parameter("weight", randn({out, in}));
    bias = register_parameter("bias", zeros({out}));
    steps = register_buffer("steps", from_vector(std::vector<int64_t>{7}, {1}));
    if (extra) register_parameter("gain", ones({out}));
  }
  Tensor weight, bias, steps;
};

}  // namespace

TEST_F(CheckpointTest, RoundTripOfEveryDtypeAndLayout) {
  nn::StateDict dict = sample_dict();
  std::string p = path("model.safetensors");
  nn::save(dict, p, {{"epoch", "3"}, {"framework", "braid"}});
  nn::StateDict back = nn::load(p);
  ASSERT_EQ(back.size(), dict.size());
  for (auto& [name, t] : dict) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(back.count(name));
    expect_same(back[name], t);
  }
  EXPECT_EQ(back["scale"].dim(), 0);
  EXPECT_EQ(nn::load_metadata(p), (nn::Metadata{{"epoch", "3"}, {"framework", "braid"}}));
  // No temporary file is left beside the checkpoint.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1);
}

TEST_F(CheckpointTest, EmptyDictAndNoMetadata) {
  std::string p = path("empty.safetensors");
  nn::save(nn::StateDict{}, p);
  EXPECT_TRUE(nn::load(p).empty());
  EXPECT_TRUE(nn::load_metadata(p).empty());
  std::vector<uint8_t> bytes = read_bytes(p);
  ASSERT_EQ(bytes.size(), 16u);
  EXPECT_EQ(std::string(bytes.begin() + 8, bytes.end()), "{}      ");
}

TEST_F(CheckpointTest, FileLayoutFollowsTheSpec) {
  Tensor w = from_vector(std::vector<float>{1.5f, -2, 3, 4, 5, 6}, {2, 3});
  Tensor b = from_vector(std::vector<double>{0.125, -1e300}, {2});
  Tensor n = scalar_tensor(42, DType::Int64);
  Tensor s = scalar_tensor(7.0, DType::Float32);
  std::string p = path("layout.safetensors");
  nn::save({{"w", ops::transpose(w, 0, 1)}, {"b", b}, {"n", n}, {"s", s}}, p, {{"note", "h\u00e9llo"}});
  std::vector<uint8_t> bytes = read_bytes(p);

  // 8-byte little-endian header length, header padded with spaces to a multiple of 8.
  ASSERT_GE(bytes.size(), 8u);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[i];
  EXPECT_EQ(header_len % 8, 0u);
  ASSERT_LE(8 + header_len, bytes.size());
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + std::ptrdiff_t(header_len));
  EXPECT_EQ(header.front(), '{');
  size_t last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}');
  EXPECT_LT(header.size() - last - 1, 8u) << "more padding than needed";

  json h = json::parse(header);
  ASSERT_TRUE(h.is_object());
  EXPECT_EQ(h.size(), 5u);
  EXPECT_EQ(h["__metadata__"], json({{"note", "h\u00e9llo"}}));
  EXPECT_EQ(h["w"]["dtype"], "F32");
  EXPECT_EQ(h["w"]["shape"], json({3, 2}));
  EXPECT_EQ(h["b"]["dtype"], "F64");
  EXPECT_EQ(h["b"]["shape"], json({2}));
  EXPECT_EQ(h["n"]["dtype"], "I64");
  EXPECT_EQ(h["n"]["shape"], json::array());
  EXPECT_EQ(h["s"]["shape"], json::array());

  // Offsets are relative to the data section, cover it exactly without holes or overlaps, and each tensor is
  // aligned to its element size.
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = bytes.size() - data_start;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const char* name : {"w", "b", "n", "s"}) {
    auto off = h[name]["data_offsets"];
    ASSERT_EQ(off.size(), 2u);
    spans.emplace_back(off[0].get<uint64_t>(), off[1].get<uint64_t>());
    uint64_t elem = h[name]["dtype"] == "F32" ? 4 : 8;
    EXPECT_EQ((data_start + off[0].get<uint64_t>()) % elem, 0u) << name;
  }
  EXPECT_EQ(spans[0].second - spans[0].first, 6 * 4u);
  EXPECT_EQ(spans[1].second - spans[1].first, 2 * 8u);
  EXPECT_EQ(spans[2].second - spans[2].first, 8u);
  EXPECT_EQ(spans[3].second - spans[3].first, 4u);
  std::vector<std::pair<uint64_t, uint64_t>> sorted = spans;
  std::sort(sorted.begin(), sorted.end());
  uint64_t at = 0;
  for (auto& [begin, end] : sorted) {
    EXPECT_EQ(begin, at);
    at = end;
  }
  EXPECT_EQ(at, data_size);

  // The bytes are the little-endian values, the transposed view written in its logical (row-major) order.
  auto data_at = [&](size_t k) {
    return std::vector<uint8_t>(bytes.begin() + std::ptrdiff_t(data_start + spans[k].first),
                                bytes.begin() + std::ptrdiff_t(data_start + spans[k].second));
  };
  EXPECT_EQ(data_at(0), raw(std::vector<float>{1.5f, 4, -2, 5, 3, 6}));
  EXPECT_EQ(data_at(1), raw(std::vector<double>{0.125, -1e300}));
  EXPECT_EQ(data_at(2), std::vector<uint8_t>({42, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(data_at(3), raw(std::vector<float>{7}));
}

TEST_F(CheckpointTest, LoadsFilesFromOtherWriters) {
  // Another writer's choices: no metadata, data in a different order from the names, keys in another order,
  // whitespace in the JSON and no padding.
  std::string header =
      R"({ "b": {"data_offsets": [0, 8], "shape": [2], "dtype": "F32"},
           "a": {"shape": [1, 1], "dtype": "I64", "data_offsets": [8, 16]} })";
  std::vector<uint8_t> data = raw(std::vector<float>{1, 2});
  auto a = raw(std::vector<int64_t>{-3});
  data.insert(data.end(), a.begin(), a.end());
  std::string p = path("other.safetensors");
  write_bytes(p, safetensors_bytes(header, data));
  nn::StateDict d = nn::load(p);
  ASSERT_EQ(d.size(), 2u);
  expect_same(d["b"], from_vector(std::vector<float>{1, 2}));
  expect_same(d["a"], from_vector(std::vector<int64_t>{-3}, {1, 1}));
}

TEST_F(CheckpointTest, OverwritesAtomically) {
  std::string p = path("ckpt.safetensors");
  nn::save({{"x", ones({2})}}, p);
  nn::save({{"y", zeros({3}, DType::Float64)}}, p);
  nn::StateDict d = nn::load(p);
  ASSERT_EQ(d.size(), 1u);
  expect_same(d["y"], zeros({3}, DType::Float64));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1);
}

TEST_F(CheckpointTest, SaveErrors) {
  std::string missing_dir = path("no/such/dir/x.safetensors");
  expect_error([&] { nn::save({{"x", ones({1})}}, missing_dir); }, {missing_dir, "No such file or directory"});
  expect_error([&] { nn::save({{"__metadata__", ones({1})}}, path("m.safetensors")); }, {"reserved"});
  expect_error([&] { nn::save({{"x", Tensor()}}, path("u.safetensors")); }, {"'x' is undefined"});
  expect_error([&] { nn::save({{"bad\xff", ones({1})}}, path("utf.safetensors")); }, {"UTF-8"});
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 0) << "a failed save left a file behind";
}

TEST_F(CheckpointTest, DamagedFilesAreErrors) {
  std::string good = path("good.safetensors");
  nn::save(sample_dict(), good);
  std::vector<uint8_t> bytes = read_bytes(good);

  std::string missing = path("missing.safetensors");
  expect_error([&] { nn::load(missing); }, {missing});

  std::string tiny = path("tiny.safetensors");
  write_bytes(tiny, {1, 2, 3});
  expect_error([&] { nn::load(tiny); }, {tiny, "truncated"});

  // Truncated in the data, and in the header.
  std::string cut = path("cut.safetensors");
  write_bytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.end() - 5));
  expect_error([&] { nn::load(cut); }, {cut, "truncated"});
  write_bytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + 20));
  expect_error([&] { nn::load(cut); }, {cut, "header"});

  // A header length beyond the file, and one beyond any sane header.
  std::vector<uint8_t> corrupt = bytes;
  for (int i = 0; i < 8; ++i) corrupt[i] = uint8_t(uint64_t(bytes.size()) >> (8 * i));
  std::string len = path("len.safetensors");
  write_bytes(len, corrupt);
  expect_error([&] { nn::load(len); }, {len, "bytes follow the length"});
  corrupt = bytes;
  corrupt[7] = 0xFF;
  write_bytes(len, corrupt);
  expect_error([&] { nn::load(len); }, {len, "limit"});

  // Extra bytes after the last tensor.
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  std::string extra = path("extra.safetensors");
  write_bytes(extra, longer);
  expect_error([&] { nn::load(extra); }, {extra, "after the last tensor"});
}

TEST_F(CheckpointTest, InvalidHeadersAreErrors) {
  struct Case {
    std::string header;
    size_t data_bytes;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"{\"a\": [1, 2", 0, "not valid JSON"},
      {"not json at all", 0, "does not start with '{'"},
      {"{} trailing", 0, "not valid JSON"},
      {R"({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}})", 4, "BF16"},
      {R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8, "span 8"},
      {R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8, "not a size"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8, "begin after end"},
      {R"({"a": {"dtype": "F32", "shape": [2]}})", 8, "data_offsets"},
      {R"({"a": {"shape": [2], "data_offsets": [0, 8]}})", 8, "no dtype"},
      {R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8, "truncated"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       12, "overlap"},
      {R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
       12, "hole"},
      {R"({"a": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8, "too large"},
      {R"({"__metadata__": {"k": 1}})", 0, "not a string"},
      {R"([1, 2])", 0, "does not start with '{'"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].header);
    std::string p = path("case" + std::to_string(i) + ".safetensors");
    write_bytes(p, safetensors_bytes(cases[i].header, std::vector<uint8_t>(cases[i].data_bytes, 0)));
    expect_error([&] { nn::load(p); }, {p, cases[i].expect});
  }
}

TEST_F(CheckpointTest, ModuleRoundTrip) {
  TinyNet a(3, 2), b(3, 2);
  ops::fill_(a.steps, 11);
  EXPECT_FALSE(ops::allclose(a.weight, b.weight));
  std::string p = path("tiny.safetensors");
  nn::save(a, p, {{"step", "100"}});
  nn::load(b, p);
  expect_same(b.weight, a.weight);
  expect_same(b.bias, a.bias);
  expect_same(b.steps, from_vector(std::vector<int64_t>{11}, {1}));
  EXPECT_TRUE(b.weight.requires_grad()) << "loading must keep the parameters trainable";
  EXPECT_EQ(nn::load_metadata(p).at("step"), "100");
  nn::StateDict d = nn::load(p);
  EXPECT_EQ(d.size(), 3u);
  EXPECT_TRUE(d.count("weight") && d.count("bias") && d.count("steps"));
}

TEST_F(CheckpointTest, ModuleMismatchesAreErrors) {
  TinyNet a(3, 2);
  std::string p = path("tiny.safetensors");
  nn::save(a, p);

  TinyNet wrong_shape(4, 2);
  Tensor before = ops::clone(wrong_shape.weight);
  expect_error([&] { nn::load(wrong_shape, p); }, {"weight"});
  expect_same(wrong_shape.weight, before);  // a failed load leaves the model untouched

  TinyNet more(3, 2, /*extra=*/true);
  expect_error([&] { nn::load(more, p); }, {"gain"});  // missing from the file
  nn::load(more, p, /*strict=*/false);
  expect_same(more.weight, a.weight);

  std::string bigger = path("bigger.safetensors");
  nn::save(more, bigger);
  TinyNet fewer(3, 2);
  expect_error([&] { nn::load(fewer, bigger); }, {"gain"});  // unexpected in the file

  nn::StateDict d = nn::load(p);
  d["weight"] = ops::to_dtype(d["weight"], DType::Float64);
  std::string dtype_path = path("dtype.safetensors");
  nn::save(d, dtype_path);
  TinyNet c(3, 2);
  expect_error([&] { nn::load(c, dtype_path); }, {"weight"});
}
