// The examples' command-line values: each flag is declared as text and converted here, so that a malformed or
// out-of-range number is reported with the flag's name, the text given and what was expected.
#pragma once

#include <braid/braid.h>

#include <cstdint>
#include <cxxopts.hpp>
#include <limits>
#include <memory>
#include <string>

namespace braid::examples {

// The most CPU threads a --threads flag may ask for: OpenMP starts every thread asked for, and far more than any
// host has cores ends the process inside libgomp instead of with a message.
constexpr int64_t kMaxThreads = 4096;

// A bad command line (a value, or flags that do not fit together): the same on every rank of a job, so each rank
// can report it and leave without aborting the others.
class UsageError : public Error {
 public:
  using Error::Error;
};

// cli.parse(argc, argv), where a value that a typed flag (cxxopts::value<int>() and kin) cannot hold, whose cxxopts
// message names only the value, is reported naming the flag that was given it ("--epochs: '4294967297' is not a
// value of this flag's type (a number out of range, or not a number)").
cxxopts::ParseResult parse_args(cxxopts::Options& cli, int argc, char** argv);

// A flag's declaration for cxxopts: its value is text, `default_value` when absent.
std::shared_ptr<cxxopts::Value> text_value(const char* default_value);

// The integer given to --name, in [lo, hi] ("--name: expected an integer, got 'x'", "--name: expected 1 or more,
// got 0", "--name: expected 0 to 4096, got 5000").
int64_t int_flag(const cxxopts::ParseResult& args, const std::string& name, int64_t lo,
                 int64_t hi = std::numeric_limits<int64_t>::max());

// The finite number given to --name, in [lo, hi], or (lo, hi] when lo_open.
double double_flag(const cxxopts::ParseResult& args, const std::string& name, double lo, double hi,
                   bool lo_open = false);

// The finite number above 0 given to --name ("--name: expected a positive number, got '0'").
double positive_flag(const cxxopts::ParseResult& args, const std::string& name);

// A seed: any integer from 0 to 2^64 - 1.
uint64_t seed_flag(const cxxopts::ParseResult& args, const std::string& name = "seed");

}  // namespace braid::examples
