// What the pipeline test suites share: a seeded batch, the MSE loss every stage list ends in, the single-process
// reference (the unsplit model trained with SGD on the full batch) and the element-wise comparison of a stage's
// parameters with it.
#pragma once

#include <braid/braid.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace braid::pipeline_test {

struct Batch {
  Tensor x, y;
};

// Inputs of `in` and targets of `out` features, `rows` of each, drawn after manual_seed(seed).
inline Batch random_batch(uint64_t seed, int64_t rows, int64_t in, int64_t out, DType dtype = DType::Float64) {
  manual_seed(seed);
  TensorOptions options(dtype, Device::cpu());
  Tensor x = randn({rows, in}, options);
  return {x, randn({rows, out}, options)};
}

inline Tensor mse(const Tensor& output, const Tensor& target) { return nn::mse_loss(output, target); }

// Every parameter of `model` by its name in the full model (what a stage's named_parameters() also gives).
inline std::map<std::string, Tensor> parameter_map(const nn::Sequential& model) {
  std::map<std::string, Tensor> params;
  for (auto& [name, p] : model->named_parameters()) params[name] = p;
  return params;
}

// Trains `model` for `steps` SGD steps (lr 0.1) of the MSE on batch_of(step), the whole batch in one process, and
// returns its parameters.
template <class BatchOf>
std::map<std::string, Tensor> trained_single_process(nn::Sequential model, int steps, BatchOf&& batch_of) {
  optim::SGD optimizer(model->parameters(), optim::SGDOptions{.lr = 0.1});
  for (int step = 0; step < steps; ++step) {
    Batch b = batch_of(step);
    optimizer.zero_grad();
    mse(model->forward(b.x), b.y).backward();
    optimizer.step();
  }
  return parameter_map(model);
}

// Each parameter of this rank's stages, in stage order (what the rank's optimizer updates).
inline std::vector<Tensor> parameters_of(const std::vector<nn::Sequential>& stages) {
  std::vector<Tensor> params;
  for (const auto& stage : stages)
    for (auto& p : stage->parameters()) params.push_back(p);
  return params;
}

// Float64 tensors equal within `tolerance` relative (and 1e-12 absolute), element by element.
inline void expect_close(const Tensor& got, const Tensor& want, double tolerance, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  Tensor g = ops::contiguous(got), w = ops::contiguous(want);
  for (int64_t i = 0; i < g.numel(); ++i) {
    const double a = g.data<double>()[i], b = w.data<double>()[i];
    ASSERT_NEAR(a, b, tolerance * std::abs(b) + 1e-12) << what << "[" << i << "]";
  }
}

// Every parameter of `stages` is in `want` under its name and equals it within 1e-5 relative.
inline void expect_stages_match(const std::vector<nn::Sequential>& stages, const std::map<std::string, Tensor>& want) {
  for (const auto& stage : stages)
    for (auto& [name, p] : stage->named_parameters()) {
      ASSERT_TRUE(want.count(name)) << name;
      expect_close(p, want.at(name), 1e-5, name);
    }
}

}  // namespace braid::pipeline_test
