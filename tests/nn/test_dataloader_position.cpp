// DataLoader::position / set_position: a loader resumed at a saved position hands out exactly the batches the
// uninterrupted loader would have, with and without workers and shards, and never builds the skipped ones.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "../test_util.h"
#include "braid/core/creation.h"
#include "braid/data/dataloader.h"
#include "braid/data/dataset.h"

using namespace braid;
using namespace braid::data;
using braid::test::expect_error;

namespace {

// Sample i is the value i; counts how many samples were built.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n) : n_(n) {}
  Example get(int64_t index) const override {
    ++built;
    return {from_vector(std::vector<float>{float(index)}, {1}), from_vector(std::vector<int64_t>{index}, {})};
  }
  int64_t size() const override { return n_; }
  mutable std::atomic<int64_t> built{0};

 private:
  int64_t n_;
};

std::vector<int64_t> targets(const Example& batch) { return batch.target.to_vector<int64_t>(); }

// The batches of the next `epochs` passes, as sample lists.
std::vector<std::vector<int64_t>> run(DataLoader& loader, int epochs) {
  std::vector<std::vector<int64_t>> out;
  for (int e = 0; e < epochs; ++e)
    for (auto& batch : loader) out.push_back(targets(batch));
  return out;
}

struct Case {
  int workers;
  int64_t shards;
};

class ResumedDataLoader : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(ResumedDataLoader, ResumedLoaderContinuesBatchForBatch) {
  const Case c = GetParam();
  auto data = std::make_shared<CountingDataset>(23);
  DataLoaderOptions options{.batch_size = 3,
                            .shuffle = true,
                            .seed = 11,
                            .num_workers = c.workers,
                            .num_shards = c.shards,
                            .shard_index = c.shards - 1};
  DataLoader straight(data, options);
  const int64_t per_epoch = straight.size();
  std::vector<std::vector<int64_t>> expected = run(straight, 3);

  // Interrupted after 2 batches of the second epoch.
  DataLoader first(data, options);
  EXPECT_EQ(first.position(), (DataLoaderPosition{0, 0}));
  run(first, 1);
  EXPECT_EQ(first.position(), (DataLoaderPosition{1, 0})) << "a finished pass stands at the next epoch";
  DataLoaderPosition saved;
  std::vector<std::vector<int64_t>> got;
  {
    auto it = first.begin();
    got.push_back(targets(*it));
    EXPECT_EQ(first.position(), (DataLoaderPosition{1, 1}));
    ++it;
    got.push_back(targets(*it));
    saved = first.position();
  }
  EXPECT_EQ(saved, (DataLoaderPosition{1, 2}));

  // Its own copy of the data, so the count below is the resumed loader's alone.
  auto fresh = std::make_shared<CountingDataset>(23);
  DataLoader resumed(fresh, options);
  resumed.set_position(saved);
  EXPECT_EQ(resumed.position(), saved);
  auto rest = run(resumed, 2);
  got.insert(got.end(), rest.begin(), rest.end());
  std::vector<std::vector<int64_t>> tail(expected.begin() + per_epoch, expected.end());
  EXPECT_EQ(got, tail);
  // Only what was handed out was built: the two skipped batches never were.
  int64_t handed_out = 0;
  for (const auto& b : rest) handed_out += int64_t(b.size());
  EXPECT_EQ(fresh->built.load(), handed_out);
}

INSTANTIATE_TEST_SUITE_P(WorkersAndShards, ResumedDataLoader,
                         ::testing::Values(Case{0, 1}, Case{2, 1}, Case{0, 2}, Case{3, 3}));

TEST(DataLoaderPositionChecks, EndOfEpochMeansTheNextAndOutOfRangeIsRefused) {
  auto data = std::make_shared<CountingDataset>(10);
  DataLoader loader(data, {.batch_size = 4});
  ASSERT_EQ(loader.size(), 3);
  loader.set_position({5, 3});
  EXPECT_EQ(loader.position(), (DataLoaderPosition{6, 0}));
  EXPECT_EQ(loader.next_epoch(), 6u);
  loader.set_epoch(2);
  EXPECT_EQ(loader.position(), (DataLoaderPosition{2, 0}));
  expect_error([&] { loader.set_position({1, 4}); }, {"DataLoader::set_position", "batch 4", "[0, 3]"});
  expect_error([&] { loader.set_position({1, -1}); }, {"DataLoader::set_position", "batch -1"});
  EXPECT_EQ(loader.position(), (DataLoaderPosition{2, 0})) << "a refused position changes nothing";
}
