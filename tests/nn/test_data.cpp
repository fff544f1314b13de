// Datasets, the DataLoader (order, shuffling, sharding, workers, early exit, errors) and the IDX reader.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.h"
#include "braid/core/creation.h"
#include "braid/core/ops.h"
#include "braid/data/dataloader.h"
#include "braid/data/dataset.h"
#include "braid/data/idx.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;
using namespace braid::data;

namespace {

// Row i of the data is (i, i + 0.5, -i) and its target is 2i, so a batch tells which samples it holds.
std::shared_ptr<TensorDataset> indexed_dataset(int64_t n) {
  std::vector<float> data;
  std::vector<int64_t> targets;
  for (int64_t i = 0; i < n; ++i) {
    data.insert(data.end(), {float(i), float(i) + 0.5f, -float(i)});
    targets.push_back(2 * i);
  }
  return std::make_shared<TensorDataset>(from_vector(data, {n, 3}), from_vector(targets, {n}));
}

// The sample indices a batch of indexed_dataset holds, checking that every row and target is consistent.
std::vector<int64_t> batch_indices(const Example& batch) {
  EXPECT_EQ(batch.data.dim(), 2);
  EXPECT_EQ(batch.data.size(1), 3);
  std::vector<float> d = batch.data.to_vector<float>();
  std::vector<int64_t> t = batch.target.to_vector<int64_t>();
  std::vector<int64_t> out;
  for (size_t r = 0; r < t.size(); ++r) {
    int64_t i = int64_t(d[3 * r]);
    EXPECT_EQ(d[3 * r + 1], float(i) + 0.5f);
    EXPECT_EQ(d[3 * r + 2], -float(i));
    EXPECT_EQ(t[r], 2 * i);
    out.push_back(i);
  }
  return out;
}

std::vector<std::vector<int64_t>> run_epoch(DataLoader& loader) {
  std::vector<std::vector<int64_t>> batches;
  for (auto& batch : loader) batches.push_back(batch_indices(batch));
  return batches;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), int64_t(0));
  return v;
}

// Builds batches with only get() (the default get_batch), sleeping longer for low indices so that workers finish
// out of order, and throwing for sample `fail_at` while `failing` is set.
class SlowDataset : public Dataset {
 public:
  explicit SlowDataset(int64_t n, int64_t fail_at = -1) : inner_(indexed_dataset(n)), fail_at_(fail_at) {}
  int64_t size() const override { return inner_->size(); }
  Example get(int64_t i) const override {
    if (failing && i == fail_at_) throw Error("SlowDataset: sample " + std::to_string(i) + " is broken");
    std::this_thread::sleep_for(std::chrono::microseconds(50 * ((size() - i) % 7)));
    calls.fetch_add(1);
    return inner_->get(i);
  }
  std::atomic<bool> failing{true};
  mutable std::atomic<int64_t> calls{0};

 private:
  std::shared_ptr<TensorDataset> inner_;
  int64_t fail_at_;
};

}  // namespace

// ---- datasets ----

TEST(TensorDatasetTest, GetAndGetBatchReturnRows) {
  auto ds = indexed_dataset(10);
  EXPECT_EQ(ds->size(), 10);
  Example e = ds->get(4);
  EXPECT_EQ(e.data.shape(), Shape({3}));
  EXPECT_EQ(e.data.to_vector<float>(), std::vector<float>({4, 4.5f, -4}));
  EXPECT_EQ(e.target.item<int64_t>(), 8);
  Example b = ds->get_batch({7, 2, 7});
  EXPECT_EQ(b.data.shape(), Shape({3, 3}));
  EXPECT_EQ(b.target.shape(), Shape({3}));
  EXPECT_EQ(batch_indices(b), std::vector<int64_t>({7, 2, 7}));
}

TEST(TensorDatasetTest, DefaultGetBatchStacksSamples) {
  SlowDataset ds(6);
  ds.failing = false;
  Example b = ds.Dataset::get_batch({5, 0, 3});
  EXPECT_EQ(b.data.shape(), Shape({3, 3}));
  EXPECT_EQ(batch_indices(b), std::vector<int64_t>({5, 0, 3}));
  EXPECT_THROW(ds.Dataset::get_batch({}), Error);
}

TEST(TensorDatasetTest, WithoutTargetsAndNonContiguousData) {
  Tensor base = from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {3, 2});
  TensorDataset ds(ops::transpose(base, 0, 1));  // [2, 3]: rows (0, 2, 4) and (1, 3, 5)
  EXPECT_EQ(ds.size(), 2);
  Example e = ds.get(1);
  EXPECT_FALSE(e.target.defined());
  EXPECT_EQ(e.data.to_vector<float>(), std::vector<float>({1, 3, 5}));
  Example b = ds.get_batch({1, 0});
  EXPECT_FALSE(b.target.defined());
  EXPECT_EQ(b.data.to_vector<float>(), std::vector<float>({1, 3, 5, 0, 2, 4}));
}

TEST(TensorDatasetTest, RejectsMismatchesAndBadIndices) {
  EXPECT_THROW(TensorDataset(zeros({4, 2}), zeros({5})), Error);
  EXPECT_THROW(TensorDataset(scalar_tensor(1)), Error);
  EXPECT_THROW(TensorDataset{Tensor{}}, Error);
  auto ds = indexed_dataset(4);
  EXPECT_THROW(ds->get(4), Error);
  EXPECT_THROW(ds->get(-1), Error);
  try {
    ds->get_batch({0, 9});
    FAIL() << "expected braid::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TensorDataset::get_batch"), std::string::npos) << e.what();
  }
}

// ---- DataLoader: order and batching ----

TEST(DataLoaderTest, SequentialBatchesInOrder) {
  DataLoader loader(indexed_dataset(23), {.batch_size = 5});
  EXPECT_EQ(loader.size(), 5);
  auto batches = run_epoch(loader);
  ASSERT_EQ(batches.size(), 5u);
  for (size_t b = 0; b < 4; ++b) EXPECT_EQ(batches[b].size(), 5u);
  EXPECT_EQ(batches[4].size(), 3u);
  EXPECT_EQ(flatten(batches), iota(23));
}

TEST(DataLoaderTest, BatchContentsEqualDatasetRows) {
  auto ds = indexed_dataset(17);
  DataLoader loader(ds, {.batch_size = 4, .shuffle = true, .seed = 3});
  for (auto& batch : loader) {
    std::vector<int64_t> idx = batch_indices(batch);
    Example expect = ds->get_batch(idx);
    EXPECT_TRUE(ops::allclose(batch.data, expect.data));
    EXPECT_EQ(batch.target.to_vector<int64_t>(), expect.target.to_vector<int64_t>());
  }
}

TEST(DataLoaderTest, ShuffleVisitsEveryIndexExactlyOncePerEpoch) {
  DataLoader loader(indexed_dataset(103), {.batch_size = 10, .shuffle = true, .seed = 42});
  for (uint64_t epoch = 0; epoch < 3; ++epoch) {
    auto order = flatten(run_epoch(loader));
    EXPECT_EQ(order, loader.indices(epoch));
    EXPECT_NE(order, iota(103)) << "a shuffled epoch came out in the identity order";
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, iota(103));
  }
}

TEST(DataLoaderTest, SameSeedAndEpochGiveSameOrder) {
  DataLoaderOptions opt{.batch_size = 8, .shuffle = true, .seed = 7};
  DataLoader a(indexed_dataset(50), opt), b(indexed_dataset(50), opt);
  auto a0 = run_epoch(a), b0 = run_epoch(b);
  EXPECT_EQ(a0, b0);
  a.set_epoch(5);
  b.set_epoch(5);
  EXPECT_EQ(run_epoch(a), run_epoch(b));
  // A loader that is told the epoch repeats it exactly.
  a.set_epoch(0);
  EXPECT_EQ(run_epoch(a), a0);
}

TEST(DataLoaderTest, EpochsAdvanceAndChangeTheOrder) {
  DataLoader loader(indexed_dataset(50), {.batch_size = 8, .shuffle = true, .seed = 7});
  EXPECT_EQ(loader.next_epoch(), 0u);
  auto e0 = flatten(run_epoch(loader));
  EXPECT_EQ(loader.next_epoch(), 1u);
  auto e1 = flatten(run_epoch(loader));
  EXPECT_EQ(loader.next_epoch(), 2u);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e1, loader.indices(1));
  // A different seed gives a different order for the same epoch.
  DataLoader other(indexed_dataset(50), {.batch_size = 8, .shuffle = true, .seed = 8});
  EXPECT_NE(flatten(run_epoch(other)), e0);
  // Without shuffle every epoch is the identity order.
  DataLoader plain(indexed_dataset(50), {.batch_size = 8});
  run_epoch(plain);
  EXPECT_EQ(flatten(run_epoch(plain)), iota(50));
}

TEST(DataLoaderTest, DropLast) {
  DataLoader keep(indexed_dataset(103), {.batch_size = 10, .shuffle = true});
  DataLoader drop(indexed_dataset(103), {.batch_size = 10, .shuffle = true, .drop_last = true});
  EXPECT_EQ(keep.size(), 11);
  EXPECT_EQ(drop.size(), 10);
  auto k = run_epoch(keep), d = run_epoch(drop);
  ASSERT_EQ(k.size(), 11u);
  ASSERT_EQ(d.size(), 10u);
  EXPECT_EQ(k.back().size(), 3u);
  for (auto& b : d) EXPECT_EQ(b.size(), 10u);
  // drop_last keeps the same order and only loses the short tail.
  EXPECT_EQ(std::vector<std::vector<int64_t>>(k.begin(), k.begin() + 10), d);
  // Fewer samples than one batch: nothing at all.
  DataLoader tiny(indexed_dataset(3), {.batch_size = 4, .drop_last = true});
  EXPECT_EQ(tiny.size(), 0);
  EXPECT_TRUE(run_epoch(tiny).empty());
  EXPECT_TRUE(tiny.begin() == tiny.end());
}

TEST(DataLoaderTest, EmptyDatasetHasNoBatches) {
  auto ds = std::make_shared<TensorDataset>(zeros({0, 3}), zeros({0}, DType::Int64));
  DataLoader loader(ds, {.batch_size = 2, .shuffle = true, .num_workers = 2, .num_shards = 3, .shard_index = 2});
  EXPECT_EQ(loader.size(), 0);
  EXPECT_TRUE(run_epoch(loader).empty());
}

// ---- sharding ----

TEST(DataLoaderTest, ShardsAreDisjointAndCover) {
  const int64_t n = 100, shards = 4;
  std::vector<int64_t> all;
  for (int64_t k = 0; k < shards; ++k) {
    DataLoader loader(indexed_dataset(n),
                      {.batch_size = 7, .shuffle = true, .seed = 11, .num_shards = shards, .shard_index = k});
    loader.set_epoch(2);
    auto part = flatten(run_epoch(loader));
    EXPECT_EQ(int64_t(part.size()), n / shards);
    EXPECT_EQ(loader.size(), 4);  // ceil(25 / 7)
    all.insert(all.end(), part.begin(), part.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, iota(n)) << "shards overlap or miss samples";
}

TEST(DataLoaderTest, UnevenShardsPadByWrappingLikeDistributedSampler) {
  const int64_t n = 10, shards = 4;  // 3 per shard, 12 in all: the first 2 samples of the order repeat
  DataLoaderOptions opt{.batch_size = 2, .shuffle = true, .seed = 5, .num_shards = shards};
  DataLoader whole(indexed_dataset(n), {.batch_size = 2, .shuffle = true, .seed = 5});
  std::vector<int64_t> order = whole.indices(0);
  std::vector<int64_t> padded = order;
  padded.insert(padded.end(), order.begin(), order.begin() + 2);
  std::multiset<int64_t> seen;
  for (int64_t k = 0; k < shards; ++k) {
    opt.shard_index = k;
    DataLoader loader(indexed_dataset(n), opt);
    auto part = flatten(run_epoch(loader));
    ASSERT_EQ(part.size(), 3u);
    for (size_t j = 0; j < part.size(); ++j) EXPECT_EQ(part[j], padded[k + j * shards]);
    seen.insert(part.begin(), part.end());
  }
  EXPECT_EQ(seen.size(), 12u);
  for (int64_t i = 0; i < n; ++i) EXPECT_GE(seen.count(i), 1u) << "sample " << i << " is in no shard";
  // More shards than samples still gives every shard one sample.
  DataLoader many(indexed_dataset(3), {.num_shards = 5, .shard_index = 4});
  EXPECT_EQ(flatten(run_epoch(many)), std::vector<int64_t>({1}));
}

TEST(DataLoaderTest, RejectsInvalidOptions) {
  auto ds = indexed_dataset(4);
  EXPECT_THROW(DataLoader(ds, {.batch_size = 0}), Error);
  EXPECT_THROW(DataLoader(ds, {.num_workers = -1}), Error);
  EXPECT_THROW(DataLoader(ds, {.num_workers = 2, .prefetch = 0}), Error);
  EXPECT_THROW(DataLoader(ds, {.num_shards = 0}), Error);
  EXPECT_THROW(DataLoader(ds, {.num_shards = 2, .shard_index = 2}), Error);
  EXPECT_THROW(DataLoader(ds, {.num_shards = 2, .shard_index = -1}), Error);
  EXPECT_THROW(DataLoader(nullptr), Error);
}

// ---- workers ----

TEST(DataLoaderTest, WorkersGiveTheSameBatchesInTheSameOrder) {
  auto ds = std::make_shared<SlowDataset>(157);
  ds->failing = false;
  DataLoaderOptions base{.batch_size = 6, .shuffle = true, .seed = 9};
  DataLoader reference(ds, base);
  auto expect0 = run_epoch(reference), expect1 = run_epoch(reference);
  for (int workers : {1, 2, 5}) {
    for (int prefetch : {1, 3}) {
      DataLoaderOptions opt = base;
      opt.num_workers = workers;
      opt.prefetch = prefetch;
      DataLoader loader(ds, opt);
      EXPECT_EQ(run_epoch(loader), expect0) << workers << " workers, prefetch " << prefetch;
      EXPECT_EQ(run_epoch(loader), expect1) << workers << " workers, prefetch " << prefetch;
    }
  }
}

TEST(DataLoaderTest, WorkersStayWithinThePrefetchBound) {
  auto ds = std::make_shared<SlowDataset>(200);
  ds->failing = false;
  DataLoader loader(ds, {.batch_size = 1, .num_workers = 2, .prefetch = 3});
  auto it = loader.begin();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // One delivered batch plus at most prefetch * num_workers built ahead.
  EXPECT_LE(ds->calls.load(), 1 + 6);
  EXPECT_GE(ds->calls.load(), 1);
}

TEST(DataLoaderTest, EarlyBreakAndDestructionDoNotHang) {
  auto ds = std::make_shared<SlowDataset>(400);
  ds->failing = false;
  DataLoader loader(ds, {.batch_size = 3, .shuffle = true, .num_workers = 4, .prefetch = 2});
  for (int round = 0; round < 3; ++round) {
    int seen = 0;
    for (auto& batch : loader) {
      EXPECT_EQ(batch.data.size(0), 3);
      if (++seen == 2) break;
    }
    EXPECT_EQ(seen, 2);
  }
  // After breaking out, a full pass still works and is complete.
  auto all = flatten(run_epoch(loader));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, iota(400));
  // Destroying a loader in the middle of a pass joins its workers.
  {
    DataLoader short_lived(ds, {.batch_size = 2, .num_workers = 3});
    auto it = short_lived.begin();
    ++it;
  }
  // An iterator that outlives its loader cannot advance, and says why.
  DataLoader::Iterator orphan;
  {
    DataLoader short_lived(ds, {.batch_size = 2, .num_workers = 2});
    orphan = short_lived.begin();
  }
  EXPECT_THROW(++orphan, Error);
}

TEST(DataLoaderTest, NewPassEndsThePreviousOne) {
  DataLoader loader(indexed_dataset(20), {.batch_size = 2, .num_workers = 2});
  auto first = loader.begin();
  auto second = loader.begin();
  EXPECT_THROW(++first, Error);
  int count = 1;
  for (++second; second != loader.end(); ++second) ++count;
  EXPECT_EQ(count, 10);
}

TEST(DataLoaderTest, WorkerExceptionIsRethrownInOrder) {
  for (int workers : {0, 1, 3}) {
    auto ds = std::make_shared<SlowDataset>(60, /*fail_at=*/37);
    DataLoader loader(ds, {.batch_size = 5, .num_workers = workers});
    std::vector<int64_t> delivered;
    try {
      for (auto& batch : loader) {
        auto idx = batch_indices(batch);
        delivered.insert(delivered.end(), idx.begin(), idx.end());
      }
      FAIL() << "expected the dataset's braid::Error with " << workers << " workers";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("sample 37 is broken"), std::string::npos) << e.what();
    }
    // Every batch before the broken one (35..39) arrived first, in order.
    EXPECT_EQ(delivered, iota(35)) << workers << " workers";
    // The loader is still usable once the data is fixed.
    ds->failing = false;
    EXPECT_EQ(flatten(run_epoch(loader)), iota(60));
  }
}

// ---- IDX ----

namespace {

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("braid_idx_test_" + std::to_string(::getpid()) + "_" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static std::vector<uint8_t> header(uint8_t type, const std::vector<uint32_t>& dims) {
    std::vector<uint8_t> h = {0, 0, type, uint8_t(dims.size())};
    for (uint32_t d : dims) h.insert(h.end(), {uint8_t(d >> 24), uint8_t(d >> 16), uint8_t(d >> 8), uint8_t(d)});
    return h;
  }
  static std::vector<uint8_t> concat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
  std::string write_gz(const std::string& name, const std::vector<uint8_t>& bytes) const {
    std::string p = path(name);
    gzFile f = gzopen(p.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    if (!bytes.empty()) {
      EXPECT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
    }
    EXPECT_EQ(gzclose(f), Z_OK);
    return p;
  }
  std::string write_plain(const std::string& name, const std::vector<uint8_t>& bytes) const {
    std::string p = path(name);
    FILE* f = std::fopen(p.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    if (!bytes.empty()) {
      EXPECT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
    }
    std::fclose(f);
    return p;
  }

  std::filesystem::path dir_;
};

}  // namespace

TEST_F(IdxTest, ReadsImagesAndLabels) {
  std::vector<uint8_t> pixels(3 * 2 * 2);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(i * 23);
  std::string images = write_gz("img.gz", concat(header(0x08, {3, 2, 2}), pixels));
  std::string labels = write_gz("lbl.gz", concat(header(0x08, {3}), {9, 0, 4}));

  Tensor raw = read_idx(images);
  EXPECT_EQ(raw.dtype(), DType::Float32);
  EXPECT_EQ(raw.shape(), Shape({3, 2, 2}));
  std::vector<float> expect_raw(pixels.begin(), pixels.end());
  EXPECT_EQ(raw.to_vector<float>(), expect_raw);

  Tensor img = read_idx_images(images);
  EXPECT_EQ(img.dtype(), DType::Float32);
  EXPECT_EQ(img.shape(), Shape({3, 4}));
  std::vector<float> got = img.to_vector<float>();
  for (size_t i = 0; i < pixels.size(); ++i) EXPECT_FLOAT_EQ(got[i], pixels[i] / 255.0f);

  Tensor lbl = read_idx_labels(labels);
  EXPECT_EQ(lbl.dtype(), DType::Int64);
  EXPECT_EQ(lbl.to_vector<int64_t>(), std::vector<int64_t>({9, 0, 4}));
}

TEST_F(IdxTest, PlainFilesWorkToo) {
  std::string p = write_plain("lbl", concat(header(0x08, {4}), {1, 2, 3, 255}));
  EXPECT_EQ(read_idx_labels(p).to_vector<int64_t>(), std::vector<int64_t>({1, 2, 3, 255}));
}

TEST_F(IdxTest, DecodesEveryElementTypeBigEndian) {
  Tensor i8 = read_idx(write_gz("i8.gz", concat(header(0x09, {2}), {0xFF, 0x05})));
  EXPECT_EQ(i8.dtype(), DType::Float32);
  EXPECT_EQ(i8.to_vector<float>(), std::vector<float>({-1, 5}));

  Tensor i16 = read_idx(write_gz("i16.gz", concat(header(0x0B, {2}), {0xFF, 0xFE, 0x01, 0x00})));
  EXPECT_EQ(i16.to_vector<float>(), std::vector<float>({-2, 256}));

  Tensor i32 = read_idx(write_gz("i32.gz", concat(header(0x0C, {1, 2}), {0x80, 0, 0, 0, 0x01, 0x02, 0x03, 0x04})));
  EXPECT_EQ(i32.dtype(), DType::Int64);
  EXPECT_EQ(i32.shape(), Shape({1, 2}));
  EXPECT_EQ(i32.to_vector<int64_t>(), std::vector<int64_t>({-2147483648LL, 0x01020304}));

  // 1.5f is 0x3FC00000, -2.0 (double) is 0xC000000000000000.
  Tensor f32 = read_idx(write_gz("f32.gz", concat(header(0x0D, {1}), {0x3F, 0xC0, 0, 0})));
  EXPECT_EQ(f32.dtype(), DType::Float32);
  EXPECT_EQ(f32.to_vector<float>(), std::vector<float>({1.5f}));
  Tensor f64 = read_idx(write_gz("f64.gz", concat(header(0x0E, {1}), {0xC0, 0, 0, 0, 0, 0, 0, 0})));
  EXPECT_EQ(f64.dtype(), DType::Float64);
  EXPECT_EQ(f64.to_vector<double>(), std::vector<double>({-2.0}));

  Tensor labels32 = read_idx_labels(write_gz("l32.gz", concat(header(0x0C, {2}), {0, 0, 0, 7, 0, 0, 1, 0})));
  EXPECT_EQ(labels32.to_vector<int64_t>(), std::vector<int64_t>({7, 256}));
}

TEST_F(IdxTest, MissingFileIsAnError) {
  std::string p = path("nope.gz");
  expect_error([&] { read_idx(p); }, {p, "does not exist"});
}

TEST_F(IdxTest, BadMagicIsAnError) {
  std::string p = write_gz("bad.gz", {'P', 'K', 3, 4, 0, 0, 0, 1, 0});
  expect_error([&] { read_idx(p); }, {p, "magic"});
  std::string unknown_type = write_gz("type.gz", concat(header(0x07, {1}), {0}));
  expect_error([&] { read_idx(unknown_type); }, {unknown_type, "magic"});
  std::string zero_dims = write_gz("dims.gz", header(0x08, {}));
  expect_error([&] { read_idx(zero_dims); }, {zero_dims, "0 dims"});
}

TEST_F(IdxTest, TruncatedFilesAreErrors) {
  std::string empty = write_gz("empty.gz", {});
  expect_error([&] { read_idx(empty); }, {empty, "truncated"});
  std::vector<uint8_t> cut_header = header(0x08, {5, 28, 28});
  cut_header.resize(9);
  std::string h = write_gz("header.gz", cut_header);
  expect_error([&] { read_idx(h); }, {h, "truncated"});
  std::string data = write_gz("data.gz", concat(header(0x08, {2, 3, 3}), std::vector<uint8_t>(17, 1)));
  expect_error([&] { read_idx_images(data); }, {data, "truncated", "18 bytes"});
  std::string extra = write_gz("extra.gz", concat(header(0x08, {2}), {1, 2, 3}));
  expect_error([&] { read_idx(extra); }, {extra, "more data"});
  // A gzip stream cut in the middle.
  std::string whole = write_gz("whole.gz", concat(header(0x08, {4000}), std::vector<uint8_t>(4000, 7)));
  auto size = std::filesystem::file_size(whole);
  std::filesystem::resize_file(whole, size - 10);
  EXPECT_THROW(read_idx(whole), Error);
}

TEST_F(IdxTest, CorruptHeaderDoesNotAllocateWhatItClaims) {
  // 2^31 x 2^31 x 2^31 elements overflows any size: rejected from the header alone.
  std::string huge = write_gz("huge.gz", concat(header(0x0E, {0x80000000u, 0x80000000u, 0x80000000u}), {1, 2}));
  expect_error([&] { read_idx(huge); }, {huge, "too many elements"});
  // About 550 GB claimed with 3 bytes present: the read fails at the end of the data, not in an allocation.
  std::string big = write_gz("big.gz", concat(header(0x08, {0x7FFFFFFFu, 256}), {1, 2, 3}));
  expect_error([&] { read_idx(big); }, {big, "truncated"});
}

TEST_F(IdxTest, WrongKindOfFileForImagesOrLabels) {
  std::string labels = write_gz("lbl.gz", concat(header(0x08, {3}), {1, 2, 3}));
  expect_error([&] { read_idx_images(labels); }, {labels, "expected u8 images"});
  std::string images = write_gz("img.gz", concat(header(0x08, {1, 1, 2}), {1, 2}));
  expect_error([&] { read_idx_labels(images); }, {images, "expected integer labels"});
  std::string floats = write_gz("f.gz", concat(header(0x0D, {1}), {0, 0, 0, 0}));
  expect_error([&] { read_idx_labels(floats); }, {floats, "expected integer labels"});
}

TEST_F(IdxTest, FashionMNISTFromAFolder) {
  std::vector<uint8_t> pixels(2 * 28 * 28);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(i % 251);
  write_gz("t10k-images-idx3-ubyte.gz", concat(header(0x08, {2, 28, 28}), pixels));
  write_plain("t10k-labels-idx1-ubyte", concat(header(0x08, {2}), {3, 8}));
  auto ds = load_fashion_mnist(dir_.string(), /*train=*/false);
  EXPECT_EQ(ds->size(), 2);
  EXPECT_EQ(ds->data().shape(), Shape({2, 784}));
  EXPECT_EQ(ds->targets().to_vector<int64_t>(), std::vector<int64_t>({3, 8}));
  EXPECT_FLOAT_EQ(ds->get(1).data.to_vector<float>()[0], float(784 % 251) / 255.0f);

  // The train files are missing.
  expect_error([&] { FashionMNIST(dir_.string(), true); }, {"train-images-idx3-ubyte"});
  // Image and label counts disagree.
  write_gz("train-images-idx3-ubyte.gz", concat(header(0x08, {2, 28, 28}), pixels));
  write_gz("train-labels-idx1-ubyte.gz", concat(header(0x08, {3}), {1, 2, 3}));
  expect_error([&] { FashionMNIST(dir_.string(), true); },
               {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "2 images", "3 labels"});
}

TEST(FashionMNISTTest, InstalledDataset) {
  if (!std::filesystem::exists(std::string(default_fashion_mnist_root) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << default_fashion_mnist_root;
  FashionMNIST train;
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(train.data().shape(), Shape({60000, 784}));
  EXPECT_EQ(train.data().dtype(), DType::Float32);
  EXPECT_EQ(train.targets().dtype(), DType::Int64);
  EXPECT_GE(ops::amin(train.data()).item<float>(), 0.0f);
  EXPECT_LE(ops::amax(train.data()).item<float>(), 1.0f);
  std::vector<int64_t> counts(10, 0);
  for (int64_t y : train.targets().to_vector<int64_t>()) {
    ASSERT_GE(y, 0);
    ASSERT_LE(y, 9);
    ++counts[y];
  }
  for (int64_t c : counts) EXPECT_EQ(c, 6000);  // Fashion-MNIST's training classes are balanced
  auto test = load_fashion_mnist(default_fashion_mnist_root, /*train=*/false);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(test->data().shape(), Shape({10000, 784}));
}
