// Trains a byte-level GPT (gpt_model.h) on the English text of Debian's fortunes package (text_data.h) with AdamW
// (weight decay on the weight matrices only), a linear warm-up and cosine decay of the learning rate, and gradient
// clipping; prints the loss in bits per byte against the unigram baseline, tokens/s, and two samples.
//
// Tensor-parallel: `mpirun -np N gpt --tp N` splits every layer over the N ranks (Megatron-LM's layout); every rank
// draws the same batches, and the run follows the single-process one (same seed, same flags) up to rounding.
//
// The unigram baseline is the best a model that ignores context can do: the cross-entropy of the validation text
// under the training text's byte frequencies. Everything a GPT gains below it comes from context.
#include <braid/braid.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numbers>

#include "gpt_model.h"
#include "nonfinite_stop.h"
#include "run_config.h"
#include "text_data.h"

using namespace braid;

namespace {

using Clock = std::chrono::steady_clock;

double bits(double nats) { return nats / std::numbers::ln2; }

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  BRAID_CHECK(cuda::device_count() > 0, "--device ", name, ": no CUDA device is visible");
  if (name == "cuda") return dist::local_device();  // this rank's GPU: local rank modulo the devices
  Device device = Device::cuda(std::stoi(name.substr(5)));
  BRAID_CHECK(device.index < cuda::device_count(), "--device: ", device, " is not available (", cuda::device_count(),
              " CUDA devices visible)");
  return device;
}

void set_threads(int64_t threads) {
  if (threads > 0) {
    set_num_threads(int(threads));
  } else if (dist::local_world_size() > 1 && !std::getenv("OMP_NUM_THREADS")) {
    // Ranks sharing a host share its cores (torchrun sets OMP_NUM_THREADS=1 for the same reason).
    set_num_threads(std::max(1, get_num_threads() / dist::local_world_size()));
  }
}

// The mean loss (nats per byte) over `batches` batches of `text`, the same batches at every call.
double estimate_loss(gpt::GPTImpl& model, const std::vector<uint8_t>& text, const gpt::RunConfig& c, uint64_t seed,
                     Device device) {
  NoGradGuard no_grad;
  model.eval();
  gpt::BatchSampler sampler(text, c.model.block_size, seed);
  double total = 0;
  for (int64_t i = 0; i < c.eval_batches; ++i) {
    auto [x, y] = sampler.next(c.batch_size);
    total += model.loss(to(x, device), to(y, device)).item<double>();
  }
  model.train();
  return total / double(c.eval_batches);
}

void print_samples(gpt::GPTImpl& model, const gpt::RunConfig& c, bool main_rank) {
  if (c.sample_len == 0) return;
  Generator unused(c.seed), sampling(c.seed);
  std::string greedy = gpt::generate(model, c.prompt, c.sample_len, 0, unused);
  std::string sampled = gpt::generate(model, c.prompt, c.sample_len, c.temperature, sampling);
  if (!main_rank) return;
  std::printf("\n--- greedy sample ---\n%s%s\n", c.prompt.c_str(), greedy.c_str());
  std::printf("--- sample (temperature %g, seed %llu) ---\n%s%s\n", c.temperature, (unsigned long long)c.seed,
              c.prompt.c_str(), sampled.c_str());
}

int train(const gpt::RunConfig& c) {
  const bool main_rank = dist::rank() == 0;
  set_threads(c.threads);
  const Device device = parse_device(c.device);
  gpt::TextCorpus corpus = gpt::load_fortunes(c.data);
  const double unigram = gpt::unigram_bits_per_byte(corpus.train, corpus.validation);
  manual_seed(c.seed);
  dist::manual_seed_tensor_parallel(dist::world(), c.seed);
  gpt::GPT model(c.model, dist::world());
  model->to(device);
  optim::AdamW optimizer(optim::weight_decay_groups(*model, c.weight_decay),
                         optim::AdamWOptions{.lr = c.lr, .beta2 = c.beta2, .weight_decay = c.weight_decay});
  optim::WarmupCosineLR schedule(optimizer, c.warmup, c.steps, c.min_lr);
  if (main_rank) {
    std::printf("corpus: %zu files in %s, %zu training and %zu validation bytes\n", corpus.files.size(), c.data.c_str(),
                corpus.train.size(), corpus.validation.size());
    std::printf("unigram baseline: %.4f bits/byte on the validation text (training text's entropy %.4f)\n", unigram,
                gpt::unigram_bits_per_byte(corpus.train, corpus.train));
    std::printf(
        "model: %lld parameters, %lld layers, %lld heads, width %lld, block %lld; batch %lld; tp %lld%s; "
        "%d threads per rank on %s\n",
        (long long)model->num_parameters(), (long long)c.model.n_layer, (long long)c.model.n_head,
        (long long)c.model.n_embd, (long long)c.model.block_size, (long long)c.batch_size, (long long)c.tp,
        c.model.sequence_parallel ? " (sequence parallel)" : "", get_num_threads(), device.str().c_str());
    std::fflush(stdout);
  }
  gpt::BatchSampler batches(corpus.train, c.model.block_size, c.seed);
  double train_seconds = 0, val = 0;
  int64_t tokens = 0;
  const auto run_start = Clock::now();
  for (int64_t step = 1; step <= c.steps; ++step) {
    const auto start = Clock::now();
    auto [x, y] = batches.next(c.batch_size);
    optimizer.zero_grad();
    Tensor loss = model->loss(to(x, device), to(y, device));
    if (step == c.nan_loss_at_step) loss = loss * std::numeric_limits<double>::quiet_NaN();
    loss.backward();
    model->finish_gradients();
    // Before clipping, which would spread one rank's NaN over every gradient.
    if (c.stop_on_nonfinite)
      examples::stop_on_nonfinite("step " + std::to_string(step), loss, model->named_parameters(), dist::world().get());
    if (c.grad_clip > 0) dist::clip_grad_norm_(model->parameters(), c.grad_clip);
    optimizer.step();
    schedule.step();
    const double loss_value = c.print_every > 0 && step % c.print_every == 0 ? loss.item<double>() : 0;
    train_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    tokens += c.batch_size * c.model.block_size;
    if (main_rank && c.print_every > 0 && step % c.print_every == 0)
      std::printf("step %lld loss %.8f\n", (long long)step, loss_value);
    if (step % c.eval_every == 0 || step == c.steps) {
      const double train_loss = estimate_loss(*model, corpus.train, c, c.seed + 1, device);
      val = estimate_loss(*model, corpus.validation, c, c.seed + 2, device);
      if (main_rank)
        std::printf("step %lld/%lld: train %.4f bits/byte, val %.4f bits/byte (loss %.4f), lr %.2e, %.0f tokens/s\n",
                    (long long)step, (long long)c.steps, bits(train_loss), bits(val), val, optimizer.lr(),
                    double(tokens) / train_seconds);
      std::fflush(stdout);
    }
  }
  if (main_rank)
    std::printf("final: val %.4f bits/byte, unigram baseline %.4f bits/byte, %.4f bits/byte below it; %.1f s\n",
                bits(val), unigram, unigram - bits(val),
                std::chrono::duration<double>(Clock::now() - run_start).count());
  print_samples(*model, c, main_rank);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    dist::init(argc, argv);  // a single process unless started by mpirun
  } catch (const Error& e) {  // e.g. a malformed BRAID_DIST_TIMEOUT: a message and exit 1 on every rank, no abort
    std::fprintf(stderr, "gpt: %s\n", e.what());
    return 1;
  }
  gpt::RunConfig config;
  try {
    // A rank whose flags fail still takes part in the comparison, so every rank stops with its message.
    std::string error;
    bool run = true;
    try {
      run = gpt::parse_run_config(argc, argv, config);
    } catch (const std::exception& e) {  // braid::Error, or cxxopts' for an unknown flag
      error = e.what();
    }
    if (!run) {  // --help
      dist::finalize();
      return 0;
    }
    gpt::check_ranks_agree(config, error);
    gpt::check_run_config(config);
  } catch (const Error& e) {
    // Every rank reached the same verdict (check_ranks_agree), so every rank says so and stops.
    if (dist::world_size() > 1)
      std::fprintf(stderr, "gpt (rank %d): %s\n", dist::rank(), e.what());
    else
      std::fprintf(stderr, "gpt: %s\n(gpt --help lists the flags)\n", e.what());
    dist::finalize();
    return 2;
  }
  try {
    int rc = train(config);
    dist::finalize();
    return rc;
  } catch (const std::exception& e) {
    // Under mpirun the other ranks would wait for this one forever: end them all.
    if (dist::world_size() > 1) dist::abort(std::string("gpt: ") + e.what());
    std::fprintf(stderr, "gpt: %s\n", e.what());
    return 1;
  }
}
