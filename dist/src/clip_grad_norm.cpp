#include "braid/dist/clip_grad_norm.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "braid/core/creation.h"
#include "braid/core/ops.h"
#include "braid/dist/init.h"
#include "braid/nn/autograd.h"
#include "braid/nn/parallel_attributes.h"
#include "group_ranks.h"

namespace braid::dist {

namespace {

// sum |g|^p, or max |g| for the infinity norm, in float64.
double local_term(const Tensor& g, bool inf, double p) {
  if (g.numel() == 0) return 0;
  Tensor a = ops::to_dtype(ops::unary(ops::UnaryOp::Abs, g), DType::Float64);
  if (inf) return ops::amax(a).item<double>();
  return ops::sum(ops::pow_scalar(a, p)).item<double>();
}

double combine(double a, double b, bool inf) { return inf ? std::max(a, b) : a + b; }

double reduce_over(const std::shared_ptr<ProcessGroup>& group, Device device, double value, bool inf) {
  Tensor t = ops::to_device(from_vector(std::vector<double>{value}), device);
  all_reduce(t, inf ? ReduceOp::Max : ReduceOp::Sum, group);
  return ops::to_device(t, Device::cpu()).item<double>();
}

// The sharded parameters' terms of one shard group, before they are summed over it.
struct ShardGroupTerm {
  std::shared_ptr<ProcessGroup> group;
  Device device;
  double term = 0;
};

using detail::ranks_str;

void check_shard_group(size_t i, const nn::ParallelAttributes& a) {
  BRAID_CHECK(a.group->size() == a.num_shards, "clip_grad_norm_: parameter ", i, " is split into ", a.num_shards,
              " shards but its group has ", a.group->size(), " ranks ", ranks_str(a.group->ranks()));
}

// The stage group must meet each shard group in this rank only, or it would sum shards a second time.
void check_stage_group(const ProcessGroup& stages, const ProcessGroup& shards) {
  std::vector<int> common = detail::shared_ranks(stages, shards);
  BRAID_CHECK(common.size() == 1, "clip_grad_norm_: the group passed (ranks ", ranks_str(stages.ranks()),
              ") shares ranks ", ranks_str(common), " with a parameter's shard group ", ranks_str(shards.ranks()),
              "; expected the group across pipeline stages, which meets each shard group in this rank alone (shards "
              "are already summed over their own group)");
}

double total_norm(const std::vector<Tensor>& params, const std::shared_ptr<ProcessGroup>& group, bool inf, double p) {
  double replicated = 0;
  std::vector<ShardGroupTerm> sharded;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& param = params[i];
    BRAID_CHECK(param.defined(), "clip_grad_norm_: parameter ", i, " is undefined");
    nn::ParallelAttributes a = nn::parallel_attributes(param);
    double term = param.grad().defined() ? local_term(param.grad(), inf, p) : 0.0;
    if (!a.is_sharded()) {
      replicated = combine(replicated, term, inf);
      continue;
    }
    check_shard_group(i, a);
    auto it = std::find_if(sharded.begin(), sharded.end(), [&](const auto& s) { return s.group == a.group; });
    if (it == sharded.end()) it = sharded.insert(sharded.end(), ShardGroupTerm{a.group, param.device()});
    it->term = combine(it->term, term, inf);
  }
  double total = replicated;
  for (const auto& s : sharded) {
    if (group) check_stage_group(*group, *s.group);
    total = combine(total, reduce_over(s.group, s.device, s.term, inf), inf);
  }
  if (group) total = reduce_over(group, params.empty() ? Device::cpu() : params[0].device(), total, inf);
  return inf ? total : std::pow(total, 1.0 / p);
}

}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, const std::shared_ptr<ProcessGroup>& group,
                       double norm_type) {
  BRAID_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  BRAID_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be positive, got ", norm_type);
  NoGradGuard guard;
  double total = total_norm(params, group, std::isinf(norm_type), norm_type);
  // The same factor as torch.nn.utils.clip_grad_norm_ (and optim::clip_grad_norm_), so a model split across ranks
  // is clipped exactly as the unsplit one.
  double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    for (const auto& p : params)
      if (p.grad().defined()) ops::mul_(p.grad(), coef);
  return total;
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  return clip_grad_norm_(params, max_norm, nullptr, norm_type);
}

}  // namespace braid::dist
