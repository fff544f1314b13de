#include "braid/dist/tensor_parallel_state_dict.h"

#include <string>
#include <vector>

#include "braid/core/ops.h"
#include "braid/dist/shard_init.h"
#include "braid/nn/autograd.h"
#include "braid/nn/parallel_attributes.h"
#include "collectives_along_dim.h"

namespace braid::dist {

namespace {

ShardSpec spec_of(const nn::ParallelAttributes& a) {
  return {.dim = a.shard_dim, .num_shards = a.num_shards, .shard_rank = a.shard_rank, .stride = a.partition_stride};
}

// The all-gathered tensor holds each rank's stride blocks in turn; the full tensor holds each block's ranks in turn.
Tensor gather_shards(const Tensor& shard, const nn::ParallelAttributes& a) {
  Tensor by_rank = detail::all_gather_along(shard, *a.group, a.shard_dim);
  if (a.partition_stride == 1) return by_rank;
  int64_t n = shard.shape()[size_t(a.shard_dim)], part = n / a.partition_stride;
  std::vector<Tensor> pieces;
  for (int64_t b = 0; b < a.partition_stride; ++b)
    for (int64_t r = 0; r < a.num_shards; ++r)
      pieces.push_back(ops::narrow(by_rank, a.shard_dim, r * n + b * part, part));
  return ops::cat(pieces, a.shard_dim);
}

Tensor part_for(const std::string& name, const Tensor& own, const Tensor& full) {
  const char* op = "load_full_state_dict";
  BRAID_CHECK(full.defined(), op, ": \"", name, "\" is undefined in the state dict");
  BRAID_CHECK(full.dtype() == own.dtype(), op, ": \"", name, "\" is ", full.dtype(), " in the state dict but ",
              own.dtype(), " in the model");
  nn::ParallelAttributes a = nn::parallel_attributes(own);
  if (!a.is_sharded()) {
    BRAID_CHECK(full.shape() == own.shape(), op, ": \"", name, "\" has shape ", shape_str(full.shape()),
                " in the state dict but ", shape_str(own.shape()), " in the model");
    return full;
  }
  Shape expected = own.shape();
  expected[size_t(a.shard_dim)] *= a.num_shards;
  BRAID_CHECK(full.dim() == own.dim() && full.shape()[size_t(a.shard_dim)] % (a.num_shards * a.partition_stride) == 0,
              op, ": \"", name, "\" of full shape ", shape_str(full.shape()), " does not split into ", a.num_shards,
              " shards (x ", a.partition_stride, " blocks) along dim ", a.shard_dim);
  BRAID_CHECK(full.shape() == expected, op, ": \"", name, "\" has full shape ", shape_str(full.shape()),
              " in the state dict but the model's ", a.num_shards, " shards of ", shape_str(own.shape()), " make ",
              shape_str(expected));
  return shard_of(full, spec_of(a));
}

}  // namespace

nn::StateDict gather_full_state_dict(const nn::Module& model) {
  NoGradGuard no_grad;
  nn::StateDict out;
  for (const auto& [name, t] : model.state_dict()) {
    nn::ParallelAttributes a = nn::parallel_attributes(t);
    out[name] = a.is_sharded() ? gather_shards(t, a) : t;
  }
  return out;
}

void load_full_state_dict(nn::Module& model, const nn::StateDict& full) {
  const char* op = "load_full_state_dict";
  nn::StateDict own = model.state_dict();
  for (const auto& [name, t] : full)
    BRAID_CHECK(own.count(name), op, ": the state dict has \"", name, "\", which the model does not have");
  std::vector<std::pair<Tensor, Tensor>> copies;
  for (const auto& [name, t] : own) {
    auto it = full.find(name);
    BRAID_CHECK(it != full.end(), op, ": the model's \"", name, "\" is missing from the state dict");
    copies.emplace_back(t, part_for(name, t, it->second));
  }
  NoGradGuard no_grad;
  for (const auto& [dst, src] : copies) ops::copy_(dst, ops::to_device(src, dst.device()));
}

}  // namespace braid::dist
