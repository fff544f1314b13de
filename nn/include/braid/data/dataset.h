// Datasets: a Dataset maps an index in [0, size()) to an Example (data and target). get and get_batch must be
// safe to call from several threads at once, because the DataLoader's workers do. get_batch returns the batch
// stacked along a new leading dim; the default stacks get(i), and TensorDataset overrides it with one gather.
#pragma once

#include <cstdint>
#include <vector>

#include "braid/core/tensor.h"

namespace braid::data {

// One sample or one batch. `target` is undefined for unlabelled data.
struct Example {
  Tensor data;
  Tensor target;
};

class Dataset {
 public:
  virtual ~Dataset();
  virtual int64_t size() const = 0;
  virtual Example get(int64_t index) const = 0;
  // Stacks get(i) for each index; every sample must have the same shapes, and all or none must have a target.
  virtual Example get_batch(const std::vector<int64_t>& indices) const;
};

// Samples are rows (dim 0) of `data` and of `targets` (which may be undefined). get returns views into the
// tensors; get_batch returns fresh contiguous tensors.
class TensorDataset : public Dataset {
 public:
  explicit TensorDataset(Tensor data, Tensor targets = Tensor());

  int64_t size() const override;
  Example get(int64_t index) const override;
  Example get_batch(const std::vector<int64_t>& indices) const override;

  const Tensor& data() const { return data_; }
  const Tensor& targets() const { return targets_; }

 private:
  void check_index(int64_t index, const char* op) const;

  Tensor data_;
  Tensor targets_;
};

}  // namespace braid::data
