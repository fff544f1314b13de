#include "braid/optim/lr_scheduler.h"

#include <cmath>
#include <set>

#include "optim_util.h"

namespace braid::optim {

namespace {
void check_step_lr(int64_t step_size, double gamma) {
  BRAID_CHECK(step_size > 0, "StepLR: step_size must be positive, got ", step_size);
  BRAID_CHECK(std::isfinite(gamma) && gamma >= 0, "StepLR: gamma must be finite and >= 0, got ", gamma);
}

void check_cosine(int64_t t_max, double eta_min) {
  BRAID_CHECK(t_max > 0, "CosineAnnealingLR: t_max must be positive, got ", t_max);
  BRAID_CHECK(std::isfinite(eta_min) && eta_min >= 0, "CosineAnnealingLR: eta_min must be finite and >= 0, got ",
              eta_min);
}
void check_warmup_cosine(int64_t warmup_steps, int64_t total_steps, double min_lr) {
  BRAID_CHECK(warmup_steps >= 0, "WarmupCosineLR: warmup_steps must be >= 0, got ", warmup_steps);
  BRAID_CHECK(total_steps > warmup_steps,
              "WarmupCosineLR: total_steps must be greater than warmup_steps, got total_steps ", total_steps,
              " and warmup_steps ", warmup_steps);
  BRAID_CHECK(std::isfinite(min_lr) && min_lr >= 0, "WarmupCosineLR: min_lr must be finite and >= 0, got ", min_lr);
}
}  // namespace

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (size_t g = 0; g < optimizer.param_groups().size(); ++g) base_lrs_.push_back(optimizer.lr(g));
}

void LRScheduler::step() {
  ++epoch_;
  apply();
}

void LRScheduler::apply() {
  for (size_t g = 0; g < base_lrs_.size(); ++g) optimizer_.set_lr(g, lr_at(epoch_, base_lrs_[g]));
}

LRSchedulerState LRScheduler::state_dict() const { return {epoch_, base_lrs_, options()}; }

void LRScheduler::check_state_dict(const LRSchedulerState& s) const {
  const std::string op = std::string(name()) + "::load_state_dict";
  BRAID_CHECK(s.base_lrs.size() == base_lrs_.size(), op, ": the state has base learning rates for ", s.base_lrs.size(),
              " parameter groups, the optimizer has ", base_lrs_.size());
  for (size_t g = 0; g < s.base_lrs.size(); ++g)
    detail::check_lr(op + ": base lr of parameter group " + std::to_string(g), s.base_lrs[g]);
  BRAID_CHECK(s.last_epoch >= 0, op, ": last_epoch must be >= 0, got ", s.last_epoch);
  std::set<std::string> want, got;
  for (const auto& [k, _] : options()) want.insert(k);
  for (const auto& [k, _] : s.options) got.insert(k);
  BRAID_CHECK(want == got, op, ": the state's options do not fit this ", name(), ": ",
              detail::name_mismatch(want, got));
  check_options(s.options);
}

void LRScheduler::load_state_dict(const LRSchedulerState& s) {
  check_state_dict(s);
  set_options(s.options);
  base_lrs_ = s.base_lrs;
  epoch_ = s.last_epoch;
}

StepLR::StepLR(Optimizer& o, int64_t step_size, double gamma) : LRScheduler(o), step_size_(step_size), gamma_(gamma) {
  check_step_lr(step_size, gamma);
}

double StepLR::lr_at(int64_t epoch, double base_lr) const {
  return base_lr * std::pow(gamma_, double(epoch / step_size_));
}

std::map<std::string, double> StepLR::options() const { return {{"step_size", double(step_size_)}, {"gamma", gamma_}}; }

void StepLR::check_options(const std::map<std::string, double>& o) const {
  check_step_lr(detail::count_from("StepLR", "step_size", o.at("step_size")), o.at("gamma"));
}

void StepLR::set_options(const std::map<std::string, double>& o) {
  step_size_ = detail::count_from("StepLR", "step_size", o.at("step_size"));
  gamma_ = o.at("gamma");
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& o, int64_t t_max, double eta_min)
    : LRScheduler(o), t_max_(t_max), eta_min_(eta_min) {
  check_cosine(t_max, eta_min);
}

double CosineAnnealingLR::lr_at(int64_t epoch, double base_lr) const {
  return eta_min_ + (base_lr - eta_min_) * (1 + std::cos(M_PI * double(epoch) / double(t_max_))) / 2;
}

// PyTorch's names for the settings, so a state dict reads the same in both.
std::map<std::string, double> CosineAnnealingLR::options() const {
  return {{"T_max", double(t_max_)}, {"eta_min", eta_min_}};
}

void CosineAnnealingLR::check_options(const std::map<std::string, double>& o) const {
  check_cosine(detail::count_from("CosineAnnealingLR", "T_max", o.at("T_max")), o.at("eta_min"));
}

void CosineAnnealingLR::set_options(const std::map<std::string, double>& o) {
  t_max_ = detail::count_from("CosineAnnealingLR", "T_max", o.at("T_max"));
  eta_min_ = o.at("eta_min");
}

WarmupCosineLR::WarmupCosineLR(Optimizer& o, int64_t warmup_steps, int64_t total_steps, double min_lr)
    : LRScheduler(o), warmup_steps_(warmup_steps), total_steps_(total_steps), min_lr_(min_lr) {
  check_warmup_cosine(warmup_steps, total_steps, min_lr);
  // Unlike the epoch schedules, step 0's rate is not the base rate, and the first optimizer step uses it.
  apply();
}

double WarmupCosineLR::lr_at(int64_t step, double base_lr) const {
  if (step < warmup_steps_) return base_lr * double(step + 1) / double(warmup_steps_);
  if (step > total_steps_) return min_lr_;
  double progress = double(step - warmup_steps_) / double(total_steps_ - warmup_steps_);
  return min_lr_ + (base_lr - min_lr_) * (1 + std::cos(M_PI * progress)) / 2;
}

std::map<std::string, double> WarmupCosineLR::options() const {
  return {{"warmup_steps", double(warmup_steps_)}, {"total_steps", double(total_steps_)}, {"min_lr", min_lr_}};
}

void WarmupCosineLR::check_options(const std::map<std::string, double>& o) const {
  check_warmup_cosine(detail::count_from("WarmupCosineLR", "warmup_steps", o.at("warmup_steps")),
                      detail::count_from("WarmupCosineLR", "total_steps", o.at("total_steps")), o.at("min_lr"));
}

void WarmupCosineLR::set_options(const std::map<std::string, double>& o) {
  warmup_steps_ = detail::count_from("WarmupCosineLR", "warmup_steps", o.at("warmup_steps"));
  total_steps_ = detail::count_from("WarmupCosineLR", "total_steps", o.at("total_steps"));
  min_lr_ = o.at("min_lr");
}

}  // namespace braid::optim
