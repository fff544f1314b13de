#include "run_config.h"

#include <braid/braid.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cxxopts.hpp>
#include <sstream>

#include "cli_values.h"
#include "text_data.h"

using namespace braid;

namespace gpt {

namespace {

using examples::double_flag;
using examples::int_flag;

cxxopts::Options make_options() {
  cxxopts::Options cli("gpt", "Train a byte-level GPT on the fortunes corpus with Braid (tensor-parallel with --tp)");
  auto text = examples::text_value;
  // clang-format off
  cli.add_options()
    ("steps", "optimizer steps", text("1500"))
    ("batch-size", "sequences per step", text("16"))
    ("block-size", "sequence length (the positional table's size)", text("64"))
    ("n-layer", "Transformer blocks", text("4"))
    ("n-head", "attention heads", text("4"))
    ("n-embd", "embedding width", text("128"))
    ("lr", "peak learning rate (after the warm-up)", text("2e-3"))
    ("min-lr", "learning rate at the end of the cosine decay", text("2e-4"))
    ("warmup", "linear warm-up steps", text("100"))
    ("weight-decay", "AdamW weight decay of the weight matrices (not biases, LayerNorms, embeddings)", text("0.1"))
    ("beta2", "AdamW's second-moment decay", text("0.99"))
    ("grad-clip", "clip the gradient's global norm to this (0: no clipping)", text("1.0"))
    ("dropout", "dropout probability (attention, residual, embedding)", text("0"))
    ("seed", "seed of the weights, the batches and the temperature sample", text("1337"))
    ("eval-every", "evaluate (and print) every N steps", text("250"))
    ("eval-batches", "batches per loss estimate (the same batches at every evaluation)", text("16"))
    ("print-every", "print each N-th step's training loss at full precision (0: never)", text("0"))
    ("tp", "tensor-parallel size: the number of ranks mpirun starts (mpirun -np N gpt --tp N)", text("1"))
    ("sequence-parallel", "with --tp: split the LayerNorm and dropout regions along the sequence")
    ("prompt", "text the samples continue", text("The meaning of life is "))
    ("sample-len", "bytes to generate after the prompt (0: no samples)", text("200"))
    ("temperature", "temperature of the sampled continuation (> 0)", text("0.8"))
    ("device", "cpu, cuda or cuda:N", text("cpu"))
    ("threads", "CPU threads per rank (0: OMP_NUM_THREADS, or the cores shared among this host's ranks)", text("0"))
    ("data", "the fortunes folder", text(default_fortunes_root))
    ("stop-on-nonfinite", "stop (on every rank, exit 1) at the first step whose loss or a gradient is NaN or infinite, "
     "naming the step and the parameter")
    ("nan-loss-at-step", "testing: make this step's loss NaN, to try --stop-on-nonfinite (0: never)", text("0"))
    ("h,help", "show this help");
  // clang-format on
  return cli;
}

std::string exact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// The model with AdamW's state (four copies of each parameter) and a step's activations (a few copies of each
// layer's outputs and of its attention maps), estimated in doubles (the products overflow int64 for absurd sizes)
// for this host's ranks: beyond its memory, a std::bad_alloc in the middle of building the model, or the
// out-of-memory killer, would end the run instead of a message.
void check_fits_in_memory(const RunConfig& c) {
  const GPTConfig& m = c.model;
  const double e = double(m.n_embd), layers = double(m.n_layer), t = double(m.block_size), b = double(c.batch_size);
  const double params = 12 * layers * e * e + (double(m.vocab_size) + t) * e;
  const double activations = b * t * (layers * (40 * e + 4 * double(m.n_head) * t) + 4 * double(m.vocab_size));
  const double bytes = 4 * (4 * params / double(c.tp) + activations) * dist::local_world_size();
  const double host = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE)), gib = double(1 << 30);
  BRAID_CHECK(bytes <= host, "--n-layer ", m.n_layer, ", --n-embd ", m.n_embd, ", --n-head ", m.n_head,
              ", --block-size ", m.block_size, " and --batch-size ", c.batch_size, ": the model and a step's "
              "activations need about ", bytes / gib, " GiB, more than this host's ", host / gib, " GiB");
}

// The checks between flags, each naming the flags involved.
void check_combinations(const RunConfig& c) {
  const GPTConfig& m = c.model;
  BRAID_CHECK(m.n_embd % m.n_head == 0, "--n-embd ", m.n_embd, " does not divide by --n-head ", m.n_head);
  BRAID_CHECK(m.n_head % c.tp == 0, "--n-head ", m.n_head, " does not divide by --tp ", c.tp,
              " (attention is split by heads)");
  BRAID_CHECK(m.vocab_size % c.tp == 0, "--tp ", c.tp, " does not divide the vocabulary of ", m.vocab_size);
  BRAID_CHECK(!m.sequence_parallel || m.block_size % c.tp == 0, "--sequence-parallel: --block-size ", m.block_size,
              " does not divide by --tp ", c.tp);
  BRAID_CHECK(c.warmup <= c.steps, "--warmup ", c.warmup, " is longer than --steps ", c.steps);
  BRAID_CHECK(c.min_lr <= c.lr, "--min-lr ", c.min_lr, " is above --lr ", c.lr);
  const bool cuda_n = c.device.size() > 5 && c.device.rfind("cuda:", 0) == 0 &&
                      c.device.find_first_not_of("0123456789", 5) == std::string::npos;
  BRAID_CHECK(c.device == "cpu" || c.device == "cuda" || cuda_n, "--device: expected cpu, cuda or cuda:N, got '",
              c.device, "'");
  BRAID_CHECK(c.tp == dist::world_size(), "--tp ", c.tp, " must equal the number of ranks mpirun started (",
              dist::world_size(), "): run mpirun -np ", c.tp, " gpt --tp ", c.tp);
  check_fits_in_memory(c);
}

// Each flag as parsed (numbers printed exactly, so that "0.1" on one rank and "1e-1" on another agree).
std::vector<std::pair<std::string, std::string>> flag_values(const RunConfig& c) {
  const GPTConfig& m = c.model;
  return {{"steps", std::to_string(c.steps)},
          {"batch-size", std::to_string(c.batch_size)},
          {"block-size", std::to_string(m.block_size)},
          {"n-layer", std::to_string(m.n_layer)},
          {"n-head", std::to_string(m.n_head)},
          {"n-embd", std::to_string(m.n_embd)},
          {"lr", exact(c.lr)},
          {"min-lr", exact(c.min_lr)},
          {"warmup", std::to_string(c.warmup)},
          {"weight-decay", exact(c.weight_decay)},
          {"beta2", exact(c.beta2)},
          {"grad-clip", exact(c.grad_clip)},
          {"dropout", exact(m.dropout)},
          {"seed", std::to_string(c.seed)},
          {"eval-every", std::to_string(c.eval_every)},
          {"eval-batches", std::to_string(c.eval_batches)},
          {"print-every", std::to_string(c.print_every)},
          {"tp", std::to_string(c.tp)},
          {"sequence-parallel", m.sequence_parallel ? "on" : "off"},
          {"prompt", c.prompt},
          {"sample-len", std::to_string(c.sample_len)},
          {"temperature", exact(c.temperature)},
          {"device", c.device},
          {"threads", std::to_string(c.threads)},
          {"data", c.data},
          {"stop-on-nonfinite", c.stop_on_nonfinite ? "on" : "off"},
          {"nan-loss-at-step", std::to_string(c.nan_loss_at_step)}};
}

void read_flags(const cxxopts::ParseResult& args, RunConfig& c) {
  c.steps = int_flag(args, "steps", 1);
  c.batch_size = int_flag(args, "batch-size", 1);
  c.model.block_size = int_flag(args, "block-size", 1);
  c.model.n_layer = int_flag(args, "n-layer", 1);
  c.model.n_head = int_flag(args, "n-head", 1);
  c.model.n_embd = int_flag(args, "n-embd", 1);
  c.lr = double_flag(args, "lr", 0, 10, true);
  c.min_lr = double_flag(args, "min-lr", 0, 10);
  c.warmup = int_flag(args, "warmup", 0);
  c.weight_decay = double_flag(args, "weight-decay", 0, 10);
  c.beta2 = double_flag(args, "beta2", 0, 1);
  c.grad_clip = double_flag(args, "grad-clip", 0, 1e30);
  c.model.dropout = double_flag(args, "dropout", 0, 0.99);
  c.seed = examples::seed_flag(args);
  c.eval_every = int_flag(args, "eval-every", 1);
  c.eval_batches = int_flag(args, "eval-batches", 1);
  c.print_every = int_flag(args, "print-every", 0);
  c.tp = int_flag(args, "tp", 1);
  c.model.sequence_parallel = args.count("sequence-parallel") > 0;
  c.prompt = args["prompt"].as<std::string>();
  c.sample_len = int_flag(args, "sample-len", 0);
  c.temperature = double_flag(args, "temperature", 0, 100, true);
  c.device = args["device"].as<std::string>();
  c.threads = int_flag(args, "threads", 0, examples::kMaxThreads);
  c.data = args["data"].as<std::string>();
  c.stop_on_nonfinite = args.count("stop-on-nonfinite") > 0;
  c.nan_loss_at_step = int_flag(args, "nan-loss-at-step", 0);
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Every rank's string, in rank order: the lengths first, then the bytes padded to the longest (one int64 each;
// a few kilobytes at most).
std::vector<std::string> all_gather_strings(const std::string& mine, dist::ProcessGroup& group) {
  const int64_t n = group.size();
  Tensor lengths = zeros({n}, DType::Int64);
  group.all_gather(lengths, from_vector(std::vector<int64_t>{int64_t(mine.size())}, {1}))->wait();
  const std::vector<int64_t> sizes = lengths.to_vector<int64_t>();
  const int64_t longest = *std::max_element(sizes.begin(), sizes.end());
  std::vector<int64_t> padded(size_t(longest), 0);
  std::copy(mine.begin(), mine.end(), padded.begin());
  Tensor bytes = zeros({n * longest}, DType::Int64);
  group.all_gather(bytes, from_vector(padded, {longest}))->wait();
  const std::vector<int64_t> all = bytes.to_vector<int64_t>();
  std::vector<std::string> out;
  for (int64_t r = 0; r < n; ++r)
    out.emplace_back(all.begin() + r * longest, all.begin() + r * longest + sizes[size_t(r)]);
  return out;
}

}  // namespace

bool parse_run_config(int argc, char** argv, RunConfig& config) {
  cxxopts::Options cli = make_options();
  auto args = cli.parse(argc, argv);
  if (args.count("help")) {
    if (dist::rank() == 0) std::printf("%s\n", cli.help().c_str());
    return false;
  }
  read_flags(args, config);
  config.flags = flag_values(config);
  return true;
}

void check_run_config(const RunConfig& config) { check_combinations(config); }

void check_ranks_agree(const RunConfig& config, const std::string& error) {
  auto world = dist::world();
  if (world->size() == 1) {
    BRAID_CHECK(error.empty(), error);
    return;
  }
  std::string mine = error.empty() ? "ok\n" : "error\n" + error;
  if (error.empty())
    for (const auto& [name, value] : config.flags) mine += name + "\n" + value + "\n";
  const std::vector<std::string> all = all_gather_strings(mine, *world);
  for (size_t r = 0; r < all.size(); ++r)
    if (all[r].rfind("error\n", 0) == 0) BRAID_FAIL("rank ", r, ": ", all[r].substr(6));
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    const auto a = split_lines(all[0]), b = split_lines(all[r]);
    for (size_t i = 1; i + 1 < std::min(a.size(), b.size()); i += 2)
      BRAID_CHECK(a[i + 1] == b[i + 1], "the ranks disagree on --", a[i], ": rank 0 has '", a[i + 1], "', rank ", r,
                  " has '", b[i + 1], "' (every rank must be given the same flags)");
    BRAID_FAIL("the ranks disagree on the flags: rank 0 has\n", all[0], "rank ", r, " has\n", all[r]);
  }
}

}  // namespace gpt
