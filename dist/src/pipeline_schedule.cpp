#include "braid/dist/pipeline_schedule.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <ostream>
#include <sstream>
#include <utility>

#include "braid/core/error.h"

namespace braid::dist {
namespace {

// Longest codes first, so that "SEND_F" is not read as an "S" followed by garbage.
constexpr std::array<std::pair<std::string_view, ActionKind>, 8> kCodes{{
    {"SEND_F", ActionKind::SendActivation},
    {"RECV_F", ActionKind::RecvActivation},
    {"SEND_B", ActionKind::SendGradient},
    {"RECV_B", ActionKind::RecvGradient},
    {"F", ActionKind::Forward},
    {"I", ActionKind::BackwardInput},
    {"W", ActionKind::BackwardWeight},
    {"B", ActionKind::FullBackward},
}};

constexpr std::string_view kGrammar = "<stage><F|I|W|B|SEND_F|RECV_F|SEND_B|RECV_B><microbatch>, e.g. 0F3 or 1SEND_B2";

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Reads the leading decimal digits of `s` into `value`, returning how many characters it used (0 if none).
size_t read_number(std::string_view s, int& value) {
  size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0) return 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + n, value);
  return ec == std::errc() && end == s.data() + n ? n : 0;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == separator) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

}  // namespace

bool is_compute(ActionKind kind) {
  switch (kind) {
    case ActionKind::Forward:
    case ActionKind::BackwardInput:
    case ActionKind::BackwardWeight:
    case ActionKind::FullBackward:
      return true;
    case ActionKind::SendActivation:
    case ActionKind::RecvActivation:
    case ActionKind::SendGradient:
    case ActionKind::RecvGradient:
      return false;
  }
  return false;
}

std::string to_string(ActionKind kind) {
  for (const auto& [code, k] : kCodes)
    if (k == kind) return std::string(code);
  BRAID_FAIL("to_string(ActionKind): unknown kind ", static_cast<int>(kind));
}

std::string to_string(const Action& action) {
  return std::to_string(action.stage) + to_string(action.kind) + std::to_string(action.microbatch);
}

std::ostream& operator<<(std::ostream& os, const Action& action) { return os << to_string(action); }

Action parse_action(std::string_view text) {
  const std::string_view s = trim(text);
  Action action;
  const size_t stage_digits = read_number(s, action.stage);
  BRAID_CHECK(stage_digits > 0, "parse_action: '", text, "' does not start with a stage number (expected ", kGrammar,
              ")");
  const std::string_view rest = s.substr(stage_digits);
  for (const auto& [code, kind] : kCodes) {
    if (!rest.starts_with(code)) continue;
    const std::string_view number = rest.substr(code.size());
    BRAID_CHECK(!number.empty() && read_number(number, action.microbatch) == number.size(), "parse_action: '", text,
                "' has no micro-batch number after ", code, " (expected ", kGrammar, ")");
    action.kind = kind;
    return action;
  }
  BRAID_FAIL("parse_action: '", text, "' has no action code after the stage (expected ", kGrammar, ")");
}

std::string to_csv(const Schedule& schedule) {
  std::string out;
  for (const auto& rank_actions : schedule.actions) {
    for (size_t i = 0; i < rank_actions.size(); ++i) {
      if (i > 0) out += ',';
      out += to_string(rank_actions[i]);
    }
    out += '\n';
  }
  return out;
}

Schedule from_csv(std::string_view text) {
  std::vector<std::string_view> lines = split(text, '\n');
  if (!lines.empty() && trim(lines.back()).empty()) lines.pop_back();
  BRAID_CHECK(!lines.empty(), "from_csv: no lines (expected one line of actions per rank)");
  Schedule schedule;
  schedule.num_ranks = static_cast<int>(lines.size());
  schedule.actions.resize(lines.size());
  int max_stage = 0, max_microbatch = 0;
  for (size_t row = 0; row < lines.size(); ++row) {
    const std::vector<std::string_view> cells = split(lines[row], ',');
    for (size_t column = 0; column < cells.size(); ++column) {
      if (trim(cells[column]).empty()) continue;
      try {
        const Action action = parse_action(cells[column]);
        max_stage = std::max(max_stage, action.stage);
        max_microbatch = std::max(max_microbatch, action.microbatch);
        schedule.actions[row].push_back(action);
      } catch (const Error& e) {
        BRAID_FAIL("from_csv: line ", row + 1, " (rank ", row, "), column ", column + 1, ", cell '", cells[column],
                   "': ", e.what());
      }
    }
  }
  schedule.stages_per_rank = (max_stage + schedule.num_ranks) / schedule.num_ranks;
  schedule.num_microbatches = max_microbatch + 1;
  return schedule;
}

void write_csv(const Schedule& schedule, const std::string& path) {
  std::ofstream file(path, std::ios::binary);
  BRAID_CHECK(file, "write_csv: cannot open '", path, "' for writing");
  file << to_csv(schedule);
  file.close();
  BRAID_CHECK(file, "write_csv: writing '", path, "' failed");
}

Schedule read_csv(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  BRAID_CHECK(file, "read_csv: cannot open '", path, "'");
  std::ostringstream text;
  text << file.rdbuf();
  try {
    return from_csv(text.str());
  } catch (const Error& e) {
    BRAID_FAIL("read_csv: '", path, "': ", e.what());
  }
}

std::string to_string(const Schedule& schedule) {
  std::string out;
  for (size_t rank = 0; rank < schedule.actions.size(); ++rank) {
    out += "rank ";
    out += std::to_string(rank);
    out += ':';
    for (const Action& action : schedule.actions[rank]) {
      out += ' ';
      out += to_string(action);
    }
    out += '\n';
  }
  return out;
}

}  // namespace braid::dist
