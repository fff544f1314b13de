#include "braid/data/dataset.h"

#include "braid/core/creation.h"
#include "braid/core/ops.h"

namespace braid::data {

Dataset::~Dataset() = default;

Example Dataset::get_batch(const std::vector<int64_t>& indices) const {
  BRAID_CHECK(!indices.empty(),
              "Dataset::get_batch: expected at least one index (the batch shape is unknown "
              "without a sample)");
  std::vector<Tensor> data, targets;
  data.reserve(indices.size());
  targets.reserve(indices.size());
  bool with_target = false;
  for (size_t k = 0; k < indices.size(); ++k) {
    Example e = get(indices[k]);
    BRAID_CHECK(e.data.defined(), "Dataset::get_batch: sample ", indices[k], " has no data");
    if (k == 0) with_target = e.target.defined();
    BRAID_CHECK(e.target.defined() == with_target, "Dataset::get_batch: sample ", indices[k],
                (with_target ? " has no target but sample " : " has a target but sample "), indices[0],
                (with_target ? " has one" : " has none"));
    data.push_back(std::move(e.data));
    if (with_target) targets.push_back(std::move(e.target));
  }
  Example batch;
  batch.data = ops::stack(data, 0);
  if (with_target) batch.target = ops::stack(targets, 0);
  return batch;
}

TensorDataset::TensorDataset(Tensor data, Tensor targets) {
  BRAID_CHECK(data.defined(), "TensorDataset: data is an undefined tensor");
  BRAID_CHECK(data.dim() >= 1, "TensorDataset: data must have at least one dim (samples along dim 0), got shape ",
              shape_str(data.shape()));
  if (targets.defined()) {
    BRAID_CHECK(targets.dim() >= 1, "TensorDataset: targets must have at least one dim, got shape ",
                shape_str(targets.shape()));
    BRAID_CHECK(targets.shape()[0] == data.shape()[0], "TensorDataset: data has ", data.shape()[0], " samples (shape ",
                shape_str(data.shape()), ") but targets have ", targets.shape()[0], " (shape ",
                shape_str(targets.shape()), ")");
  }
  // index_select makes its source contiguous on every call; doing it once here keeps batches cheap.
  data_ = ops::contiguous(data.detach());
  if (targets.defined()) targets_ = ops::contiguous(targets.detach());
}

int64_t TensorDataset::size() const { return data_.shape()[0]; }

void TensorDataset::check_index(int64_t index, const char* op) const {
  BRAID_CHECK(index >= 0 && index < size(), op, ": index ", index, " is out of range [0, ", size(), ")");
}

Example TensorDataset::get(int64_t index) const {
  check_index(index, "TensorDataset::get");
  Example e;
  e.data = ops::select(data_, 0, index);
  if (targets_.defined()) e.target = ops::select(targets_, 0, index);
  return e;
}

Example TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  for (int64_t i : indices) check_index(i, "TensorDataset::get_batch");
  Tensor index = from_vector(indices, {int64_t(indices.size())});
  Example batch;
  batch.data = ops::index_select(data_, 0, index);
  if (targets_.defined()) batch.target = ops::index_select(targets_, 0, index);
  return batch;
}

}  // namespace braid::data
