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
}  // namespace

void LRScheduler::step() {
  ++epoch_;
  optimizer_.set_lr(lr_at(epoch_));
}

LRSchedulerState LRScheduler::state_dict() const { return {epoch_, {base_lr_}, options()}; }

void LRScheduler::check_state_dict(const LRSchedulerState& s) const {
  const std::string op = std::string(name()) + "::load_state_dict";
  BRAID_CHECK(s.base_lrs.size() == 1, op, ": the state has base learning rates for ", s.base_lrs.size(),
              " parameter groups, the optimizer has 1");
  detail::check_lr(op.c_str(), s.base_lrs[0]);
  BRAID_CHECK(s.last_epoch >= 0, op, ": last_epoch must be >= 0, got ", s.last_epoch);
  std::set<std::string> want, got;
  for (const auto& [k, _] : options()) want.insert(k);
  for (const auto& [k, _] : s.options) got.insert(k);
  BRAID_CHECK(want == got, op, ": the state's options do not fit this ", name(), ": ", detail::name_mismatch(want, got));
  check_options(s.options);
}

void LRScheduler::load_state_dict(const LRSchedulerState& s) {
  check_state_dict(s);
  set_options(s.options);
  base_lr_ = s.base_lrs[0];
  epoch_ = s.last_epoch;
}

StepLR::StepLR(Optimizer& o, int64_t step_size, double gamma) : LRScheduler(o), step_size_(step_size), gamma_(gamma) {
  check_step_lr(step_size, gamma);
}

double StepLR::lr_at(int64_t epoch) const { return base_lr_ * std::pow(gamma_, double(epoch / step_size_)); }

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

double CosineAnnealingLR::lr_at(int64_t epoch) const {
  return eta_min_ + (base_lr_ - eta_min_) * (1 + std::cos(M_PI * double(epoch) / double(t_max_))) / 2;
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

}  // namespace braid::optim
