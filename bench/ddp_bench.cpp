// DDP training throughput of an MLP on CPU: one process (world size 1) or N ranks under mpiexec, each rank
// running its own per-rank batch (PyTorch convention: the global batch is ranks x --local-batch).
//
//   mpiexec -n 2 ... braid_ddp_bench --hidden 256,128 --local-batch 128 --steps 100 --warmup 10
//                                    [--no-overlap] [--bucket-mb 25] [--lockstep-only] [--random]
//
// Data: Fashion-MNIST training images (braid::data::load_fashion_mnist), shuffled once with a permutation shared
// by all ranks (same seed); rank r owns the contiguous shard [r*N/W, (r+1)*N/W) of the shuffled set and step s
// takes the contiguous slice ops::narrow(shard, s*B mod shard) of it, so no per-step gather or loader thread is
// timed. --random uses randn data of the same shape instead. Model: Linear+ReLU 784-h1-h2-10, cross-entropy, SGD
// lr 0.1 momentum 0.9. Timed region: barrier, --steps steps, barrier; time = max over ranks; rank 0 prints one
// JSON line with global samples/s.
#include <braid/braid.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace braid;

namespace {

std::string flag(int argc, char** argv, const char* name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}
bool has(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  dist::init(argc, argv);
  try {
    auto world = dist::world();
    const int rank = world->rank(), ranks = world->size();
    const int64_t B = std::stoll(flag(argc, argv, "--local-batch", "128"));
    const int steps = std::stoi(flag(argc, argv, "--steps", "100"));
    const int warmup = std::stoi(flag(argc, argv, "--warmup", "10"));
    const int threads = std::stoi(flag(argc, argv, "--threads", "1"));
    const bool overlap = !has(argc, argv, "--no-overlap");
    const double bucket_mb = std::stod(flag(argc, argv, "--bucket-mb", "25"));
    const bool random_data = has(argc, argv, "--random");
    std::vector<int64_t> hidden;
    {
      std::stringstream ss(flag(argc, argv, "--hidden", "256,128"));
      for (std::string tok; std::getline(ss, tok, ',');) hidden.push_back(std::stoll(tok));
    }
    BRAID_CHECK(hidden.size() == 2, "--hidden: expected h1,h2");
    set_num_threads(threads);
    manual_seed(0);

    Tensor shard_x, shard_y;
    if (random_data) {
      shard_x = randn({B * 16, 784});  // a pool of 16 batches, labels cycling through 0..9
      std::vector<int64_t> y(size_t(B * 16));
      for (size_t i = 0; i < y.size(); ++i) y[i] = int64_t((i * 7 + 3) % 10);
      shard_y = from_vector(y);
    } else {
      auto train = data::load_fashion_mnist(data::default_fashion_mnist_root, true);
      const int64_t n = train->size();
      Tensor perm = randperm(n);  // same seed on every rank: the same permutation
      const int64_t begin = n * rank / ranks, end = n * (rank + 1) / ranks;
      Tensor idx = ops::contiguous(ops::narrow(perm, 0, begin, end - begin));
      shard_x = ops::contiguous(ops::reshape(ops::index_select(train->data(), 0, idx), {end - begin, 784}));
      shard_y = ops::contiguous(ops::index_select(train->targets(), 0, idx));
    }
    const int64_t shard_n = shard_x.size(0);
    BRAID_CHECK(shard_n >= B, "shard of ", shard_n, " samples is smaller than the batch ", B);
    const int64_t batches = shard_n / B;

    nn::Sequential model(nn::Linear(784, hidden[0]), nn::ReLU(), nn::Linear(hidden[0], hidden[1]), nn::ReLU(),
                         nn::Linear(hidden[1], 10));
    std::unique_ptr<dist::DistributedDataParallel> ddp;
    // --lockstep-only: no DDP, a barrier after every step instead: what stepping in lockstep costs without
    // exchanging gradients (the waiting for the slower rank), the floor under DDP's scaling.
    const bool lockstep_only = has(argc, argv, "--lockstep-only");
    if (ranks > 1 && !lockstep_only)
      ddp = std::make_unique<dist::DistributedDataParallel>(
          *model, world, dist::DDPOptions{.bucket_cap_bytes = size_t(bucket_mb * double(1 << 20)), .overlap = overlap});
    optim::SGD optimizer(model->parameters(), {.lr = 0.1, .momentum = 0.9});

    int64_t cursor = 0;
    auto step = [&] {
      const int64_t off = (cursor++ % batches) * B;
      Tensor x = ops::narrow(shard_x, 0, off, B), y = ops::narrow(shard_y, 0, off, B);
      optimizer.zero_grad();
      Tensor loss = nn::cross_entropy(model(x), y);
      loss.backward();
      optimizer.step();
      if (lockstep_only) dist::barrier(world);
      return loss;
    };
    for (int i = 0; i < warmup; ++i) step();
    world->barrier()->wait();
    auto t0 = std::chrono::steady_clock::now();
    Tensor last;
    for (int i = 0; i < steps; ++i) last = step();
    world->barrier()->wait();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Tensor t = from_vector(std::vector<double>{secs});
    world->all_reduce(t, dist::ReduceOp::Max)->wait();
    secs = t.item<double>();
    if (rank == 0) {
      std::printf(
          "{\"impl\": \"braid\", \"model\": \"784-%lld-%lld-10\", \"ranks\": %d, \"threads\": %d, "
          "\"local_batch\": %lld, \"overlap\": %s, \"bucket_mb\": %g, \"buckets\": %zu, \"data\": \"%s\", "
          "\"steps\": %d, \"secs\": %.4f, \"step_ms\": %.3f, \"samples_per_s\": %.1f, \"last_loss\": %.4f}\n",
          (long long)hidden[0], (long long)hidden[1], ranks, threads, (long long)B,
          ranks > 1 && !lockstep_only ? (overlap ? "true" : "false") : "null", bucket_mb,
          ddp ? ddp->bucket_assignment().size() : size_t(0), random_data ? "random" : "fashion-mnist", steps, secs,
          1e3 * secs / steps, double(steps) * double(B) * ranks / secs, last.item<double>());
      std::fflush(stdout);
    }
    ddp.reset();
    dist::finalize();
    return 0;
  } catch (const Error& e) {
    if (dist::world_size() > 1) dist::abort(std::string("braid_ddp_bench: ") + e.what());
    std::fprintf(stderr, "braid_ddp_bench: %s\n", e.what());
    return 1;
  }
}
