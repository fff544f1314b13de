// The check of the pipeline executor: after three SGD steps, every provided schedule (GPipe, 1F1B,
// interleaved 1F1B with v = 2 where M is a multiple of p, ZB-H1) on the world's ranks, M in {1, 2, 4, 8}, with tags
// and in order, leaves each stage's parameters equal to those of one process trained on the full batch (within
// 1e-5 relative, float64). The model's layers have different widths and the stages hold different numbers of
// modules (on 3 ranks: 4, 2 and 3), some stages none with parameters. The activations held at once equal the
// validator's count and stay within the schedule's bound.
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "braid/dist/pipeline_executor.h"
#include "pipeline_test_util.h"

namespace braid {
namespace {

using dist::PipelineExecutor;
using dist::Schedule;
using pipeline_test::Batch;
using pipeline_test::mse;

constexpr int64_t kIn = 8, kOut = 4, kBatch = 8;
constexpr int kSteps = 3;
constexpr int kModules = 9;  // Linear, Tanh, Linear, Tanh, Linear, Tanh, Linear, Tanh, Linear

nn::Sequential make_model() {
  manual_seed(21);
  nn::Sequential model;
  const int64_t widths[] = {kIn, 24, 12, 20, 10, kOut};
  for (int i = 0; i + 1 < 6; ++i) {
    model->push_back(nn::Linear(widths[i], widths[i + 1]));
    if (i + 2 < 6) model->push_back(nn::Tanh());
  }
  model->to(DType::Float64);
  return model;
}

Batch batch(int step) { return pipeline_test::random_batch(200 + uint64_t(step), kBatch, kIn, kOut); }

// Where stage s of S begins; 3 stages split unevenly (4, 2 and 3 modules), others as evenly as the modules allow.
int64_t stage_begin(int s, int num_stages) {
  if (num_stages == 3) return std::vector<int64_t>{0, 4, 6, 9}[size_t(s)];
  return int64_t(s) * kModules / num_stages;
}

const std::map<std::string, Tensor>& reference() {
  static const std::map<std::string, Tensor> params =
      pipeline_test::trained_single_process(make_model(), kSteps, batch);
  return params;
}

// The most activations a rank may hold: all M for GPipe; 1F1B's and ZB-H1's warm-up plus one; interleaved's
// warm-up of (v - 1) p + 2 (p - rank - 1) forwards plus one, and never more than its v M forwards.
int activation_bound(const std::string& name, int p, int v, int m, int rank) {
  if (name == "gpipe") return m;
  if (name == "interleaved") return std::min(v * m, (v - 1) * p + 2 * (p - rank - 1) + 1);
  return std::min(p - rank, m);
}

void expect_matches_single_process(const std::string& name, const Schedule& schedule, bool in_order) {
  SCOPED_TRACE(name + ", p " + std::to_string(schedule.num_ranks) + ", v " + std::to_string(schedule.stages_per_rank) +
               ", M " + std::to_string(schedule.num_microbatches) + (in_order ? ", in order" : ", tagged"));
  auto group = dist::world();
  const int rank = group->rank(), p = group->size(), num_stages = schedule.num_stages();
  nn::Sequential model = make_model();
  std::vector<nn::Sequential> stages;
  for (int s = rank; s < num_stages; s += p)
    stages.push_back(model->slice(stage_begin(s, num_stages), stage_begin(s + 1, num_stages)));
  optim::SGD optimizer(pipeline_test::parameters_of(stages), optim::SGDOptions{.lr = 0.1});
  PipelineExecutor executor(stages, group, schedule, mse, {.in_order_p2p = in_order});
  for (int step = 0; step < kSteps; ++step) {
    Batch b = batch(step);
    optimizer.zero_grad();
    executor.step(b.x, b.y);
    optimizer.step();
  }
  const int peak = executor.peak_in_flight();
  EXPECT_EQ(peak, dist::validate(schedule).peak_in_flight[size_t(rank)]);
  EXPECT_GE(peak, 1);
  EXPECT_LE(peak, activation_bound(name, p, schedule.stages_per_rank, schedule.num_microbatches, rank));
  pipeline_test::expect_stages_match(stages, reference());
}

TEST(PipelineExecutorGrid, EveryScheduleMatchesSingleProcess) {
  const int p = dist::world_size();
  int interleaved = 0;
  for (int m : {1, 2, 4, 8}) {
    for (bool in_order : {false, true}) {
      expect_matches_single_process("gpipe", dist::gpipe(p, m), in_order);
      expect_matches_single_process("1f1b", dist::one_f_one_b(p, m), in_order);
      expect_matches_single_process("zb-h1", dist::zero_bubble_h1(p, m), in_order);
      if (m % p != 0 || 2 * p > kModules) continue;
      expect_matches_single_process("interleaved", dist::interleaved_one_f_one_b(p, 2, m), in_order);
      ++interleaved;
    }
  }
  if (p == 2 || p == 4) {
    EXPECT_GT(interleaved, 0);
  }
}

}  // namespace
}  // namespace braid
