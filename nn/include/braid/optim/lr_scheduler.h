// Learning-rate schedules: call step() once per epoch, after the optimizer's steps, as in PyTorch.
// The state_dict holds what torch.optim.lr_scheduler's does: the epoch count, the base learning rate of each
// parameter group and the schedule's own settings (loading replaces those given to the constructor). As in
// PyTorch, loading a schedule's state leaves the optimizer's lr alone: the optimizer's own state restores it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "braid/optim/optimizer.h"

namespace braid::optim {

struct LRSchedulerState {
  int64_t last_epoch = 0;
  std::vector<double> base_lrs;           // one per parameter group
  std::map<std::string, double> options;  // StepLR: step_size, gamma; CosineAnnealingLR: T_max, eta_min
};

class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}
  virtual ~LRScheduler() = default;
  void step();
  int64_t last_epoch() const { return epoch_; }
  // "StepLR", "CosineAnnealingLR": what a checkpoint records to refuse another schedule's state.
  virtual const char* name() const = 0;

  LRSchedulerState state_dict() const;
  // Throws braid::Error naming what does not fit (group count, an option's name or value, a negative epoch)
  // before changing anything.
  void load_state_dict(const LRSchedulerState& state);
  void check_state_dict(const LRSchedulerState& state) const;

 protected:
  virtual double lr_at(int64_t epoch) const = 0;
  virtual std::map<std::string, double> options() const = 0;
  // Throws as the constructor does for invalid values; the names are already known to match.
  virtual void check_options(const std::map<std::string, double>& options) const = 0;
  virtual void set_options(const std::map<std::string, double>& options) = 0;

  Optimizer& optimizer_;
  double base_lr_;
  int64_t epoch_ = 0;
};

// lr = base_lr * gamma^(epoch / step_size)
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  const char* name() const override { return "StepLR"; }

 protected:
  double lr_at(int64_t epoch) const override;
  std::map<std::string, double> options() const override;
  void check_options(const std::map<std::string, double>& options) const override;
  void set_options(const std::map<std::string, double>& options) override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min = 0);
  const char* name() const override { return "CosineAnnealingLR"; }

 protected:
  double lr_at(int64_t epoch) const override;
  std::map<std::string, double> options() const override;
  void check_options(const std::map<std::string, double>& options) const override;
  void set_options(const std::map<std::string, double>& options) override;

 private:
  int64_t t_max_;
  double eta_min_;
};

}  // namespace braid::optim
