// Optimizer state of CUDA parameters: state_dict's buffers stay on the GPU, a training-state file (written from the
// CPU copies) loads back onto the parameters' GPU, and the loaded optimizer continues exactly as the original.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"
#include "cuda_test_util.h"

using namespace braid;
using braid::test::kGpu;

namespace {

class CudaTrainingState : public braid::test::CudaTest {};

std::unique_ptr<optim::Optimizer> make(const std::string& kind, const std::vector<Tensor>& params, double lr) {
  if (kind == "SGD") return std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = lr, .momentum = 0.9});
  if (kind == "Adam") return std::make_unique<optim::Adam>(params, optim::AdamOptions{.lr = lr});
  return std::make_unique<optim::AdamW>(params, optim::AdamWOptions{.lr = lr});
}

// The same gradient for both models at step t, set by hand so only the optimizers' element-wise updates run.
void set_grads(nn::Linear& model, int t) {
  Generator gen(uint64_t(100 + t));
  for (const Tensor& p : model->parameters()) p.set_grad(ops::to_device(randn(p.shape(), DType::Float32, &gen), kGpu));
}

std::vector<std::vector<float>> values(nn::Linear& model) {
  std::vector<std::vector<float>> out;
  for (const Tensor& p : model->parameters()) out.push_back(ops::to_device(p, Device::cpu()).to_vector<float>());
  return out;
}

}  // namespace

TEST_F(CudaTrainingState, StateStaysOnTheGpuAndAResumedOptimizerContinuesExactly) {
  const std::string file = (std::filesystem::temp_directory_path() /
                            ("braid_cuda_training_state_" + std::to_string(::getpid()) + ".safetensors"))
                               .string();
  for (std::string kind : {"SGD", "Adam", "AdamW"}) {
    SCOPED_TRACE(kind);
    manual_seed(1);
    nn::Linear model(5, 3);
    model->to(kGpu);
    auto opt = make(kind, model->parameters(), 0.05);
    optim::StepLR sched(*opt, 2, 0.5);
    for (int t = 0; t < 3; ++t) {
      set_grads(model, t);
      opt->step();
      sched.step();
    }
    for (auto& [index, state] : opt->state_dict().state)
      for (auto& [name, t] : state)
        if (name != "step") {
          EXPECT_EQ(t.device(), kGpu) << index << "." << name;
        }
    nn::save_training_state(file, *model, *opt, sched);

    manual_seed(2);
    nn::Linear resumed(5, 3);
    resumed->to(kGpu);
    auto resumed_opt = make(kind, resumed->parameters(), 0.9);
    optim::StepLR resumed_sched(*resumed_opt, 5);
    nn::load_training_state(file, *resumed, *resumed_opt, resumed_sched);
    for (auto& [index, state] : resumed_opt->state_dict().state)
      for (auto& [name, t] : state)
        if (name != "step") {
          EXPECT_EQ(t.device(), kGpu) << "loaded " << index << "." << name;
        }
    EXPECT_EQ(values(resumed), values(model));
    for (int t = 3; t < 6; ++t) {
      set_grads(model, t);
      opt->step();
      sched.step();
      set_grads(resumed, t);
      resumed_opt->step();
      resumed_sched.step();
    }
    EXPECT_EQ(resumed_opt->lr(), opt->lr());
    EXPECT_EQ(values(resumed), values(model));
  }
  std::filesystem::remove(file);
}
