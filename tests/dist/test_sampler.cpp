// DistributedSampler and distributed_loader_options: each rank's share is disjoint from the others' and together
// they cover the data set (padded by wrapping), the order follows the epoch, every rank draws the same shuffle, and
// the sampler visits exactly what a DataLoader sharded the same way visits.
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <vector>

#include "../test_util.h"

namespace braid {
namespace {

using dist::DistributedSampler;

// How often each index appears across the shares of all `replicas` ranks.
std::map<int64_t, int> coverage(int64_t n, int replicas, bool shuffle, bool drop_last, uint64_t epoch) {
  std::map<int64_t, int> seen;
  for (int r = 0; r < replicas; ++r) {
    DistributedSampler s(n, replicas, r, shuffle, 42, drop_last);
    s.set_epoch(epoch);
    auto idx = s.indices();
    EXPECT_EQ(int64_t(idx.size()), s.size());
    for (int64_t i : idx) {
      EXPECT_TRUE(i >= 0 && i < n) << i;
      ++seen[i];
    }
  }
  return seen;
}

TEST(DistributedSampler, SharesAreDisjointAndCoverTheDataSetPaddedByWrapping) {
  for (int64_t n : {0, 1, 5, 10, 11, 17}) {
    for (int replicas : {1, 2, 3, 4}) {
      for (bool shuffle : {false, true}) {
        SCOPED_TRACE("n=" + std::to_string(n) + " replicas=" + std::to_string(replicas) + (shuffle ? " shuffled" : ""));
        DistributedSampler s(n, replicas, 0, shuffle);
        EXPECT_EQ(s.size(), (n + replicas - 1) / replicas);
        auto seen = coverage(n, replicas, shuffle, false, 3);
        EXPECT_EQ(int64_t(seen.size()), n);  // every index at least once
        int64_t total = 0, repeats = 0;
        for (auto& [i, count] : seen) total += count, repeats += count - 1;
        EXPECT_EQ(total, s.size() * replicas);
        EXPECT_EQ(repeats, s.size() * replicas - n);  // only the padding repeats, and it is less than one round
        EXPECT_LT(repeats, replicas);

        DistributedSampler d(n, replicas, 0, shuffle, 0, /*drop_last=*/true);
        EXPECT_EQ(d.size(), n / replicas);
        auto kept = coverage(n, replicas, shuffle, true, 3);
        EXPECT_EQ(int64_t(kept.size()), d.size() * replicas);  // the tail is dropped, nothing repeats
        for (auto& [i, count] : kept) EXPECT_EQ(count, 1) << i;
      }
    }
  }
}

TEST(DistributedSampler, UnshuffledRankTakesEveryReplicasThIndex) {
  DistributedSampler s(10, 3, 1, /*shuffle=*/false);
  EXPECT_EQ(s.indices(), (std::vector<int64_t>{1, 4, 7, 0}));  // position 10 wraps round to index 0
}

TEST(DistributedSampler, EpochChangesTheOrderAndTheSameEpochRepeatsIt) {
  DistributedSampler s(100, 2, 1, true, 5);
  s.set_epoch(0);
  auto e0 = s.indices();
  s.set_epoch(1);
  auto e1 = s.indices();
  s.set_epoch(0);
  EXPECT_EQ(s.indices(), e0);
  EXPECT_NE(e0, e1);
  auto a = e0, b = e1;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_NE(a, b);  // not just reordered within the rank: the share itself changes
  DistributedSampler other_seed(100, 2, 1, true, 6);
  EXPECT_NE(other_seed.indices(), e0);
}

TEST(DistributedSampler, MatchesTheDataLoaderShardedTheSameWay) {
  for (int64_t n : {7, 23}) {
    auto dataset = std::make_shared<data::TensorDataset>(arange(double(n), DType::Int64));
    for (int shards : {1, 2, 3, 4}) {
      for (int shard = 0; shard < shards; ++shard) {
        for (bool shuffle : {false, true}) {
          data::DataLoader loader(
              dataset, {.batch_size = 2, .shuffle = shuffle, .seed = 9, .num_shards = shards, .shard_index = shard});
          DistributedSampler s(n, shards, shard, shuffle, 9);
          for (uint64_t epoch : {0, 1, 7}) {
            s.set_epoch(epoch);
            EXPECT_EQ(s.indices(), loader.indices(epoch)) << "n=" << n << " shard " << shard << "/" << shards;
          }
        }
      }
    }
  }
}

TEST(DistributedSampler, RejectsBadArguments) {
  test::expect_error([] { DistributedSampler(10, 0, 0); }, {"num_replicas"});
  test::expect_error([] { DistributedSampler(10, 2, 2); }, {"rank 2"});
  test::expect_error([] { DistributedSampler(-1, 2, 0); }, {"dataset_size"});
}

// Across real processes: every rank's share, gathered, is the partition that one process computes for all ranks,
// so all ranks drew the same permutation.
TEST(DistributedSampler, RanksAgreeOnTheShuffleAndSplitTheDataSet) {
  auto group = dist::world();
  const int world = group->size(), rank = group->rank();
  const int64_t n = 23;
  for (uint64_t epoch : {0, 1}) {
    DistributedSampler mine(n, world, rank, true, 77);
    mine.set_epoch(epoch);
    auto idx = mine.indices();
    Tensor gathered = empty({int64_t(world) * mine.size()}, DType::Int64);
    group->all_gather(gathered, from_vector(idx))->wait();
    auto all = gathered.to_vector<int64_t>();
    std::vector<int64_t> expected;
    for (int r = 0; r < world; ++r) {
      DistributedSampler s(n, world, r, true, 77);
      s.set_epoch(epoch);
      auto v = s.indices();
      expected.insert(expected.end(), v.begin(), v.end());
    }
    EXPECT_EQ(all, expected);
    std::vector<int64_t> sorted = all;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    EXPECT_EQ(int64_t(sorted.size()), n);
  }
}

TEST(DistributedSampler, LoaderOptionsShardTheDataSetOverTheGroup) {
  auto group = dist::world();
  auto options = dist::distributed_loader_options({.batch_size = 4, .shuffle = true, .seed = 3});
  EXPECT_EQ(options.num_shards, group->size());
  EXPECT_EQ(options.shard_index, group->rank());
  EXPECT_EQ(options.batch_size, 4);
  EXPECT_TRUE(options.shuffle);
  const int64_t n = 40;  // divisible by 1, 2 and 4; 3 ranks pad by 2
  auto dataset = std::make_shared<data::TensorDataset>(arange(double(n), DType::Int64));
  data::DataLoader loader(dataset, options);
  std::vector<int64_t> visited;
  for (auto& batch : loader) {
    auto v = batch.data.to_vector<int64_t>();
    visited.insert(visited.end(), v.begin(), v.end());
  }
  EXPECT_EQ(visited, loader.indices(0));
  const int64_t per_rank = (n + group->size() - 1) / group->size();
  ASSERT_EQ(int64_t(visited.size()), per_rank);
  Tensor gathered = empty({int64_t(group->size()) * per_rank}, DType::Int64);
  group->all_gather(gathered, from_vector(visited))->wait();
  auto all = gathered.to_vector<int64_t>();
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  EXPECT_EQ(int64_t(all.size()), n);
}

}  // namespace
}  // namespace braid
