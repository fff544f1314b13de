// DistributedDataParallel refuses models that differ between ranks: every rank throws the same error naming the
// first differing parameter and what each rank has there, before rank 0's broadcast touches any weight.
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dist_test_util.h"

namespace braid {
namespace {

using dist::DistributedDataParallel;
using dist_test::error_of;
using dist_test::expect_contains;

// The values of every parameter, copied, so that a test can tell whether DDP wrote into them.
std::vector<Tensor> copies_of(const nn::Module& m) {
  std::vector<Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(ops::clone(p));
  return out;
}

void expect_unchanged(const nn::Module& m, const std::vector<Tensor>& before) {
  std::vector<Tensor> now = m.parameters();
  ASSERT_EQ(now.size(), before.size());
  for (size_t i = 0; i < now.size(); ++i) {
    Tensor a = ops::to_dtype(now[i], DType::Float64), b = ops::to_dtype(before[i], DType::Float64);
    ASSERT_EQ(a.shape(), b.shape());
    EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>()) << "parameter " << i << " on rank " << dist::rank();
  }
}

// Wraps `model` and returns the error every rank must get, checking that no weight changed.
std::string ddp_error(nn::Module& model) {
  std::vector<Tensor> before = copies_of(model);
  std::string msg = error_of([&] { DistributedDataParallel ddp(model); });
  expect_unchanged(model, before);
  return msg;
}

TEST(DdpModelCheck, DifferentWidthThrowsOnEveryRankNamingEachRanksShape) {
  REQUIRE_RANKS(2);
  const int64_t width = dist::rank() == 1 ? 20 : 16;
  nn::Sequential model(nn::Linear(8, width), nn::ReLU(), nn::Linear(width, 4));
  std::string msg = ddp_error(*model);
  expect_contains(msg, "differ at parameter/buffer 0");
  expect_contains(msg, "rank 0: 0.weight [16, 8] float32, rank 1: 0.weight [20, 8] float32");
  if (dist::world_size() > 2) expect_contains(msg, "rank 2: 0.weight [16, 8] float32");
}

TEST(DdpModelCheck, DifferentNumberOfLayersThrowsOnEveryRank) {
  REQUIRE_RANKS(2);
  nn::Sequential model(nn::Linear(8, 16), nn::ReLU(), nn::Linear(16, 4));
  if (dist::rank() == 1) model->push_back(nn::Linear(4, 4));
  std::string msg = ddp_error(*model);
  expect_contains(msg, "differ at parameter/buffer 4");
  expect_contains(msg, "rank 0: (none), rank 1: 3.weight [4, 4] float32");
  expect_contains(msg, "entries per rank: 4, 6");
}

TEST(DdpModelCheck, DifferentDtypeThrowsOnEveryRank) {
  REQUIRE_RANKS(2);
  nn::Sequential model(nn::Linear(8, 16), nn::ReLU(), nn::Linear(16, 4));
  if (dist::rank() == 1) model->to(DType::Float64);
  std::string msg = ddp_error(*model);
  expect_contains(msg, "rank 0: 0.weight [16, 8] float32, rank 1: 0.weight [16, 8] float64");
}

TEST(DdpModelCheck, DifferentNamesThrowOnEveryRank) {
  REQUIRE_RANKS(2);
  struct Named : nn::Module {
    explicit Named(const std::string& name) { register_module(name, nn::Linear(8, 4)); }
  } model(dist::rank() == 1 ? "head" : "fc");
  std::string msg = ddp_error(model);
  expect_contains(msg, "rank 0: fc.weight [4, 8] float32, rank 1: head.weight [4, 8] float32");
}

TEST(DdpModelCheck, DifferentBufferShapeThrowsOnEveryRank) {
  REQUIRE_RANKS(2);
  struct WithBuffer : nn::Module {
    explicit WithBuffer(int64_t n) {
      register_module("fc", nn::Linear(8, 4));
      register_buffer("stats", zeros({n}));
    }
  } model(dist::rank() == 1 ? 5 : 4);
  std::string msg = ddp_error(model);
  expect_contains(msg, "differ at parameter/buffer 2");
  expect_contains(msg, "rank 0: buffer stats [4] float32, rank 1: buffer stats [5] float32");
}

// Only rank 1 marks a parameter as sharded over the whole world (which DDP's group then spans): every rank throws
// the same error naming rank 1 and the parameter, instead of rank 1 alone while the others wait in the next check.
TEST(DdpModelCheck, ShardSpanningTheGroupOnOneRankOnlyThrowsOnEveryRank) {
  REQUIRE_RANKS(2);
  auto world = dist::world();
  nn::Sequential model(nn::Linear(8, 16), nn::ReLU(), nn::Linear(16, 4));
  if (dist::rank() == 1)
    nn::set_parallel_attributes(model->named_parameters()[0].second,
                                {.shard_dim = 0, .num_shards = world->size(), .shard_rank = 1, .group = world});
  std::string msg = ddp_error(*model);
  expect_contains(msg, "on rank 1, parameter '0.weight' is sharded over the group");
  expect_contains(msg, "data-parallel group");
  EXPECT_EQ(msg.find("on rank 0,"), std::string::npos) << msg;
}

TEST(DdpModelCheck, SameModelOnEveryRankIsAccepted) {
  nn::Sequential model(nn::Linear(8, 16), nn::ReLU(), nn::Linear(16, 4));
  DistributedDataParallel ddp(*model);
  EXPECT_EQ(ddp.bucket_assignment().size(), 1u);
}

}  // namespace
}  // namespace braid
