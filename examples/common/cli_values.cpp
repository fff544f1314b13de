#include "cli_values.h"

#include <cmath>
#include <exception>
#include <optional>

namespace braid::examples {

namespace {

// `convert(text, &used)` (std::stoll and its kin) when it reads the whole text, else nothing.
template <class Convert>
auto whole(const std::string& text, Convert convert) -> std::optional<decltype(convert(text, nullptr))> {
  size_t used = 0;
  try {
    auto value = convert(text, &used);
    if (used > 0 && used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::string text_of(const cxxopts::ParseResult& args, const std::string& name) { return args[name].as<std::string>(); }

void usage_check(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

// The flag of argv that was given `value` ("--name value", "--name=value" or "-n value"), or "" when none was.
std::string flag_given(const std::string& value, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') continue;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos && arg.substr(eq + 1) == value) return arg.substr(0, eq);
    if (eq == std::string::npos && i + 1 < argc && argv[i + 1] == value) return arg;
  }
  return "";
}

}  // namespace

cxxopts::ParseResult parse_args(cxxopts::Options& cli, int argc, char** argv) {
  try {
    return cli.parse(argc, argv);
  } catch (const cxxopts::exceptions::incorrect_argument_type& e) {
    const std::string what = e.what();
    for (int i = 1; i < argc; ++i) {
      // The message quotes the value; each word of argv (or what follows its '=') is a candidate.
      std::string word = argv[i];
      if (word.rfind("-", 0) == 0 && word.find('=') != std::string::npos) word = word.substr(word.find('=') + 1);
      const std::string flag = flag_given(word, argc, argv);
      if (flag.empty() || what != "Argument " + cxxopts::LQUOTE + word + cxxopts::RQUOTE + " failed to parse") continue;
      throw UsageError(flag + ": '" + word + "' is not a value of this flag's type (a number out of range, or not a " +
                       "number)");
    }
    throw;
  }
}

std::shared_ptr<cxxopts::Value> text_value(const char* default_value) {
  return cxxopts::value<std::string>()->default_value(default_value);
}

int64_t int_flag(const cxxopts::ParseResult& args, const std::string& name, int64_t lo, int64_t hi) {
  const std::string text = text_of(args, name);
  const auto value = whole(text, [](const std::string& t, size_t* used) { return std::stoll(t, used); });
  usage_check(value.has_value(), "--" + name + ": expected an integer, got '" + text + "'");
  const std::string range =
      hi == std::numeric_limits<int64_t>::max() ? " or more" : " to " + std::to_string(hi);
  usage_check(*value >= lo && *value <= hi,
              "--" + name + ": expected " + std::to_string(lo) + range + ", got " + std::to_string(*value));
  return *value;
}

double double_flag(const cxxopts::ParseResult& args, const std::string& name, double lo, double hi, bool lo_open) {
  const std::string text = text_of(args, name);
  const auto value = whole(text, [](const std::string& t, size_t* used) { return std::stod(t, used); });
  usage_check(value.has_value() && std::isfinite(*value), "--" + name + ": expected a number, got '" + text + "'");
  const double v = *value;
  usage_check((lo_open ? v > lo : v >= lo) && v <= hi,
              detail::concat("--", name, ": expected a value in ", lo_open ? "(" : "[", lo, ", ", hi, "], got ", v));
  return v;
}

double positive_flag(const cxxopts::ParseResult& args, const std::string& name) {
  const std::string text = text_of(args, name);
  const auto value = whole(text, [](const std::string& t, size_t* used) { return std::stod(t, used); });
  usage_check(value.has_value() && *value > 0 && std::isfinite(*value),
              "--" + name + ": expected a positive number, got '" + text + "'");
  return *value;
}

uint64_t seed_flag(const cxxopts::ParseResult& args, const std::string& name) {
  const std::string text = text_of(args, name);
  // std::stoull accepts "-1" as 2^64 - 1: a sign is refused before it.
  const auto value = text.empty() || text[0] == '-'
                         ? std::nullopt
                         : whole(text, [](const std::string& t, size_t* used) { return std::stoull(t, used); });
  usage_check(value.has_value(), "--" + name + ": expected an integer from 0 to 2^64 - 1, got '" + text + "'");
  return *value;
}

}  // namespace braid::examples
