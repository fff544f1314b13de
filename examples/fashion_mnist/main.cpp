// Trains a 784-256-128-10 MLP on Fashion-MNIST (Debian's dataset-fashion-mnist) with SGD + momentum and a cosine
// learning-rate schedule, printing progress and the test accuracy after each epoch.
//
// Data parallel: `mpirun -np 2 fashion_mnist --ddp`. Every rank loads the data, trains on its shard of each
// global batch (--batch-size is the global batch, split evenly over the ranks, so the run follows the same
// trajectory as one process with the same flags: unlike PyTorch, where the batch size is per rank, nothing needs
// rescaling), averages gradients with DistributedDataParallel, and evaluates its share of the test set; the
// counts are summed over the ranks and rank 0 prints.
//
// Checkpoints hold the whole training state: model, optimizer, schedule, the epoch and the step within it, the
// epoch's running loss, the random generator and so the data loader's position (the data order is a function of
// (seed, epoch) alone). `--checkpoint PATH` writes one after each epoch, and also every N steps with
// `--checkpoint-every N`; `--resume PATH` continues from it. Run with the same flags, a resumed run ends bit for bit
// where the uninterrupted one does, however it was interrupted (even kill -9: files are replaced atomically and
// carry a checksum); the final parameters' checksum is printed to compare runs. SIGINT or SIGTERM on any rank stops
// every rank after the same step, saves the state there and exits with 128 + the signal number.
// `--stop-after N` ends a run after epoch N, as a preempted job would.
#include <braid/braid.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cxxopts.hpp>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cli_values.h"
#include "nonfinite_stop.h"
#include "stop_signal.h"

using namespace braid;

namespace {

constexpr int kMaxWorkers = 1024;

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda") return cuda::is_available() ? dist::local_device() : Device::cuda(0);
  if (name.rfind("cuda:", 0) == 0) {
    // Digits only: std::stoi would throw its own exception for "cuda:abc" and read "cuda:1x" as cuda:1.
    const std::string index = name.substr(5);
    const bool digits = !index.empty() && index.size() <= 9 &&
                        std::all_of(index.begin(), index.end(), [](unsigned char c) { return std::isdigit(c); });
    BRAID_CHECK(digits, "--device: expected cpu, cuda or cuda:N with N a device number, got '", name, "'");
    return Device::cuda(std::stoi(index));
  }
  BRAID_FAIL("--device: expected cpu, cuda or cuda:N, got '", name, "'");
}

// Test accuracy: with a group, each rank classifies its contiguous share of the test set and the counts of correct
// answers are summed over the group; without one, this rank classifies the whole set.
double accuracy(nn::Sequential& model, const Tensor& images, const Tensor& labels, dist::ProcessGroup* group) {
  NoGradGuard no_grad;
  const int64_t n = images.size(0);
  const int rank = group ? group->rank() : 0, ranks = group ? group->size() : 1;
  const int64_t begin = n * rank / ranks, end = n * (rank + 1) / ranks;
  model->eval();
  Tensor predicted = argmax(model(ops::narrow(images, 0, begin, end - begin)), 1);
  model->train();
  Tensor correct = ops::sum(ops::to_dtype(
      ops::binary(ops::BinaryOp::Eq, predicted, ops::narrow(labels, 0, begin, end - begin)), DType::Float64));
  correct = ops::to_device(ops::reshape(correct, {1}), Device::cpu());
  if (group) group->all_reduce(correct, dist::ReduceOp::Sum)->wait();
  return correct.item<double>() / double(n);
}

// The first n samples (all of them when n is 0 or more than there are).
std::shared_ptr<data::TensorDataset> first_samples(const std::shared_ptr<data::TensorDataset>& set, int64_t n) {
  if (n == 0 || n >= set->size()) return set;
  return std::make_shared<data::TensorDataset>(ops::narrow(set->data(), 0, 0, n), ops::narrow(set->targets(), 0, 0, n));
}

// What a checkpoint records of the flags that decide the trajectory, so a resume with other values is refused
// instead of silently leaving the uninterrupted run's path.
nn::Metadata run_flags(const cxxopts::ParseResult& args) {
  return {{"seed", std::to_string(args["seed"].as<uint64_t>())},
          {"batch-size", std::to_string(args["batch-size"].as<int64_t>())},
          {"limit", std::to_string(args["limit"].as<int64_t>())}};
}

// Where a run stands between two steps: the epochs it has finished, the steps of the next one, and that epoch's
// sample count and this rank's summed loss (so its progress lines continue as the uninterrupted run's would).
struct RunPoint {
  int epochs_done = 0;
  int64_t step = 0;
  int64_t seen = 0;
  double loss_sum = 0;
};

// Every rank's summed loss, in rank order (each rank fills its own slot, so the sum is exact).
std::vector<double> loss_sums_of_ranks(double mine, dist::ProcessGroup* group) {
  if (!group) return {mine};
  Tensor slots = zeros({group->size()}, DType::Float64);
  slots.data<double>()[group->rank()] = mine;
  group->all_reduce(slots, dist::ReduceOp::Sum)->wait();
  return slots.to_vector<double>();
}

// What a checkpoint records besides model, optimizer and schedule.
nn::Metadata checkpoint_extra(const cxxopts::ParseResult& args, const RunPoint& at,
                              const std::vector<double>& loss_sums) {
  nn::Metadata extra = run_flags(args);
  extra["epoch"] = std::to_string(at.epochs_done);
  extra["step"] = std::to_string(at.step);
  extra["seen"] = std::to_string(at.seen);
  std::string sums;
  for (double sum : loss_sums) {
    char hex[64];
    std::snprintf(hex, sizeof hex, "%a", sum);  // hexadecimal: read back exactly
    if (!sums.empty()) sums += ',';
    sums += hex;
  }
  extra["loss_sum"] = sums;
  extra["rng"] = get_rng_state();
  return extra;
}

// The count recorded under `key`; checkpoints from before a key existed lack it and read as 0 unless `required`.
int64_t recorded_count(const nn::Metadata& extra, const std::string& key, const std::string& path, bool required,
                       int64_t max = std::numeric_limits<int64_t>::max()) {
  auto it = extra.find(key);
  BRAID_CHECK(it != extra.end() || !required, "'", path, "' does not record the ", key);
  if (it == extra.end()) return 0;
  const std::string& text = it->second;
  int64_t value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  BRAID_CHECK(ec == std::errc() && end == text.data() + text.size() && value >= 0 && value <= max, "'", path,
              "' records ", key, " '", text, "', expected a count from 0 to ", max);
  return value;
}

// This rank's summed loss of the unfinished epoch. Resumed on another number of ranks, each takes an equal share.
double recorded_loss_sum(const nn::Metadata& extra, const std::string& path, int rank, int ranks) {
  auto it = extra.find("loss_sum");
  if (it == extra.end()) return 0;
  std::vector<double> sums;
  for (const char* at = it->second.c_str();; ++at) {
    char* end = nullptr;
    double value = std::strtod(at, &end);
    BRAID_CHECK(end != at && (*end == ',' || *end == '\0') && std::isfinite(value), "'", path, "' records loss_sum '",
                it->second, "', expected finite numbers separated by commas");
    sums.push_back(value);
    if (*end == '\0') break;
    at = end;
  }
  if (int(sums.size()) == ranks) return sums[size_t(rank)];
  double total = 0;
  for (double sum : sums) total += sum;
  return total / ranks;
}

// Restores model, optimizer, schedule and the random generator from `path`; returns where the run stood.
RunPoint resume(const std::string& path, const cxxopts::ParseResult& args, nn::Module& model,
                optim::Optimizer& optimizer, optim::LRScheduler& schedule, int rank, int ranks) {
  nn::Metadata extra = nn::load_training_state(path, model, optimizer, schedule);
  for (const auto& [flag, value] : run_flags(args)) {
    auto it = extra.find(flag);
    BRAID_CHECK(it != extra.end(), "'", path, "' does not record --", flag);
    BRAID_CHECK(it->second == value, "'", path, "' was written by a run with --", flag, " ", it->second,
                ", this run has --", flag, " ", value, " (a resumed run needs the flags of the run it continues)");
  }
  RunPoint at{.epochs_done = int(recorded_count(extra, "epoch", path, true, std::numeric_limits<int>::max())),
              .step = recorded_count(extra, "step", path, false),
              .seen = recorded_count(extra, "seen", path, false),
              .loss_sum = recorded_loss_sum(extra, path, rank, ranks)};
  if (auto rng = extra.find("rng"); rng != extra.end()) set_rng_state(rng->second);
  return at;
}

// The stop signal any rank of `group` has received (the largest number), so every rank stops after the same step.
int agreed_stop_signal(dist::ProcessGroup* group) {
  int signal = examples::stop_signal();
  if (!group) return signal;
  Tensor t = from_vector(std::vector<double>{double(signal)});
  group->all_reduce(t, dist::ReduceOp::Max)->wait();
  return int(t.item<double>());
}

// The mean over ranks of a CPU scalar.
double mean_over_ranks(double value, dist::ProcessGroup& group) {
  Tensor t = from_vector(std::vector<double>{value});
  group.all_reduce(t, dist::ReduceOp::Avg)->wait();
  return t.item<double>();
}

// The numeric flags whose values the training loop does not check itself (each error names its flag).
void check_flag_ranges(const cxxopts::ParseResult& args) {
  const int threads = args["threads"].as<int>();
  BRAID_CHECK(threads >= 0 && threads <= examples::kMaxThreads, "--threads: expected 0 to ", examples::kMaxThreads,
              ", got ", threads);
  BRAID_CHECK(args["log-every"].as<int>() >= 1, "--log-every: expected 1 or more, got ", args["log-every"].as<int>());
  BRAID_CHECK(args["batch-size"].as<int64_t>() >= 1, "--batch-size: expected 1 or more, got ",
              args["batch-size"].as<int64_t>());
  const double lr = args["lr"].as<double>(), momentum = args["momentum"].as<double>();
  BRAID_CHECK(lr > 0 && std::isfinite(lr), "--lr: expected a positive number, got ", lr);
  BRAID_CHECK(momentum >= 0 && momentum < 1, "--momentum: expected a value in [0, 1), got ", momentum);
  const double bucket_mb = args["bucket-mb"].as<double>();
  BRAID_CHECK(bucket_mb > 0 && bucket_mb <= 1 << 20, "--bucket-mb: expected a size in (0, 1048576] MiB, got ",
              bucket_mb);
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("fashion_mnist", "Train an MLP on Fashion-MNIST with Braid");
  // clang-format off
  cli.add_options()
    ("epochs", "training epochs", cxxopts::value<int>()->default_value("15"))
    ("batch-size", "samples per optimizer step (with --ddp: the global batch, split over the ranks)",
     cxxopts::value<int64_t>()->default_value("128"))
    ("lr", "initial learning rate (cosine-annealed to 0)", cxxopts::value<double>()->default_value("0.05"))
    ("momentum", "SGD momentum", cxxopts::value<double>()->default_value("0.9"))
    ("threads", "CPU threads per rank (0: OMP_NUM_THREADS, or the cores shared among this host's ranks)",
     cxxopts::value<int>()->default_value("0"))
    ("workers", "background batch-loading threads", cxxopts::value<int>()->default_value("1"))
    ("seed", "random seed for weights and shuffling", cxxopts::value<uint64_t>()->default_value("0"))
    ("data", "folder with the Fashion-MNIST .gz files", cxxopts::value<std::string>()->default_value(
        data::default_fashion_mnist_root))
    ("checkpoint", "save the training state (model, optimizer, schedule, epoch) here (.safetensors) after each "
     "epoch", cxxopts::value<std::string>())
    ("checkpoint-every", "also save it every N optimizer steps (0: only after each epoch)",
     cxxopts::value<int64_t>()->default_value("0"))
    ("resume", "continue the run saved in this --checkpoint file (with the flags of that run)",
     cxxopts::value<std::string>())
    ("stop-after", "end the run after this epoch, as a preempted job would (0: run all --epochs)",
     cxxopts::value<int>()->default_value("0"))
    ("limit", "train and test on the first N images of each set (0: all)",
     cxxopts::value<int64_t>()->default_value("0"))
    ("device", "cpu, cuda or cuda:N (default: cuda when a GPU is visible)", cxxopts::value<std::string>())
    ("log-every", "print a progress line every N steps", cxxopts::value<int>()->default_value("100"))
    ("ddp", "data-parallel over the ranks of mpirun (DistributedDataParallel)")
    ("bucket-mb", "with --ddp: gradient bucket size in MiB", cxxopts::value<double>()->default_value("25"))
    ("no-overlap", "with --ddp: all-reduce after backward instead of during it (to measure the overlap)")
    ("stop-on-nonfinite", "stop (exit 1) at the first step whose loss or a gradient is NaN or infinite, naming the "
     "step and the parameter")
    ("h,help", "show this help");
  // clang-format on
  bool main_rank = true;  // until dist::init has said otherwise
  try {
    // Inside the try: a bad BRAID_DIST_TIMEOUT is reported like a bad flag. A single process of world size 1
    // unless started by mpirun.
    dist::init(argc, argv);
    main_rank = dist::rank() == 0;
    auto args = examples::parse_args(cli, argc, argv);
    check_flag_ranges(args);
    if (args.count("help")) {
      if (main_rank) std::printf("%s\n", cli.help().c_str());
      return 0;
    }
    const bool ddp_on = args.count("ddp") > 0;
    examples::install_stop_signal_handlers();
    auto world = dist::world();
    if (int threads = args["threads"].as<int>(); threads > 0) {
      set_num_threads(threads);
    } else if (dist::local_world_size() > 1 && !std::getenv("OMP_NUM_THREADS")) {
      // Ranks sharing a host share its cores (torchrun sets OMP_NUM_THREADS=1 for the same reason).
      set_num_threads(std::max(1, get_num_threads() / dist::local_world_size()));
    }
    const int epochs = args["epochs"].as<int>();
    BRAID_CHECK(epochs >= 1, "--epochs: expected at least 1, got ", epochs);
    const int stop_after = args["stop-after"].as<int>();
    BRAID_CHECK(stop_after >= 0 && stop_after <= epochs, "--stop-after: expected 0 (none) to --epochs ", epochs,
                ", got ", stop_after);
    const int workers = args["workers"].as<int>();
    // Each worker is a thread; far more than any host has cores only ends in std::system_error when they start.
    BRAID_CHECK(workers >= 0 && workers <= kMaxWorkers, "--workers: expected 0 to ", kMaxWorkers,
                " background threads, got ", workers);
    const int64_t limit = args["limit"].as<int64_t>();
    BRAID_CHECK(limit >= 0, "--limit: expected a count of images >= 0, got ", limit);
    const std::string checkpoint = args.count("checkpoint") ? args["checkpoint"].as<std::string>() : "";
    // Before any training: an unwritable path found after the first epoch would cost the epoch.
    if (args.count("checkpoint") && main_rank) {
      try {
        nn::check_can_save(checkpoint);
      } catch (const Error& e) {
        BRAID_FAIL("--checkpoint: ", e.what());
      }
    }
    const int64_t checkpoint_every = args["checkpoint-every"].as<int64_t>();
    BRAID_CHECK(checkpoint_every >= 0,
                "--checkpoint-every: expected a step count >= 0 (0: after each epoch only), got ", checkpoint_every);
    BRAID_CHECK(checkpoint_every == 0 || args.count("checkpoint"), "--checkpoint-every ", checkpoint_every,
                " needs --checkpoint PATH to save to");
    const int64_t batch_size = args["batch-size"].as<int64_t>();
    const int log_every = std::max(1, args["log-every"].as<int>());
    const int ranks = ddp_on ? world->size() : 1;
    BRAID_CHECK(batch_size % ranks == 0, "--batch-size ", batch_size, " (the global batch) does not split evenly over ",
                ranks, " ranks");
    manual_seed(args["seed"].as<uint64_t>());
    if (!ddp_on && world->size() > 1 && main_rank)
      std::printf("Note: %d ranks without --ddp train %d independent copies; rank 0 reports its own\n", world->size(),
                  world->size());

    auto train = first_samples(data::load_fashion_mnist(args["data"].as<std::string>(), true), limit);
    auto test = first_samples(data::load_fashion_mnist(args["data"].as<std::string>(), false), limit);
    if (main_rank)
      std::printf("Fashion-MNIST: %lld training and %lld test images, %d threads%s\n", (long long)train->size(),
                  (long long)test->size(), get_num_threads(),
                  ddp_on ? (" per rank, " + std::to_string(ranks) + " ranks (DistributedDataParallel)").c_str() : "");

    // "cuda" (and the default when a GPU is visible) is this rank's GPU: local rank modulo the devices.
    Device device = args.count("device") ? parse_device(args["device"].as<std::string>()) : dist::local_device();
    BRAID_CHECK(device.is_cpu() || device.index < cuda::device_count(), "--device: ", device, " is not available (",
                cuda::device_count(), " CUDA devices visible)");
    nn::Sequential model(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 128), nn::ReLU(), nn::Linear(128, 10));
    model->to(device);
    Tensor test_images = to(test->data(), device), test_labels = to(test->targets(), device);
    optim::SGD optimizer(model->parameters(),
                         {.lr = args["lr"].as<double>(), .momentum = args["momentum"].as<double>()});
    data::DataLoaderOptions loader_options{.batch_size = batch_size / ranks,
                                           .shuffle = true,
                                           .seed = args["seed"].as<uint64_t>(),
                                           .num_workers = workers};
    if (ddp_on) loader_options = dist::distributed_loader_options(loader_options, world);
    data::DataLoader loader(train, loader_options);
    optim::CosineAnnealingLR schedule(optimizer, int64_t(epochs) * loader.size());
    RunPoint start_at;
    if (args.count("resume")) {
      try {
        start_at = resume(args["resume"].as<std::string>(), args, *model, optimizer, schedule,
                          ddp_on ? world->rank() : 0, ranks);
        loader.set_position({uint64_t(start_at.epochs_done), start_at.step});  // the loader numbers epochs from 0
      } catch (const Error& e) {
        BRAID_FAIL("--resume: ", e.what());
      }
      if (main_rank)
        std::printf("Resumed from %s after epoch %d%s\n", args["resume"].as<std::string>().c_str(),
                    start_at.epochs_done,
                    start_at.step ? (", step " + std::to_string(start_at.step) + " of the next").c_str() : "");
    }
    // Called by every rank at the same steps; rank 0 writes.
    auto save_checkpoint = [&](const RunPoint& at, const Tensor& loss_sum) {
      if (checkpoint.empty()) return;
      std::vector<double> sums = loss_sums_of_ranks(loss_sum.item<double>(), ddp_on ? world.get() : nullptr);
      if (main_rank) nn::save_training_state(checkpoint, *model, optimizer, schedule, checkpoint_extra(args, at, sums));
    };
    // After the move and the resume: DistributedDataParallel builds its buckets on the parameters' device and
    // broadcasts rank 0's parameters.
    std::unique_ptr<dist::DistributedDataParallel> ddp;
    if (ddp_on)
      ddp = std::make_unique<dist::DistributedDataParallel>(
          *model, world,
          dist::DDPOptions{.bucket_cap_bytes = size_t(args["bucket-mb"].as<double>() * double(1 << 20)),
                           .overlap = args.count("no-overlap") == 0});

    auto run_start = std::chrono::steady_clock::now();
    const int last_epoch = stop_after > 0 ? stop_after : epochs;
    const int64_t steps_per_epoch = loader.size();
    dist::ProcessGroup* stop_group = ddp_on ? world.get() : nullptr;
    int stopped_by = 0;  // the signal that stopped the run
    RunPoint stopped_at;
    for (int epoch = start_at.epochs_done + 1; epoch <= last_epoch && !stopped_by; ++epoch) {
      auto start = std::chrono::steady_clock::now();
      const bool resumed = epoch == start_at.epochs_done + 1;
      int64_t step = resumed ? start_at.step : 0, seen = resumed ? start_at.seen : 0;
      // Summed on the device: reading it each step would wait for the GPU.
      Tensor loss_sum = full({}, resumed ? start_at.loss_sum : 0.0, device);
      for (auto& batch : loader) {
        optimizer.zero_grad();
        Tensor loss = nn::cross_entropy(model(to(batch.data, device)), to(batch.target, device));
        loss.backward();
        if (args.count("stop-on-nonfinite"))  // with --ddp the gradients are all-reduced: every rank finds alike
          examples::stop_on_nonfinite("epoch " + std::to_string(epoch) + " step " + std::to_string(step + 1), loss,
                                      model->named_parameters(), stop_group);
        optimizer.step();
        schedule.step();
        ops::add_(loss_sum, loss.detach());
        seen += batch.data.size(0);
        if (++step % log_every == 0 && main_rank)
          std::printf("  epoch %d step %4lld/%lld  loss %.4f%s\n", epoch, (long long)step, (long long)loader.size(),
                      loss_sum.item<double>() / double(step), ddp_on ? " (rank 0)" : "");
        // The last step's state is saved, and a stop honoured, after the epoch's summary.
        if (step == steps_per_epoch) continue;
        stopped_by = agreed_stop_signal(stop_group);
        const RunPoint here{epoch - 1, step, seen};
        if (stopped_by ||
            (checkpoint_every > 0 && (int64_t(epoch - 1) * steps_per_epoch + step) % checkpoint_every == 0))
          save_checkpoint(here, loss_sum);
        if (stopped_by) {
          stopped_at = here;
          break;
        }
      }
      if (stopped_by) break;
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      double train_loss = loss_sum.item<double>() / double(step);
      double acc;
      if (ddp_on) {
        train_loss = mean_over_ranks(train_loss, *world);
        seen *= ranks;
        acc = accuracy(model, test_images, test_labels, world.get());
      } else {
        acc = accuracy(model, test_images, test_labels, nullptr);
      }
      if (main_rank) {
        std::printf("Epoch %d (%s%s): train loss %.4f, test accuracy %.2f%%, %.1f s (%.0f samples/s)\n", epoch,
                    device.str().c_str(), ddp_on ? (" x " + std::to_string(ranks) + " ranks").c_str() : "", train_loss,
                    100 * acc, secs, double(seen) / secs);
        std::fflush(stdout);
      }
      save_checkpoint(RunPoint{epoch}, zeros({}));
      if (epoch < last_epoch && (stopped_by = agreed_stop_signal(stop_group))) stopped_at = RunPoint{epoch};
    }
    if (stopped_by && main_rank) {
      const std::string where = stopped_at.step ? "in epoch " + std::to_string(stopped_at.epochs_done + 1) +
                                                      " after step " + std::to_string(stopped_at.step)
                                                : "after epoch " + std::to_string(stopped_at.epochs_done);
      std::fprintf(
          stderr, "fashion_mnist: stopped by %s %s; %s\n", examples::signal_name(stopped_by), where.c_str(),
          checkpoint.empty() ? "nothing saved (no --checkpoint)" : ("resume with --resume " + checkpoint).c_str());
    } else if (main_rank) {
      std::printf("Trained in %.1f s\n",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count());
      // Equal for bitwise-equal parameters: compares runs (a resumed one with an uninterrupted one).
      std::printf("Parameter checksum: crc32 %08x\n", unsigned(nn::checksum(model->state_dict())));
    }
    ddp.reset();
    dist::finalize();
    return stopped_by ? 128 + stopped_by : 0;
  } catch (const cxxopts::exceptions::exception& e) {
    // Any rank may be the one given bad flags (mpirun MPMD): it says so, and its goodbye at exit ends the ranks
    // that wait for it.
    if (main_rank)
      std::fprintf(stderr, "fashion_mnist: %s\n%s\n", e.what(), cli.help().c_str());
    else
      std::fprintf(stderr, "fashion_mnist (rank %d): %s\n", dist::rank(), e.what());
    return 2;
  } catch (const Error& e) {
    // Under mpirun the other ranks would wait for this one forever: end them all.
    if (dist::is_initialized() && dist::world_size() > 1) dist::abort(std::string("fashion_mnist: ") + e.what());
    std::fprintf(stderr, "fashion_mnist: %s\n", e.what());
    return 1;
  }
}
