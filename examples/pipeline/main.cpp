// Trains a deep MLP (784 -> 6 x 256 ReLU -> 10) on Fashion-MNIST (Debian's dataset-fashion-mnist) with pipeline
// parallelism: the model is split by parameter count into one stage per rank (v per rank with --schedule
// interleaved), each batch into --microbatches micro-batches, and dist::Pipeline runs the schedule:
//
//   mpirun -np 4 pipeline --schedule 1f1b --microbatches 8
//
// Every rank builds the whole model from the same seed and keeps its stages; rank 0 feeds the images, the last
// stage's rank the labels, and that rank prints each epoch's training loss and test accuracy. With the same flags,
// any number of ranks follows the single process's trajectory (the same micro-batches, summed in the same order):
// only the place each layer runs changes. An error on any rank ends every rank with its message.
#include <braid/braid.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cxxopts.hpp>
#include <limits>
#include <memory>
#include <string>

#include "cli_values.h"
#include "nonfinite_stop.h"

using namespace braid;
using examples::int_flag;
using examples::UsageError;

namespace {

cxxopts::Options make_options() {
  cxxopts::Options cli("pipeline", "Train a deep MLP on Fashion-MNIST with pipeline parallelism over mpirun's ranks");
  auto text = examples::text_value;
  // clang-format off
  cli.add_options()
    ("schedule", "pipeline schedule: gpipe, 1f1b, interleaved or zb", text("1f1b"))
    ("microbatches", "micro-batches per batch (M; divides --batch-size)", text("4"))
    ("virtual-stages", "stages per rank (v; only with --schedule interleaved, default 2 there)", text("0"))
    ("epochs", "training epochs", text("10"))
    ("batch-size", "samples per optimizer step", text("128"))
    ("optimizer", "adam, or sgd (with momentum 0.9; try --lr 0.05)", text("adam"))
    ("lr", "initial learning rate (cosine-annealed to 0)", text("1e-3"))
    ("limit", "train and test on the first N images of each set (0: all)", text("0"))
    ("seed", "random seed for weights and shuffling", text("0"))
    ("threads", "CPU threads per rank (0: OMP_NUM_THREADS, or the cores shared among this host's ranks)", text("0"))
    ("data-dir", "folder with the Fashion-MNIST .gz files", text(data::default_fashion_mnist_root))
    ("stop-on-nonfinite", "stop (on every rank, exit 1) at the first step whose loss or a gradient is NaN or infinite, "
     "naming the step and the parameter")
    ("nan-loss-at-step", "testing: make this step's loss NaN (counted over the run from 1), to try "
     "--stop-on-nonfinite (0: never)", text("0"))
    ("h,help", "show this help");
  // clang-format on
  return cli;
}

// deep_mlp's modules (784 -> 6 x 256 ReLU -> 10: seven Linear and six ReLU); each pipeline stage needs one.
constexpr int64_t kDeepMlpModules = 13;

// A flag held in an int: a larger value is refused rather than wrapped.
int count_flag(const cxxopts::ParseResult& args, const std::string& name, int lo) {
  const int64_t value = int_flag(args, name, lo);
  if (value > std::numeric_limits<int>::max())
    throw UsageError("--" + name + ": expected at most " + std::to_string(std::numeric_limits<int>::max()) +
                     ", got " + std::to_string(value));
  return int(value);
}

struct Config {
  dist::PipelineOptions pipeline;
  int epochs = 0;
  int64_t batch_size = 0, limit = 0;
  bool adam = false;
  double lr = 0;
  uint64_t seed = 0;
  int threads = 0;
  std::string data_dir;
  bool stop_on_nonfinite = false;
  int64_t nan_loss_at_step = 0;  // a test hook: this step's loss is made NaN
};

dist::PipelineOptions read_pipeline_options(const cxxopts::ParseResult& args, int ranks) {
  dist::PipelineOptions options;
  try {
    options.schedule = dist::parse_schedule_kind(args["schedule"].as<std::string>());
  } catch (const Error& e) {
    throw UsageError(std::string("--schedule: ") + e.what());
  }
  const bool interleaved = options.schedule == dist::ScheduleKind::Interleaved;
  options.microbatches = count_flag(args, "microbatches", 1);
  options.virtual_stages = count_flag(args, "virtual-stages", 0);
  if (options.virtual_stages == 0) options.virtual_stages = interleaved ? 2 : 1;
  if (options.virtual_stages > 1 && !interleaved)
    throw UsageError("--virtual-stages " + std::to_string(options.virtual_stages) + " needs --schedule interleaved; " +
                     args["schedule"].as<std::string>() + " runs one stage per rank");
  if (int64_t(options.virtual_stages) * ranks > kDeepMlpModules)
    throw UsageError("--virtual-stages " + std::to_string(options.virtual_stages) + " on " + std::to_string(ranks) +
                     " ranks makes more stages than the model's " + std::to_string(kDeepMlpModules) + " modules");
  if (interleaved && options.virtual_stages > 1 && options.microbatches % ranks != 0)
    throw UsageError("--microbatches " + std::to_string(options.microbatches) +
                     " must be a multiple of the number of ranks (" + std::to_string(ranks) +
                     ") for --schedule interleaved");
  return options;
}

Config read_config(const cxxopts::ParseResult& args, int ranks) {
  Config c;
  c.pipeline = read_pipeline_options(args, ranks);
  c.epochs = count_flag(args, "epochs", 1);
  c.batch_size = int_flag(args, "batch-size", 1);
  if (c.batch_size % c.pipeline.microbatches != 0)
    throw UsageError("--batch-size " + std::to_string(c.batch_size) + " does not divide into --microbatches " +
                     std::to_string(c.pipeline.microbatches) + " equal micro-batches");
  const std::string optimizer = args["optimizer"].as<std::string>();
  if (optimizer != "sgd" && optimizer != "adam")
    throw UsageError("--optimizer: expected sgd or adam, got '" + optimizer + "'");
  c.adam = optimizer == "adam";
  c.lr = examples::positive_flag(args, "lr");
  c.limit = int_flag(args, "limit", 0);
  c.seed = examples::seed_flag(args);
  c.threads = int(int_flag(args, "threads", 0, examples::kMaxThreads));
  c.data_dir = args["data-dir"].as<std::string>();
  c.stop_on_nonfinite = args.count("stop-on-nonfinite") > 0;
  c.nan_loss_at_step = int_flag(args, "nan-loss-at-step", 0);
  return c;
}

nn::Sequential deep_mlp() {
  nn::Sequential mlp(nn::Linear(784, 256), nn::ReLU());
  for (int i = 0; i < 5; ++i) {
    mlp->push_back(nn::Linear(256, 256));
    mlp->push_back(nn::ReLU());
  }
  mlp->push_back(nn::Linear(256, 10));
  return mlp;
}

// The first n samples (all of them when n is 0 or more than there are).
std::shared_ptr<data::TensorDataset> first_samples(const std::shared_ptr<data::TensorDataset>& set, int64_t n) {
  if (n == 0 || n >= set->size()) return set;
  return std::make_shared<data::TensorDataset>(ops::narrow(set->data(), 0, 0, n), ops::narrow(set->targets(), 0, 0, n));
}

std::shared_ptr<data::TensorDataset> load(const Config& c, bool train) {
  try {
    return first_samples(data::load_fashion_mnist(c.data_dir, train), c.limit);
  } catch (const Error& e) {
    throw UsageError(std::string("--data-dir: ") + e.what());
  }
}

std::unique_ptr<optim::Optimizer> make_optimizer(const Config& c, std::vector<Tensor> params) {
  if (c.adam) return std::make_unique<optim::Adam>(std::move(params), optim::AdamOptions{.lr = c.lr});
  return std::make_unique<optim::SGD>(std::move(params), optim::SGDOptions{.lr = c.lr, .momentum = 0.9});
}

// The share of the test set the model classifies right, on the last stage's rank (0 elsewhere).
double accuracy(dist::Pipeline& pipe, const data::TensorDataset& test) {
  Tensor logits = pipe.forward(test.data());
  if (!logits.defined()) return 0.0;
  Tensor right = ops::binary(ops::BinaryOp::Eq, argmax(logits, 1), test.targets());
  return ops::sum(ops::to_dtype(right, DType::Float64)).item<double>() / double(test.size());
}

void train(const Config& c) {
  auto world = dist::world();
  const int rank = world->rank();
  auto train_set = load(c, true), test_set = load(c, false);
  manual_seed(c.seed);
  nn::Sequential model = deep_mlp();  // the same weights on every rank; each keeps its stages
  int64_t global_step = 0;
  auto loss_fn = [&](const Tensor& logits, const Tensor& labels) {
    Tensor loss = nn::cross_entropy(logits, labels);
    return global_step == c.nan_loss_at_step ? loss * std::numeric_limits<double>::quiet_NaN() : loss;
  };
  dist::Pipeline pipe(model, world, c.pipeline, loss_fn);
  auto optimizer = make_optimizer(c, pipe.parameters());
  // Every step's batch must have the size the first had (the pipeline exchanges activation shapes once).
  data::DataLoader loader(
      train_set, {.batch_size = c.batch_size, .shuffle = true, .seed = c.seed, .drop_last = true, .num_workers = 1});
  BRAID_CHECK(loader.size() > 0, "--batch-size ", c.batch_size, " is more than the ", train_set->size(),
              " training images");
  optim::CosineAnnealingLR lr_schedule(*optimizer, int64_t(c.epochs) * loader.size());
  const bool reports = pipe.holds_last_stage();
  if (reports)
    std::printf(
        "Fashion-MNIST: %lld training and %lld test images; %d ranks, schedule %s, %d stages, M = %d, %d "
        "threads per rank\n",
        (long long)train_set->size(), (long long)test_set->size(), world->size(),
        dist::to_string(c.pipeline.schedule).c_str(), pipe.schedule().num_stages(), c.pipeline.microbatches,
        get_num_threads());
  for (int epoch = 1; epoch <= c.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int64_t step = 0;
    for (auto& batch : loader) {
      ++global_step, ++step;
      optimizer->zero_grad();
      Tensor loss = pipe.step(rank == 0 ? batch.data : Tensor(), reports ? batch.target : Tensor());
      // The stages' parameters differ per rank: the ranks agree on whether any found one.
      if (c.stop_on_nonfinite)
        examples::stop_on_nonfinite("epoch " + std::to_string(epoch) + " step " + std::to_string(step), loss,
                                    pipe.named_parameters(), world.get());
      optimizer->step();
      lr_schedule.step();
      if (reports) loss_sum += loss.item<double>();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double acc = accuracy(pipe, *test_set);
    if (reports) {
      std::printf("Epoch %d: train loss %.4f, test accuracy %.2f%%, %.1f s (%.0f samples/s)\n", epoch,
                  loss_sum / double(loader.size()), 100 * acc, secs, double(loader.size() * c.batch_size) / secs);
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    dist::init(argc, argv);  // a single process of world size 1 unless started by mpirun
  } catch (const Error& e) {  // e.g. a malformed BRAID_DIST_TIMEOUT: a message and exit 1 on every rank, no abort
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 1;
  }
  cxxopts::Options cli = make_options();
  const bool main_rank = dist::rank() == 0;
  try {
    auto args = cli.parse(argc, argv);
    if (args.count("help")) {
      if (main_rank) std::printf("%s\n", cli.help().c_str());
      dist::finalize();
      return 0;
    }
    Config config = read_config(args, dist::world_size());
    if (config.threads > 0) {
      set_num_threads(config.threads);
    } else if (dist::local_world_size() > 1 && !std::getenv("OMP_NUM_THREADS")) {
      // Ranks sharing a host share its cores (torchrun sets OMP_NUM_THREADS=1 for the same reason).
      set_num_threads(std::max(1, get_num_threads() / dist::local_world_size()));
    }
    train(config);
    dist::finalize();
    return 0;
  } catch (const cxxopts::exceptions::exception& e) {
    // Any rank may be the one given bad flags (mpirun MPMD): it says so, and its goodbye (finalize) ends the ranks
    // that wait for it.
    if (main_rank)
      std::fprintf(stderr, "pipeline: %s\n%s\n", e.what(), cli.help().c_str());
    else
      std::fprintf(stderr, "pipeline (rank %d): %s\n", dist::rank(), e.what());
    dist::finalize();
    return 2;
  } catch (const UsageError& e) {
    if (main_rank)
      std::fprintf(stderr, "pipeline: %s\n", e.what());
    else
      std::fprintf(stderr, "pipeline (rank %d): %s\n", dist::rank(), e.what());
    dist::finalize();
    return 2;
  } catch (const std::exception& e) {
    // Under mpirun the other ranks may be waiting for this one: end them all.
    if (dist::world_size() > 1) dist::abort(std::string("pipeline: ") + e.what());
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 1;
  }
}
