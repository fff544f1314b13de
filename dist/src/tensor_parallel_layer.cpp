#include "tensor_parallel_layer.h"

#include <sstream>

#include "braid/core/creation.h"
#include "braid/nn/parallel_attributes.h"
#include "collectives_along_dim.h"

namespace braid::dist::detail {

namespace {

std::string names_of(const std::vector<NamedSize>& sizes) {
  std::string out;
  for (size_t i = 0; i < sizes.size(); ++i) out += std::string(i ? ", " : "") + sizes[i].name;
  return out;
}

void check_agreement(const char* layer, ProcessGroup& group, const std::vector<NamedSize>& sizes) {
  std::vector<int64_t> mine;
  for (const auto& s : sizes) mine.push_back(s.value);
  Tensor all = empty({int64_t(mine.size()) * group.size()}, DType::Int64);
  group.all_gather(all, from_vector(mine))->wait();
  std::vector<int64_t> v = all.to_vector<int64_t>();
  bool same = true;
  for (size_t i = 0; i < v.size(); ++i) same = same && v[i] == mine[i % mine.size()];
  if (same) return;
  std::ostringstream msg;
  msg << layer << ": the ranks of the tensor-parallel group disagree on the sizes (" << names_of(sizes) << "):";
  for (int r = 0; r < group.size(); ++r) {
    msg << (r ? "," : "") << " rank " << group.ranks()[size_t(r)] << " [";
    for (size_t i = 0; i < mine.size(); ++i) msg << (i ? ", " : "") << v[size_t(r) * mine.size() + i];
    msg << "]";
  }
  BRAID_FAIL(msg.str());
}

}  // namespace

void check_layer_sizes(const char* layer, const std::shared_ptr<ProcessGroup>& group,
                       const std::vector<NamedSize>& sizes) {
  check_tensor_parallel_group(layer, group);
  if (group->size() > 1) check_agreement(layer, *group, sizes);
  for (const auto& s : sizes) BRAID_CHECK(s.value > 0, layer, ": ", s.name, " must be positive, got ", s.value);
  for (const auto& s : sizes)
    BRAID_CHECK(!s.must_divide || s.value % group->size() == 0, layer, ": ", s.name, " ", s.value,
                " does not divide by the tensor-parallel size ", group->size());
}

ShardSpec shard_spec(const std::shared_ptr<ProcessGroup>& group, int64_t dim, int64_t stride) {
  return {.dim = dim, .num_shards = group->size(), .shard_rank = group->rank(), .stride = stride};
}

void mark_shard(const Tensor& t, const std::shared_ptr<ProcessGroup>& group, int64_t dim, int64_t stride) {
  nn::set_parallel_attributes(t, {.shard_dim = dim,
                                  .num_shards = group->size(),
                                  .shard_rank = group->rank(),
                                  .group = group,
                                  .partition_stride = stride});
}

}  // namespace braid::dist::detail
