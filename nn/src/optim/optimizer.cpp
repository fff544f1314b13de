#include "braid/optim/optimizer.h"

#include <cmath>

#include "braid/optim/adam.h"
#include "braid/optim/clip_grad.h"
#include "braid/optim/lr_scheduler.h"
#include "braid/optim/sgd.h"

namespace braid::optim {

namespace {
void check_param(const char* opt, size_t i, const Tensor& p) {
  BRAID_CHECK(p.defined(), opt, ": parameter ", i, " is undefined");
  BRAID_CHECK(p.is_leaf() && p.requires_grad(), opt, ": parameter ", i, " (", shape_str(p.shape()),
              ") must be a leaf tensor that requires grad");
  BRAID_CHECK(is_floating(p.dtype()), opt, ": parameter ", i, " is ", p.dtype(), ", expected floating point");
}
// A gradient the fused kernels can read: contiguous, same dtype and device as the parameter.
Tensor usable_grad(const Tensor& p) {
  Tensor g = p.grad();
  return g.defined() ? ops::contiguous(g) : g;
}
}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
  for (size_t i = 0; i < params_.size(); ++i) check_param("Optimizer", i, params_[i]);
  set_lr(lr);
}

void Optimizer::set_lr(double lr) {
  BRAID_CHECK(lr >= 0 && std::isfinite(lr), "Optimizer: learning rate must be finite and >= 0, got ", lr);
  lr_ = lr;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& p : params_) {
    if (!p.grad().defined()) continue;
    if (set_to_none) p.set_grad(Tensor());
    else ops::fill_(p.grad(), 0);
  }
}

SGD::SGD(std::vector<Tensor> params, SGDOptions o) : Optimizer(std::move(params), o.lr), options_(o) {
  BRAID_CHECK(o.momentum >= 0, "SGD: momentum must be >= 0, got ", o.momentum);
  BRAID_CHECK(o.weight_decay >= 0, "SGD: weight_decay must be >= 0, got ", o.weight_decay);
  BRAID_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
              "SGD: Nesterov momentum needs momentum > 0 and dampening = 0");
  buffers_.resize(params_.size());
}

void SGD::step() {
  NoGradGuard guard;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = usable_grad(params_[i]);
    if (!g.defined()) continue;
    bool first = !buffers_[i].defined();
    if (options_.momentum != 0 && first) buffers_[i] = empty_like(params_[i]);
    ops::sgd_update_(params_[i], g, buffers_[i],
                     {lr_, options_.momentum, options_.dampening, options_.weight_decay, options_.nesterov, first});
  }
}

Adam::Adam(std::vector<Tensor> params, AdamOptions o) : Adam(std::move(params), o, false) {}

Adam::Adam(std::vector<Tensor> params, AdamOptions o, bool decoupled)
    : Optimizer(std::move(params), o.lr), options_(o), decoupled_(decoupled) {
  const char* name = decoupled ? "AdamW" : "Adam";
  BRAID_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, name, ": betas must be in [0, 1), got (",
              o.beta1, ", ", o.beta2, ")");
  BRAID_CHECK(o.eps >= 0, name, ": eps must be >= 0, got ", o.eps);
  BRAID_CHECK(o.weight_decay >= 0, name, ": weight_decay must be >= 0, got ", o.weight_decay);
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
  param_steps_.resize(params_.size(), 0);
}

void Adam::step() {
  NoGradGuard guard;
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = usable_grad(params_[i]);
    if (!g.defined()) continue;
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = zeros_like(params_[i]);
      exp_avg_sq_[i] = zeros_like(params_[i]);
    }
    ops::adam_update_(params_[i], g, exp_avg_[i], exp_avg_sq_[i],
                      {lr_, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, ++param_steps_[i],
                       decoupled_});
  }
}

void LRScheduler::step() {
  ++epoch_;
  optimizer_.set_lr(lr_at(epoch_));
}

StepLR::StepLR(Optimizer& o, int64_t step_size, double gamma) : LRScheduler(o), step_size_(step_size), gamma_(gamma) {
  BRAID_CHECK(step_size > 0, "StepLR: step_size must be positive, got ", step_size);
}

double StepLR::lr_at(int64_t epoch) const { return base_lr_ * std::pow(gamma_, double(epoch / step_size_)); }

CosineAnnealingLR::CosineAnnealingLR(Optimizer& o, int64_t t_max, double eta_min)
    : LRScheduler(o), t_max_(t_max), eta_min_(eta_min) {
  BRAID_CHECK(t_max > 0, "CosineAnnealingLR: t_max must be positive, got ", t_max);
}

double CosineAnnealingLR::lr_at(int64_t epoch) const {
  return eta_min_ + (base_lr_ - eta_min_) * (1 + std::cos(M_PI * double(epoch) / double(t_max_))) / 2;
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  BRAID_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  BRAID_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be positive, got ", norm_type);
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
