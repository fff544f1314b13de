#include "braid/core/random.h"

#include <bit>
#include <cmath>
#include <sstream>

#include "braid/core/error.h"

namespace braid {

double Generator::uniform() {
  // 53 random bits -> [0, 1)
  return double(engine_() >> 11) * (1.0 / 9007199254740992.0);
}

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * M_PI * u2);
  has_spare_ = true;
  return r * std::cos(2.0 * M_PI * u2);
}

namespace {
constexpr const char* state_tag = "mt19937_64";
}  // namespace

std::string Generator::state() const {
  std::ostringstream out;
  out << state_tag << ' ' << int(has_spare_) << ' ' << std::bit_cast<uint64_t>(spare_) << ' ' << engine_;
  return out.str();
}

void Generator::set_state(const std::string& state) {
  std::istringstream in(state);
  std::string tag;
  int spare_flag = -1;
  uint64_t spare_bits = 0;
  std::mt19937_64 engine;
  in >> tag >> spare_flag >> spare_bits >> engine;
  BRAID_CHECK(!in.fail() && tag == state_tag && (spare_flag == 0 || spare_flag == 1) && (in >> std::ws).eof(),
              "Generator::set_state: expected a state from Generator::state() (\"", state_tag,
              " <spare flag> <spare bits> <engine>\"), got ", state.size(), " characters starting '",
              state.substr(0, 40), "'");
  engine_ = engine;
  has_spare_ = spare_flag == 1;
  spare_ = std::bit_cast<double>(spare_bits);
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(default_generator().mutex());
  default_generator().seed(seed);
}

std::string get_rng_state() {
  std::lock_guard<std::mutex> lock(default_generator().mutex());
  return default_generator().state();
}

void set_rng_state(const std::string& state) {
  std::lock_guard<std::mutex> lock(default_generator().mutex());
  default_generator().set_state(state);
}

}  // namespace braid
