#include "braid/optim/optimizer.h"

#include <cmath>

#include "braid/nn/parallel_attributes.h"
#include "braid/optim/clip_grad.h"
#include "optim_util.h"

namespace braid::optim {

namespace {
void check_param(const char* opt, size_t i, const Tensor& p) {
  BRAID_CHECK(p.defined(), opt, ": parameter ", i, " is undefined");
  BRAID_CHECK(p.is_leaf() && p.requires_grad(), opt, ": parameter ", i, " (", shape_str(p.shape()),
              ") must be a leaf tensor that requires grad");
  BRAID_CHECK(is_floating(p.dtype()), opt, ": parameter ", i, " is ", p.dtype(), ", expected floating point");
}
}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
  for (size_t i = 0; i < params_.size(); ++i) check_param("Optimizer", i, params_[i]);
  // Not set_lr: name() is pure virtual until the derived class is built.
  detail::check_lr("Optimizer", lr);
}

void Optimizer::set_lr(double lr) {
  detail::check_lr(name(), lr);
  lr_ = lr;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& p : params_) {
    if (!p.grad().defined()) continue;
    if (set_to_none) p.set_grad(Tensor());
    else ops::fill_(p.grad(), 0);
  }
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  BRAID_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  BRAID_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be positive, got ", norm_type);
  // A shard's gradient is part of a norm that spans ranks: counting it alone would clip by a smaller norm than the
  // unsplit model's, silently.
  for (size_t i = 0; i < params.size(); ++i)
    BRAID_CHECK(!nn::is_sharded(params[i]), "clip_grad_norm_: parameter ", i, " (", shape_str(params[i].shape()),
                ") is a shard of a parameter split across ranks; use dist::clip_grad_norm_, which sums the norm over "
                "the shard's group");
  NoGradGuard guard;
  double total = 0;
  bool inf = std::isinf(norm_type);
  for (const auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (inf) {
      total = std::max(total, ops::amax(ops::unary(ops::UnaryOp::Abs, g)).item<double>());
    } else {
      Tensor a = ops::to_dtype(ops::unary(ops::UnaryOp::Abs, g), DType::Float64);
      total += ops::sum(ops::pow_scalar(a, norm_type)).item<double>();
    }
  }
  if (!inf) total = std::pow(total, 1.0 / norm_type);
  double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    for (const auto& p : params)
      if (p.grad().defined()) ops::mul_(p.grad(), coef);
  return total;
}

}  // namespace braid::optim
