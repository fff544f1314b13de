// Shared by the tensor-parallel suites: groups of a given size carved out of the world, a process group that
// counts the collectives it forwards, gathered gradients, and comparisons against the unsplit model.
#pragma once

#include <braid/braid.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "dist_test_util.h"

namespace braid::tp_test {

using dist::ProcessGroupPtr;

// This rank's group among consecutive blocks of `size` ranks. Every rank creates every block's group (new_group is
// collective over the world), so call it on all ranks; null when this rank is in no full block.
inline ProcessGroupPtr tp_group(int size) {
  const int world = dist::world_size();
  ProcessGroupPtr mine;
  for (int first = 0; first + size <= world; first += size) {
    std::vector<int> ranks(size_t(size), 0);
    std::iota(ranks.begin(), ranks.end(), first);
    auto g = dist::new_group(ranks);
    if (g->is_member()) mine = g;
  }
  return mine;
}

#define TP_GROUP_OR_SKIP(var, size)                                                                          \
  auto var = ::braid::tp_test::tp_group(size);                                                               \
  if (!var)                                                                                                  \
  GTEST_SKIP() << "needs a tensor-parallel group of " << (size) << " (world " << ::braid::dist::world_size() \
               << ", rank " << ::braid::dist::rank() << ")"

// Forwards every call to `inner`, counting the collectives by kind.
class CountingGroup : public dist::ProcessGroup {
 public:
  explicit CountingGroup(ProcessGroupPtr inner) : inner_(std::move(inner)) {}
  std::map<std::string, int> counts;

  bool is_member() const override { return inner_->is_member(); }
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  const std::vector<int>& ranks() const override { return inner_->ranks(); }
  dist::WorkHandle all_reduce(const Tensor& t, dist::ReduceOp op) override {
    ++counts["all_reduce"];
    return inner_->all_reduce(t, op);
  }
  dist::WorkHandle broadcast(const Tensor& t, int root) override {
    ++counts["broadcast"];
    return inner_->broadcast(t, root);
  }
  dist::WorkHandle all_gather(const Tensor& out, const Tensor& in) override {
    ++counts["all_gather"];
    return inner_->all_gather(out, in);
  }
  dist::WorkHandle reduce_scatter(const Tensor& out, const Tensor& in, dist::ReduceOp op) override {
    ++counts["reduce_scatter"];
    return inner_->reduce_scatter(out, in, op);
  }
  dist::WorkHandle reduce(const Tensor& t, int dst, dist::ReduceOp op) override {
    ++counts["reduce"];
    return inner_->reduce(t, dst, op);
  }
  dist::WorkHandle gather(const Tensor& out, const Tensor& in, int dst) override {
    ++counts["gather"];
    return inner_->gather(out, in, dst);
  }
  dist::WorkHandle scatter(const Tensor& out, const Tensor& in, int src) override {
    ++counts["scatter"];
    return inner_->scatter(out, in, src);
  }
  dist::WorkHandle all_to_all(const Tensor& out, const Tensor& in) override {
    ++counts["all_to_all"];
    return inner_->all_to_all(out, in);
  }
  dist::WorkHandle send(const Tensor& t, int dst, int tag) override {
    ++counts["send"];
    return inner_->send(t, dst, tag);
  }
  dist::WorkHandle recv(const Tensor& t, int src, int tag) override {
    ++counts["recv"];
    return inner_->recv(t, src, tag);
  }
  dist::WorkHandle batch_isend_irecv(const std::vector<dist::P2POp>& ops) override {
    ++counts["batch_isend_irecv"];
    return inner_->batch_isend_irecv(ops);
  }
  dist::WorkHandle barrier() override {
    ++counts["barrier"];
    return inner_->barrier();
  }

 private:
  ProcessGroupPtr inner_;
};

// The full gradient of every parameter of `m` (gathered over its shard group), named as m's parameters with '_'
// for '.'; the same on every rank.
inline nn::StateDict gathered_grads(const nn::Module& m) {
  nn::Module holder("GradHolder");
  for (const auto& [name, p] : m.named_parameters()) {
    EXPECT_TRUE(p.grad().defined()) << name << " has no gradient";
    if (!p.grad().defined()) continue;
    Tensor g = ops::clone(p.grad());
    nn::copy_parallel_attributes(g, p);
    std::string key = name;
    std::replace(key.begin(), key.end(), '.', '_');
    holder.register_parameter(key, g, false);
  }
  return dist::gather_full_state_dict(holder);
}

// max |a - b| <= rtol * max |b| (float32 sums in another order differ in the last bits).
inline void expect_close(const Tensor& actual, const Tensor& expected, const std::string& what, double rtol = 1e-5) {
  ASSERT_TRUE(actual.defined()) << what << " is undefined";
  ASSERT_EQ(shape_str(actual.shape()), shape_str(expected.shape())) << what;
  std::vector<double> a = ops::to_dtype(ops::to_device(actual, Device::cpu()), DType::Float64).to_vector<double>();
  std::vector<double> e = ops::to_dtype(ops::to_device(expected, Device::cpu()), DType::Float64).to_vector<double>();
  double scale = 0, diff = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    scale = std::max(scale, std::abs(e[i]));
    diff = std::max(diff, std::abs(a[i] - e[i]));
  }
  EXPECT_LE(diff, rtol * scale) << what << ": max difference " << diff << " against max magnitude " << scale
                                << " (rank " << dist::rank() << ")";
  EXPECT_GT(scale, 0) << what << " is all zeros: the comparison proves nothing";
}

inline void expect_equal(const Tensor& actual, const Tensor& expected, const std::string& what) {
  ASSERT_EQ(shape_str(actual.shape()), shape_str(expected.shape())) << what;
  EXPECT_EQ(ops::to_device(actual, Device::cpu()).to_vector<float>(),
            ops::to_device(expected, Device::cpu()).to_vector<float>())
      << what << " (rank " << dist::rank() << ")";
}

// This rank's slice of `full` along dim (the sequence split of sequence parallelism).
inline Tensor slice_of(const Tensor& full, const dist::ProcessGroup& group, int64_t dim) {
  int64_t n = full.shape()[size_t(dim)] / group.size();
  return ops::contiguous(ops::narrow(full, dim, group.rank() * n, n));
}

inline Tensor leaf(const Tensor& value) {
  Tensor t = ops::clone(value);
  t.requires_grad_(true);
  return t;
}

// A tensor-parallel size, with or without sequence parallelism, and its test name ("tp2_sp").
struct TpCase {
  int tp;
  bool sequence_parallel;
};

inline std::string case_name(const testing::TestParamInfo<TpCase>& info) {
  return "tp" + std::to_string(info.param.tp) + (info.param.sequence_parallel ? "_sp" : "");
}

// The collectives a column-then-row block issues in each direction: one all-reduce, or one all-gather and one
// reduce-scatter with sequence parallelism; none on a group of one.
inline std::map<std::string, int> expected_collectives(const TpCase& c) {
  if (c.tp == 1) return {};
  if (c.sequence_parallel) return {{"all_gather", 1}, {"reduce_scatter", 1}};
  return {{"all_reduce", 1}};
}

}  // namespace braid::tp_test
