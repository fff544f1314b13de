// DistributedSampler: each rank's disjoint share of a data set, shuffled by (seed, epoch) identically on every
// rank, padded by wrapping so that all ranks get the same number of samples (as torch.utils.data's
// DistributedSampler). data::DataLoader takes the same sharding through its num_shards/shard_index options;
// distributed_loader_options() fills them in for a group.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "braid/data/dataloader.h"
#include "braid/dist/process_group.h"

namespace braid::dist {

class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, int num_replicas, int rank, bool shuffle = true, uint64_t seed = 0,
                     bool drop_last = false);
  void set_epoch(uint64_t epoch) { epoch_ = epoch; }
  // This rank's sample indices for the current epoch.
  std::vector<int64_t> indices() const;
  int64_t size() const;

 private:
  int64_t dataset_size_;
  int num_replicas_, rank_;
  bool shuffle_, drop_last_;
  uint64_t seed_, epoch_ = 0;
};

// `options` with num_shards/shard_index set to this rank's place in `group` (the world when null).
data::DataLoaderOptions distributed_loader_options(data::DataLoaderOptions options,
                                                   std::shared_ptr<ProcessGroup> group = nullptr);

}  // namespace braid::dist
