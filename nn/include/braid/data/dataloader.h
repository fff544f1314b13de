// DataLoader: iterates a Dataset in batches. `for (auto& batch : loader)` is one epoch; each pass uses the next
// epoch number unless set_epoch picks one. The order is 0..n-1, or with `shuffle` a permutation drawn from a
// generator seeded from (seed, epoch) alone, so every process with the same seed sees the same order. The order
// is then padded by wrapping to a multiple of num_shards and dealt out interleaved (as PyTorch's
// DistributedSampler does): shard k gets positions k, k + num_shards, ..., ceil(n / num_shards) samples in all.
// With num_workers > 0, background threads build up to prefetch * num_workers batches ahead; batches still
// arrive in order, and an exception thrown while building one is rethrown from the loop at that batch.
// One pass runs at a time: begin() ends the previous pass (its iterators then throw), and so does destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

#include "braid/data/dataset.h"

namespace braid::data {

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  uint64_t seed = 0;
  bool drop_last = false;  // drop the last batch of this shard when it is smaller than batch_size
  int num_workers = 0;     // 0: batches are built on the consuming thread
  int prefetch = 2;        // batches queued per worker
  int64_t num_shards = 1;
  int64_t shard_index = 0;
};

// Where a loader stands: the epoch of its pass and how many of that pass's batches it has handed out. A checkpoint
// saves it and DataLoader::set_position continues from it, so a resumed run sees the batches the uninterrupted one
// would have (as the state_dict of torchdata's StatefulDataLoader).
struct DataLoaderPosition {
  uint64_t epoch = 0;
  int64_t batch = 0;
  friend bool operator==(const DataLoaderPosition&, const DataLoaderPosition&) = default;
};

// The order of 0..n-1 for an epoch: a permutation drawn from a generator seeded from (seed, epoch) alone, or the
// identity without shuffle. DataLoader and dist::DistributedSampler both shard this order.
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, uint64_t epoch);

class DataLoader {
  struct Pass;

 public:
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Example;
    using difference_type = std::ptrdiff_t;
    using pointer = Example*;
    using reference = Example&;

    Iterator() = default;
    Example& operator*() const;
    Example* operator->() const { return &**this; }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.pass_ == b.pass_; }

   private:
    friend class DataLoader;
    explicit Iterator(std::shared_ptr<Pass> pass) : pass_(std::move(pass)) {}
    std::shared_ptr<Pass> pass_;  // null at the end
  };

  DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Starts a pass over the next epoch (ending any pass still running).
  Iterator begin();
  Iterator end() { return Iterator(); }

  // Batches per pass for this shard.
  int64_t size() const;
  // The epoch the next begin() uses; later passes count up from it.
  void set_epoch(uint64_t epoch) { set_position({epoch, 0}); }
  uint64_t next_epoch() const { return next_epoch_; }
  // The batches handed out so far: within the current pass, or {next epoch, 0} once it is done (also before any
  // pass, and after set_epoch / set_position until the next begin()).
  DataLoaderPosition position() const;
  // The next begin() runs `position.epoch` from batch `position.batch` without building the batches before it;
  // later passes start at batch 0. A batch of size() means the start of the next epoch.
  void set_position(DataLoaderPosition position);
  // The sample indices this shard visits in `epoch`, in order, before batching.
  std::vector<int64_t> indices(uint64_t epoch) const;

  const DataLoaderOptions& options() const { return options_; }
  const std::shared_ptr<Dataset>& dataset() const { return dataset_; }

 private:
  std::shared_ptr<Dataset> dataset_;
  DataLoaderOptions options_;
  uint64_t next_epoch_ = 0;
  int64_t next_first_batch_ = 0;
  bool position_set_ = false;  // set_epoch / set_position since the last begin()
  std::shared_ptr<Pass> pass_;
};

}  // namespace braid::data
