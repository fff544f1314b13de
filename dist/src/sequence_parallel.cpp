#include "braid/dist/sequence_parallel.h"

#include <vector>

#include "braid/nn/autograd.h"
#include "braid/nn/parallel_attributes.h"
#include "collectives_along_dim.h"

namespace braid::dist {

void mark_sequence_parallel(const Tensor& param, const std::shared_ptr<ProcessGroup>& group) {
  detail::check_tensor_parallel_group("mark_sequence_parallel", group);
  nn::ParallelAttributes a = nn::parallel_attributes(param);
  BRAID_CHECK(!a.is_sharded(), "mark_sequence_parallel: the parameter ", shape_str(param.shape()),
              " is a shard (split along dim ", a.shard_dim, "); only replicated parameters have partial gradients");
  a.sequence_parallel = true;
  a.group = group;
  nn::set_parallel_attributes(param, a);
}

void mark_sequence_parallel(nn::Module& module, const std::shared_ptr<ProcessGroup>& group) {
  for (const Tensor& p : module.parameters()) mark_sequence_parallel(p, group);
}

bool is_sequence_parallel(const Tensor& param) { return nn::parallel_attributes(param).sequence_parallel; }

void all_reduce_sequence_parallel_grads(const nn::Module& model) {
  NoGradGuard no_grad;
  std::vector<WorkHandle> pending;
  for (const Tensor& p : model.parameters()) {
    nn::ParallelAttributes a = nn::parallel_attributes(p);
    if (!a.sequence_parallel || !p.grad().defined() || a.group->size() == 1) continue;
    Tensor g = p.grad();
    BRAID_CHECK(g.is_contiguous(), "all_reduce_sequence_parallel_grads: the gradient of a parameter ",
                shape_str(p.shape()), " is not contiguous");
    pending.push_back(a.group->all_reduce(g, ReduceOp::Sum));
  }
  for (const auto& w : pending) w->wait();
}

}  // namespace braid::dist
