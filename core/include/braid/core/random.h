// Seeded random numbers. The default generator starts from seed 0; manual_seed resets it. Uniforms come from
// mt19937_64 (fully specified by the standard) and normals from Box-Muller, so a seed gives the same tensors on
// every platform.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <string>

namespace braid {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  void seed(uint64_t s) { engine_.seed(s); has_spare_ = false; }
  double uniform();  // [0, 1)
  double normal();   // mean 0, std 1
  uint64_t next() { return engine_(); }
  std::mutex& mutex() { return mutex_; }
  // Everything the next draws depend on (the engine and the cached normal), as text; set_state restores it
  // exactly, so a resumed run draws what the uninterrupted one would have (as torch.Generator.get_state).
  std::string state() const;
  void set_state(const std::string& state);

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0;
  std::mutex mutex_;
};

Generator& default_generator();
void manual_seed(uint64_t seed);
// The default generator's state (as torch.get_rng_state / set_rng_state), taken under its mutex.
std::string get_rng_state();
void set_rng_state(const std::string& state);

}  // namespace braid
