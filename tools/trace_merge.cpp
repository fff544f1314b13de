// braid_trace_merge: merges the per-rank Chrome-trace files that BRAID_TRACE / dist::start_trace write into one
// file on rank 0's clock, which Perfetto and chrome://tracing open as one timeline with a process "rank N" per rank.
//
//   braid_trace_merge -o merged.json trace.rank0.json trace.rank1.json ...
//   braid_trace_merge -o merged.json trace.json        (the path given to BRAID_TRACE: reads trace.rank0.json, ...)
//
// Each input's "otherData" names its rank and its clock offset to rank 0 (clock_offset_us), which is added to the
// ts of every event of that rank. Metadata events are kept, except the process names, which become "rank N".
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using nlohmann::json;

struct Fail : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// As braid::dist::trace_path: "trace.json" -> "trace.rank0.json".
std::string rank_file(const std::string& path, int rank) {
  const std::string ext = ".json", tag = ".rank" + std::to_string(rank);
  if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0)
    return path.substr(0, path.size() - ext.size()) + tag + ext;
  return path + tag + ext;
}

// An input that does not exist but whose rank files do stands for all of them.
std::vector<std::string> expand(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    if (std::filesystem::exists(in) || !std::filesystem::exists(rank_file(in, 0))) {
      files.push_back(in);
      continue;
    }
    for (int r = 0; std::filesystem::exists(rank_file(in, r)); ++r) files.push_back(rank_file(in, r));
  }
  return files;
}

json read(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw Fail("cannot open '" + file + "'");
  json doc = json::parse(in, nullptr, false);
  if (doc.is_discarded()) throw Fail("'" + file + "' is not valid JSON");
  if (!doc.is_object() || !doc.contains("traceEvents") || !doc["traceEvents"].is_array())
    throw Fail("'" + file + "' has no \"traceEvents\" array (not a Chrome trace file)");
  if (!doc.contains("otherData") || !doc["otherData"].contains("rank") || !doc["otherData"]["rank"].is_number_integer())
    throw Fail("'" + file + "' has no otherData.rank (not written by braid::dist::start_trace)");
  return doc;
}

json metadata(const char* what, int pid, const char* key, const json& value) {
  return {{"name", what}, {"ph", "M"}, {"pid", pid}, {"tid", 0}, {"args", {{key, value}}}};
}

json merge(const std::vector<std::string>& files) {
  json events = json::array(), offsets = json::object();
  std::map<int, std::string> seen;
  for (const std::string& file : files) {
    json doc = read(file);
    const int rank = doc["otherData"]["rank"].get<int>();
    if (seen.count(rank)) throw Fail("'" + file + "' and '" + seen[rank] + "' are both rank " + std::to_string(rank));
    seen[rank] = file;
    const double offset = doc["otherData"].value("clock_offset_us", 0.0);
    offsets[std::to_string(rank)] = offset;
    events.push_back(metadata("process_name", rank, "name", "rank " + std::to_string(rank)));
    events.push_back(metadata("process_sort_index", rank, "sort_index", rank));
    for (json& e : doc["traceEvents"]) {
      if (e.value("ph", "") == "M" && e.value("name", "") == "process_name") continue;
      e["pid"] = rank;
      if (e.contains("ts") && e["ts"].is_number()) e["ts"] = e["ts"].get<double>() + offset;
      events.push_back(std::move(e));
    }
  }
  return {{"traceEvents", std::move(events)},
          {"displayTimeUnit", "ms"},
          {"otherData", {{"clock", "rank 0's steady_clock, microseconds"}, {"clock_offsets_us", offsets}}}};
}

int usage() {
  std::fprintf(stderr,
               "usage: braid_trace_merge -o MERGED.json TRACE.rank0.json [TRACE.rank1.json ...]\n"
               "       braid_trace_merge -o MERGED.json TRACE.json   (reads TRACE.rank0.json, TRACE.rank1.json, ...)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string output;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") return usage(), 0;
    if (arg == "-o" || arg == "--output") {
      if (i + 1 == argc) return usage();
      output = argv[++i];
    } else {
      inputs.push_back(arg);
    }
  }
  if (output.empty() || inputs.empty()) return usage();
  try {
    json merged = merge(expand(inputs));
    std::ofstream out(output, std::ios::trunc);
    out << merged.dump() << '\n';
    out.close();
    if (!out) throw Fail("cannot write '" + output + "'");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "braid_trace_merge: %s\n", e.what());
    return 1;
  }
  return 0;
}
