// Pipeline step time per schedule against the simulation, on CPU under mpiexec (one rank per pipeline stage group).
//
//   mpiexec -n P ... braid_pipeline_bench [--schedules gpipe,1f1b,interleaved,zb] [--microbatches 8,16]
//                    [--virtual-stages 2] [--width 512] [--layers 8] [--micro-batch 64] [--steps 20] [--warmup 3]
//                    [--reps 20] [--threads 1] [--seed 0] [--cores N]
//
// Each rank holds the same synthetic work: --layers Linear(width, width)+ReLU layers, one stage (v = 1) or, for
// interleaved, v virtual stages of layers / v layers each; the last stage's loss is the MSE against a random target.
// Per configuration (schedule, M):
// - stage costs, measured on one (virtual) stage and one micro-batch whose input requires grad (every stage but the
//   first): F the forward, B a full backward, I and W the split backward as the executor runs them; median of --reps
//   after warm-up, the ranks measuring one after the other (so that oversubscribed ranks do not share a core while
//   measuring), maximum over ranks;
// - the p2p time of one activation: half the median round trip of a [micro-batch, width] float32 tensor between
//   ranks 0 and 1 (blocking send/recv);
// - the simulation (dist::simulate) of the schedule with those costs; schedules without a split backward get
//   backward_input = B and backward_weight = 0, so their B costs the measured full backward; simulated twice: with a
//   core per rank, and on --cores cores (default: the processors the rank may run on, as nproc), where ranks computing
//   at the same time share the cores as the OS time-slices them (SimulationOptions::cores);
// - --steps steps of dist::PipelineExecutor after --warmup (the first exchanges shapes), each started after a barrier:
//   step time = max over ranks of last_step_stats().step, measured bubble = 1 - (sum over ranks of compute) /
//   (P * step time); medians over the steps.
// Rank 0 prints one JSON line per configuration (times in ms); bench/run_pipeline.sh turns them into a table.
#include <braid/braid.h>
#include <sched.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"

using namespace braid;
using braid::bench::median;
using braid::bench::now_s;

namespace {

struct Sizes {
  int64_t width = 512;
  int layers = 8;  // per rank, over all its virtual stages
  int64_t micro_batch = 64;
};

struct Costs {
  double forward = 0, backward_input = 0, backward_weight = 0, backward = 0, p2p = 0;  // seconds
};

nn::Sequential make_stage(const Sizes& s, int layers) {
  nn::Sequential stage;
  for (int l = 0; l < layers; ++l) {
    stage->push_back(nn::Linear(s.width, s.width));
    stage->push_back(nn::ReLU());
  }
  return stage;
}

// The stages s with s % p == rank, in stage order, each seeded by its global index.
std::vector<nn::Sequential> make_stages(const Sizes& s, int rank, int p, int v) {
  std::vector<nn::Sequential> stages;
  for (int local = 0; local < v; ++local) {
    manual_seed(uint64_t(1000 + local * p + rank));
    stages.push_back(make_stage(s, s.layers / v));
  }
  return stages;
}

dist::Schedule make_schedule(const std::string& name, int p, int v, int m) {
  if (name == "gpipe") return dist::gpipe(p, m);
  if (name == "1f1b") return dist::one_f_one_b(p, m);
  if (name == "interleaved") return dist::interleaved_one_f_one_b(p, v, m);
  if (name == "zb") return dist::zero_bubble_h1(p, m);
  BRAID_FAIL("braid_pipeline_bench: --schedules: unknown schedule '", name, "', expected gpipe, 1f1b, interleaved, zb");
}

std::vector<Tensor> trainable(const nn::Sequential& stage) {
  std::vector<Tensor> params;
  for (const Tensor& p : stage->parameters())
    if (p.requires_grad()) params.push_back(p);
  return params;
}

// I then W on a fresh graph, as PipelineExecutor's backward_input / backward_weight run them: the engine's split
// backward (autograd::backward_input for the input's gradient, keeping what the weights need), then its deferred
// weight half, which sums into the parameters' .grad.
std::pair<double, double> time_split_backward(nn::Sequential& stage, const Tensor& x, const Tensor& g) {
  Tensor input = x.detach().requires_grad_(true);
  Tensor root = stage->forward(input);
  double t0 = now_s();
  autograd::SplitBackward split = autograd::backward_input({root}, {g}, {input}, trainable(stage));
  const double i = now_s() - t0;
  t0 = now_s();
  autograd::backward_weight(split.weight);
  return {i, now_s() - t0};
}

Costs time_stage(nn::Sequential& stage, const Sizes& s, int warmup, int reps) {
  Tensor x = randn({s.micro_batch, s.width}), g = randn({s.micro_batch, s.width});
  std::vector<double> f, b, i, w;
  for (int r = 0; r < warmup + reps; ++r) {
    Tensor input = x.detach().requires_grad_(true);
    double t0 = now_s();
    Tensor out = stage->forward(input);
    const double tf = now_s() - t0;
    t0 = now_s();
    autograd::backward({out}, {g});
    const double tb = now_s() - t0;
    auto [ti, tw] = time_split_backward(stage, x, g);
    stage->zero_grad();
    if (r < warmup) continue;
    f.push_back(tf), b.push_back(tb), i.push_back(ti), w.push_back(tw);
  }
  return {median(f), median(i), median(w), median(b), 0.0};
}

// A barrier whose waiters sleep: each waits on a receive, which the communication thread polls and then sleeps
// between polls, where a collective's waiter polls MPI in its own thread. Oversubscribed, a polling waiter would
// take a core from the rank still computing. `group` is the bench's own, so its messages never meet the executor's.
void quiet_barrier(const std::shared_ptr<dist::ProcessGroup>& group) {
  Tensor token = zeros({1});
  if (group->rank() == 0) {
    for (int r = 1; r < group->size(); ++r) group->recv(token, r)->wait();
    for (int r = 1; r < group->size(); ++r) group->send(token, r)->wait();
  } else {
    group->send(token, 0)->wait();
    group->recv(token, 0)->wait();
  }
}

// Ranks measure one after the other (the others asleep in quiet_barrier), so that oversubscribed ranks do not share
// a core while measuring; the slowest rank's costs set the pipeline's pace.
Costs measure_costs(std::vector<nn::Sequential>& stages, const Sizes& s, int reps,
                    const std::shared_ptr<dist::ProcessGroup>& group) {
  Costs c;
  for (int r = 0; r < group->size(); ++r) {
    if (r == group->rank()) c = time_stage(stages[0], s, 3, reps);
    quiet_barrier(group);
  }
  Tensor t = from_vector(std::vector<double>{c.forward, c.backward_input, c.backward_weight, c.backward});
  group->all_reduce(t, dist::ReduceOp::Max)->wait();
  const double* v = t.data<double>();
  return {v[0], v[1], v[2], v[3], 0.0};
}

// Half the median round trip of one activation between ranks 0 and 1, as every rank learns it.
double measure_p2p(const Sizes& s, int reps, const std::shared_ptr<dist::ProcessGroup>& group) {
  Tensor a = randn({s.micro_batch, s.width}), back = zeros({s.micro_batch, s.width});
  std::vector<double> trips;
  for (int r = 0; r < 3 + reps && group->rank() < 2; ++r) {
    const double t0 = now_s();
    if (group->rank() == 0) {
      group->send(a, 1)->wait();
      group->recv(back, 1)->wait();
    } else {
      group->recv(back, 0)->wait();
      group->send(back, 0)->wait();
    }
    if (r >= 3) trips.push_back(now_s() - t0);
  }
  quiet_barrier(group);
  Tensor t = from_vector(std::vector<double>{group->rank() == 0 ? median(trips) / 2 : 0.0});
  group->broadcast(t, 0)->wait();
  return t.item<double>();
}

struct Measured {
  double step = 0, bubble = 0, wait = 0;  // medians over the steps; wait: the slowest rank's
  std::vector<double> compute;            // per rank, median over the steps
};

Measured run_steps(dist::PipelineExecutor& exec, const Tensor& input, const Tensor& target, int warmup, int steps,
                   const std::shared_ptr<dist::ProcessGroup>& group) {
  const int p = group->size();
  std::vector<double> step, bubble, wait, compute;
  for (int k = 0; k < warmup + steps; ++k) {
    for (auto& stage : exec.stages()) stage->zero_grad();
    quiet_barrier(group);
    exec.step(input, target);
    quiet_barrier(group);
    const auto& st = exec.last_step_stats();
    Tensor mx = from_vector(std::vector<double>{st.step, st.wait}), sum = from_vector(std::vector<double>{st.compute});
    group->all_reduce(mx, dist::ReduceOp::Max)->wait();
    group->all_reduce(sum)->wait();
    if (k < warmup) continue;
    const double t = mx.data<double>()[0];
    step.push_back(t);
    wait.push_back(mx.data<double>()[1]);
    bubble.push_back(1.0 - sum.item<double>() / (p * t));
    compute.push_back(st.compute);
  }
  Tensor per_rank = zeros({p}, TensorOptions(DType::Float64));
  per_rank.data<double>()[group->rank()] = median(compute);
  group->all_reduce(per_rank)->wait();
  const double* c = per_rank.data<double>();
  return {median(step), median(bubble), median(wait), std::vector<double>(c, c + p)};
}

std::string json_ms(const std::vector<double>& seconds) {
  std::string out = "[";
  for (size_t i = 0; i < seconds.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? ", " : "", 1e3 * seconds[i]);
    out += buf;
  }
  return out + "]";
}

// The cores the ranks share: --cores, else the processors this process may run on (as nproc counts them; with
// mpiexec --bind-to none, the machine's).
int machine_cores(const bench::Args& args) {
  cpu_set_t set;
  const int available =
      sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : int(std::thread::hardware_concurrency());
  const int64_t cores = args.i64("cores", available);
  BRAID_CHECK(cores >= 1, "braid_pipeline_bench: --cores must be >= 1, got ", cores);
  return int(cores);
}

struct Run {
  std::string schedule;
  int v = 1, m = 1;
};

// `group` is the bench's own (barriers, measurements); the executor runs on the world group.
void bench_one(const Run& run, const Sizes& s, const bench::Args& args,
               const std::shared_ptr<dist::ProcessGroup>& group) {
  auto world = dist::world();
  const int p = world->size(), rank = world->rank();
  const int steps = int(args.i64("steps", 20)), warmup = int(args.i64("warmup", 3)), reps = int(args.i64("reps", 20));
  BRAID_CHECK(s.layers % run.v == 0, "braid_pipeline_bench: --layers ", s.layers, " is not divisible by ", run.v,
              " virtual stages");
  auto stages = make_stages(s, rank, p, run.v);
  Costs c = measure_costs(stages, s, reps, group);
  c.p2p = measure_p2p(s, reps, group);
  dist::Schedule schedule = make_schedule(run.schedule, p, run.v, run.m);
  const bool split = run.schedule == "zb";
  dist::StageCosts sc{c.forward, split ? c.backward_input : c.backward, split ? c.backward_weight : 0.0, c.p2p};
  const dist::SimulationResult sim = dist::simulate(schedule, sc);
  const int cores = machine_cores(args);
  const dist::SimulationResult shared = dist::simulate(schedule, sc, {cores});

  manual_seed(uint64_t(args.i64("seed", 0)));
  Tensor input = randn({run.m * s.micro_batch, s.width}), target = randn({run.m * s.micro_batch, s.width});
  dist::PipelineExecutor exec(std::move(stages), world, schedule,
                              [](const Tensor& out, const Tensor& t) { return nn::mse_loss(out, t); });
  const Measured got = run_steps(exec, input, target, warmup, steps, group);
  const double ideal = run.m * run.v * (c.forward + c.backward);
  if (rank != 0) return;
  std::printf(
      "{\"schedule\": \"%s\", \"p\": %d, \"v\": %d, \"M\": %d, \"micro_batch\": %lld, \"width\": %lld, "
      "\"layers_per_rank\": %d, \"steps\": %d, \"f_ms\": %.4f, \"i_ms\": %.4f, \"w_ms\": %.4f, \"b_ms\": %.4f, "
      "\"p2p_ms\": %.4f, \"sim_step_ms\": %.3f, \"step_ms\": %.3f, \"ratio\": %.3f, \"sim_bubble\": %.4f, "
      "\"bubble\": %.4f, \"wait_ms\": %.3f, \"ideal_ms\": %.3f, \"compute_ms\": %s, \"sim_compute_ms\": %s, "
      "\"cores\": %d, \"sim_cores_step_ms\": %.3f, \"ratio_cores\": %.3f, \"sim_cores_bubble\": %.4f}\n",
      run.schedule.c_str(), p, run.v, run.m, (long long)s.micro_batch, (long long)s.width, s.layers, steps,
      1e3 * c.forward, 1e3 * c.backward_input, 1e3 * c.backward_weight, 1e3 * c.backward, 1e3 * c.p2p,
      1e3 * sim.step_time, 1e3 * got.step, got.step / sim.step_time, sim.bubble_fraction, got.bubble, 1e3 * got.wait,
      1e3 * ideal, json_ms(got.compute).c_str(), json_ms(sim.compute_time).c_str(), cores, 1e3 * shared.step_time,
      got.step / shared.step_time, shared.bubble_fraction);
  std::fflush(stdout);
}

std::vector<std::string> split_names(const std::string& list) {
  std::vector<std::string> out;
  size_t begin = 0;
  for (size_t end; (end = list.find(',', begin)) != std::string::npos; begin = end + 1)
    out.push_back(list.substr(begin, end - begin));
  out.push_back(list.substr(begin));
  return out;
}

void bench_all(const bench::Args& args) {
  const int p = dist::world_size();
  BRAID_CHECK(p >= 2, "braid_pipeline_bench: run under mpiexec with at least 2 ranks, got ", p);
  Sizes s{args.i64("width", 512), int(args.i64("layers", 8)), args.i64("micro-batch", 64)};
  const int v = int(args.i64("virtual-stages", 2));
  std::vector<int> all(static_cast<size_t>(p));
  for (int r = 0; r < p; ++r) all[size_t(r)] = r;
  const auto group = dist::new_group(all);
  for (const std::string& name : split_names(args.str("schedules", "gpipe,1f1b,interleaved,zb")))
    for (int64_t m : bench::parse_ints(args.str("microbatches", "8,16"))) {
      const bool interleaved = name == "interleaved";
      if (interleaved && m % p != 0) {
        if (dist::world()->rank() == 0)
          std::printf("{\"schedule\": \"%s\", \"p\": %d, \"M\": %lld, \"skipped\": \"M %% p != 0\"}\n", name.c_str(), p,
                      (long long)m);
        continue;
      }
      bench_one({name, interleaved ? v : 1, int(m)}, s, args, group);
    }
}

}  // namespace

int main(int argc, char** argv) {
  dist::init(argc, argv);
  try {
    bench::Args args(argc, argv);
    set_num_threads(int(args.i64("threads", 1)));
    bench_all(args);
    dist::finalize();
    return 0;
  } catch (const std::exception& e) {
    if (dist::world_size() > 1) dist::abort(std::string("braid_pipeline_bench: ") + e.what());
    std::fprintf(stderr, "braid_pipeline_bench: %s\n", e.what());
    return 1;
  }
}
