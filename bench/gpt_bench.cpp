// GPT training throughput, the Braid twin of peers/gpt_torch.py: the same byte-level GPT (examples/gpt), AdamW
// (betas 0.9/0.99, weight decay 0.1 on the weight matrices, lr 1e-3 constant), gradient clipping at norm 1, batch,
// sequence length and threads; random windows of the fortunes text drawn before the timed region. Timed: --steps
// steps after --warmup-steps untimed ones; tokens/s = steps * batch * block / seconds (under mpirun, the slowest
// rank's seconds). Prints one JSON line (rank 0).
// usage: braid_gpt_bench --threads 1 [--n-layer 4 --n-head 4 --n-embd 128 --block-size 64 --batch 16 --steps 30
//                        --warmup-steps 5 --seed 0 --data /usr/share/games/fortunes]
//        mpirun -np 2 braid_gpt_bench --threads 1 [--sequence-parallel 1]     (tensor-parallel over the ranks)
// At tensor-parallel size t > 1 the line adds the bytes each step communicates, counted from the model's shapes
// (see tp_bytes_per_step).
#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.h"
#include "gpt_model.h"
#include "text_data.h"

using namespace braid;
using braid::bench::now_s;

namespace {

// The collectives of one training step at tensor-parallel size t, as payload bytes (the tensor each collective
// is given; a ring all-reduce moves 2 (t-1)/t of it in and out of every rank, an all-gather or reduce-scatter
// (t-1)/t of its full size). Counted: per block, forward one all-reduce after attn.c_proj and one after mlp.c_proj,
// backward one at the input of c_attn and one at the input of c_fc (each [B, T, C] float32); the embedding's
// forward all-reduce and the tied head's backward all-reduce of its input (each [B, T, C]); the vocabulary-parallel
// cross-entropy's three all-reduces of [B*T] floats (row max, sum of exponentials, target logit); the gradient
// clipping's norm (one float64). With sequence parallelism every [B, T, C] all-reduce becomes an all-gather plus a
// reduce-scatter of the same full size, so the bytes moved are the same.
double tp_bytes_per_step(const gpt::GPTConfig& c, int64_t batch) {
  const double activation = double(batch * c.block_size * c.n_embd) * 4;
  const double rows = double(batch * c.block_size) * 4;
  return (4 * double(c.n_layer) + 2) * activation + 3 * rows + 8;
}

}  // namespace

int main(int argc, char** argv) {
  dist::init(argc, argv);
  bench::Args args(argc, argv);
  set_num_threads(int(args.i64("threads", 1)));
  gpt::GPTConfig config{.block_size = args.i64("block-size", 64),
                        .n_layer = args.i64("n-layer", 4),
                        .n_head = args.i64("n-head", 4),
                        .n_embd = args.i64("n-embd", 128),
                        .sequence_parallel = args.i64("sequence-parallel", 0) != 0};
  const int64_t batch = args.i64("batch", 16), steps = args.i64("steps", 30), warmup = args.i64("warmup-steps", 5);
  const uint64_t seed = uint64_t(args.i64("seed", 0));
  auto group = dist::world();
  gpt::TextCorpus corpus = gpt::load_fortunes(args.str("data", gpt::default_fortunes_root));
  manual_seed(seed);
  gpt::GPT model(config, group);
  optim::AdamW optimizer(optim::weight_decay_groups(*model, 0.1),
                         optim::AdamWOptions{.lr = 1e-3, .beta2 = 0.99, .weight_decay = 0.1});
  gpt::BatchSampler sampler(corpus.train, config.block_size, seed);
  std::vector<std::pair<Tensor, Tensor>> batches;
  for (int64_t i = 0; i < warmup + steps; ++i) batches.push_back(sampler.next(batch));

  double start = 0, loss = 0;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    if (i == warmup) {
      group->barrier()->wait();
      start = now_s();
    }
    optimizer.zero_grad();
    Tensor l = model->loss(batches[size_t(i)].first, batches[size_t(i)].second);
    l.backward();
    model->finish_gradients();
    dist::clip_grad_norm_(model->parameters(), 1.0);
    optimizer.step();
    if (i + 1 == warmup + steps) loss = l.item<double>();
  }
  Tensor seconds = from_vector(std::vector<double>{now_s() - start});
  group->all_reduce(seconds, dist::ReduceOp::Max)->wait();
  const double secs = seconds.item<double>();
  const int tp = group->size();
  if (dist::rank() == 0) {
    std::printf(
        "{\"impl\": \"braid\", \"threads\": %d, \"ranks\": %d, \"tp\": %d, \"sequence_parallel\": %s, "
        "\"n_layer\": %lld, \"n_head\": %lld, \"n_embd\": %lld, \"block_size\": %lld, \"batch\": %lld, "
        "\"steps\": %lld, \"params\": %lld, \"seconds\": %.4f, \"step_ms\": %.3f, \"tokens_per_s\": %.1f, "
        "\"last_loss\": %.4f, \"tp_bytes_per_step\": %.0f}\n",
        get_num_threads(), tp, tp, config.sequence_parallel ? "true" : "false", (long long)config.n_layer,
        (long long)config.n_head, (long long)config.n_embd, (long long)config.block_size, (long long)batch,
        (long long)steps, (long long)model->num_parameters(), secs, secs / double(steps) * 1e3,
        double(steps * batch * config.block_size) / secs, loss, tp > 1 ? tp_bytes_per_step(config, batch) : 0.0);
    std::fflush(stdout);
  }
  dist::finalize();
  return 0;
}
