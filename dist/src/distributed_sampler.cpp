#include "braid/dist/distributed_sampler.h"

#include <numeric>

#include "braid/core/creation.h"
#include "braid/core/random.h"

namespace braid::dist {

DistributedSampler::DistributedSampler(int64_t dataset_size, int num_replicas, int rank, bool shuffle, uint64_t seed,
                                       bool drop_last)
    : dataset_size_(dataset_size),
      num_replicas_(num_replicas),
      rank_(rank),
      shuffle_(shuffle),
      drop_last_(drop_last),
      seed_(seed) {
  BRAID_CHECK(dataset_size >= 0, "DistributedSampler: dataset_size must be non-negative, got ", dataset_size);
  BRAID_CHECK(num_replicas >= 1, "DistributedSampler: num_replicas must be at least 1, got ", num_replicas);
  BRAID_CHECK(rank >= 0 && rank < num_replicas, "DistributedSampler: rank ", rank, " is out of range [0, ",
              num_replicas, ")");
}

int64_t DistributedSampler::size() const {
  int64_t r = num_replicas_;
  // drop_last drops the tail that does not divide evenly; otherwise the order wraps round to fill every rank.
  return drop_last_ ? dataset_size_ / r : (dataset_size_ + r - 1) / r;
}

std::vector<int64_t> DistributedSampler::indices() const {
  const int64_t n = dataset_size_, per_rank = size();
  std::vector<int64_t> out;
  if (per_rank == 0) return out;
  std::vector<int64_t> order = data::epoch_order(n, shuffle_, seed_, epoch_);
  // Rank r takes positions r, r + R, ... of the order, wrapped round (position p is order[p % n]).
  out.reserve(per_rank);
  for (int64_t j = 0; j < per_rank; ++j) out.push_back(order[(rank_ + j * num_replicas_) % n]);
  return out;
}

data::DataLoaderOptions distributed_loader_options(data::DataLoaderOptions options,
                                                   std::shared_ptr<ProcessGroup> group) {
  if (!group) group = world();
  BRAID_CHECK(group, "distributed_loader_options: no process group (call braid::dist::init() first, or pass one)");
  options.num_shards = group->size();
  options.shard_index = group->rank();
  return options;
}

}  // namespace braid::dist
