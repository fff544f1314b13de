#include "braid/data/dataloader.h"

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "braid/core/creation.h"
#include "braid/core/random.h"

namespace braid::data {

namespace {

// Distinct (seed, epoch) pairs give distinct generator seeds (the map is a bijection of seed * odd + epoch), and
// the finalizer spreads neighbouring epochs over unrelated mt19937_64 states.
uint64_t epoch_seed(uint64_t seed, uint64_t epoch) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + epoch;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, uint64_t epoch) {
  std::vector<int64_t> order(size_t(std::max<int64_t>(n, 0)));
  if (shuffle) {
    Generator gen(epoch_seed(seed, epoch));
    Tensor perm = randperm(int64_t(order.size()), &gen);
    const int64_t* p = perm.data<int64_t>();
    order.assign(p, p + order.size());
  } else {
    std::iota(order.begin(), order.end(), int64_t(0));
  }
  return order;
}

// One pass over the data. The consumer owns `current` and `delivered`; with workers, the map of built batches
// and the build counter are shared under `mutex`. Workers may run at most `capacity` batches ahead of the
// consumer, which bounds memory however slow the training loop is.
struct DataLoader::Pass {
  struct Built {
    Example example;
    std::exception_ptr error;
  };

  std::shared_ptr<Dataset> dataset;
  uint64_t epoch = 0;
  std::vector<int64_t> order;
  int64_t batch_size = 1;
  int64_t num_batches = 0;

  Example current;
  int64_t delivered = 0;
  const char* ended = nullptr;  // why the pass can no longer advance, once it cannot

  std::mutex mutex;
  std::condition_variable built_cv;  // a batch was built
  std::condition_variable space_cv;  // the consumer took a batch, or the pass is stopping
  std::map<int64_t, Built> built;
  int64_t next_to_build = 0;
  int64_t capacity = 0;
  bool stop = false;
  std::vector<std::thread> workers;

  ~Pass() { join_workers(); }

  std::vector<int64_t> batch_indices(int64_t b) const {
    int64_t begin = b * batch_size;
    int64_t end = std::min<int64_t>(begin + batch_size, int64_t(order.size()));
    return std::vector<int64_t>(order.begin() + begin, order.begin() + end);
  }

  void start_workers(int num_workers, int prefetch) {
    capacity = int64_t(prefetch) * num_workers;
    workers.reserve(num_workers);
    try {
      for (int w = 0; w < num_workers; ++w) workers.emplace_back([this] { work(); });
    } catch (...) {
      join_workers();
      throw;
    }
  }

  void work() {
#ifdef _OPENMP
    // The training loop owns the cores; a worker running full OpenMP teams of its own would oversubscribe them
    // (PyTorch's workers use one thread each for the same reason). This setting is local to this thread.
    omp_set_num_threads(1);
#endif
    for (;;) {
      int64_t b;
      {
        std::unique_lock<std::mutex> lock(mutex);
        space_cv.wait(lock,
                      [&] { return stop || next_to_build >= num_batches || next_to_build < delivered + capacity; });
        if (stop || next_to_build >= num_batches) return;
        b = next_to_build++;
      }
      Built result;
      try {
        result.example = dataset->get_batch(batch_indices(b));
      } catch (...) {
        result.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex);
        built.emplace(b, std::move(result));
      }
      built_cv.notify_one();
    }
  }

  void join_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    space_cv.notify_all();
    for (auto& t : workers)
      if (t.joinable()) t.join();
    workers.clear();
  }

  void end(const char* why) {
    if (!ended) ended = why;
    join_workers();
  }

  // Makes the next batch current; false once every batch was delivered.
  bool advance() {
    BRAID_CHECK(!ended, "DataLoader: cannot advance an iterator whose pass ", ended);
    if (delivered >= num_batches) {
      end("already reached its end");
      return false;
    }
    if (workers.empty()) {
      try {
        current = dataset->get_batch(batch_indices(delivered));
      } catch (...) {
        end("stopped at an exception thrown while building a batch");
        throw;
      }
      ++delivered;
      return true;
    }
    Built next;
    {
      std::unique_lock<std::mutex> lock(mutex);
      built_cv.wait(lock, [&] { return built.count(delivered) > 0; });
      auto it = built.find(delivered);
      next = std::move(it->second);
      built.erase(it);
      ++delivered;
    }
    space_cv.notify_all();
    if (next.error) {
      end("stopped at an exception thrown while building a batch");
      std::rethrow_exception(next.error);
    }
    current = std::move(next.example);
    return true;
  }
};

Example& DataLoader::Iterator::operator*() const {
  BRAID_CHECK(pass_, "DataLoader::Iterator: dereferencing the end iterator");
  return pass_->current;
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  BRAID_CHECK(pass_, "DataLoader::Iterator: incrementing the end iterator");
  if (!pass_->advance()) pass_.reset();
  return *this;
}

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  BRAID_CHECK(dataset_, "DataLoader: the dataset is null");
  BRAID_CHECK(options_.batch_size >= 1, "DataLoader: batch_size must be at least 1, got ", options_.batch_size);
  BRAID_CHECK(options_.num_workers >= 0, "DataLoader: num_workers must be non-negative, got ", options_.num_workers);
  BRAID_CHECK(options_.num_workers == 0 || options_.prefetch >= 1,
              "DataLoader: prefetch must be at least 1 with workers, got ", options_.prefetch);
  BRAID_CHECK(options_.num_shards >= 1, "DataLoader: num_shards must be at least 1, got ", options_.num_shards);
  BRAID_CHECK(options_.shard_index >= 0 && options_.shard_index < options_.num_shards, "DataLoader: shard_index ",
              options_.shard_index, " is out of range [0, ", options_.num_shards, ")");
}

DataLoader::~DataLoader() {
  // An iterator may outlive the loader; it then holds a pass that can no longer advance, with no threads left.
  if (pass_) pass_->end("belongs to a DataLoader that was destroyed");
}

std::vector<int64_t> DataLoader::indices(uint64_t epoch) const {
  int64_t n = dataset_->size();
  BRAID_CHECK(n >= 0, "DataLoader: the dataset reports a negative size ", n);
  std::vector<int64_t> order = epoch_order(n, options_.shuffle, options_.seed, epoch);
  int64_t shards = options_.num_shards;
  int64_t per_shard = ceil_div(n, shards);
  std::vector<int64_t> shard;
  shard.reserve(per_shard);
  // Position p of the wrapped order is order[p % n], so short data sets still fill every shard.
  for (int64_t j = 0; j < per_shard; ++j) shard.push_back(order[(options_.shard_index + j * shards) % n]);
  return shard;
}

int64_t DataLoader::size() const {
  int64_t n = dataset_->size();
  int64_t per_shard = ceil_div(std::max<int64_t>(n, 0), options_.num_shards);
  return options_.drop_last ? per_shard / options_.batch_size : ceil_div(per_shard, options_.batch_size);
}

DataLoaderPosition DataLoader::position() const {
  if (!pass_ || position_set_) return {next_epoch_, next_first_batch_};
  if (pass_->delivered >= pass_->num_batches) return {pass_->epoch + 1, 0};
  return {pass_->epoch, pass_->delivered};
}

void DataLoader::set_position(DataLoaderPosition position) {
  const int64_t batches = size();
  BRAID_CHECK(position.batch >= 0 && position.batch <= batches, "DataLoader::set_position: batch ", position.batch,
              " of epoch ", position.epoch, " is out of range [0, ", batches, "] (batches per pass of this shard)");
  const bool done = batches > 0 && position.batch == batches;
  next_epoch_ = done ? position.epoch + 1 : position.epoch;
  next_first_batch_ = done ? 0 : position.batch;
  position_set_ = true;
}

DataLoader::Iterator DataLoader::begin() {
  if (pass_) {
    pass_->end("was replaced by a new pass (begin() was called again)");
    pass_.reset();
  }
  auto pass = std::make_shared<Pass>();
  pass->dataset = dataset_;
  pass->epoch = next_epoch_;
  pass->order = indices(next_epoch_++);
  pass->batch_size = options_.batch_size;
  int64_t n = int64_t(pass->order.size());
  pass->num_batches = options_.drop_last ? n / options_.batch_size : ceil_div(n, options_.batch_size);
  // Batches before the resumed position are never built: the workers start where the consumer does.
  pass->delivered = pass->next_to_build = std::min(next_first_batch_, pass->num_batches);
  next_first_batch_ = 0;
  position_set_ = false;
  if (options_.num_workers > 0 && pass->num_batches > 0) pass->start_workers(options_.num_workers, options_.prefetch);
  pass_ = pass;
  Iterator it(std::move(pass));
  ++it;
  return it;
}

}  // namespace braid::data
