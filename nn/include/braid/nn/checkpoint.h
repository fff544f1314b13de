// Checkpoints as .safetensors files (https://github.com/huggingface/safetensors), so PyTorch and Hugging Face
// tools read what Braid writes and the other way round: an 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets"}, ..., "__metadata__": {str: str}}) padded with spaces to a multiple
// of 8, then the tensors' bytes, little-endian, back to back. Braid reads and writes F32, F64 and I64.
// save writes a temporary file beside `path` and renames it into place, so a crash never leaves a half-written
// checkpoint under the real name. That temporary is `<path>.tmp.<pid>`; save and check_can_save first remove those
// of the same path whose process no longer exists (a saver killed mid-write), and a failed save removes its own.
// load checks every size, offset and dtype against the file before trusting it and throws braid::Error naming the
// file and the problem.
//
// A training state (save_training_state) is one such file holding the model, the optimizer and the LR schedule,
// readable by any safetensors reader (safetensors.safe_open(...).metadata() gives the strings):
//   tensors       model.<name>                    each entry of the model's state_dict()
//                 optimizer.state.<i>.<name>      parameter i's optimizer state: momentum_buffer (SGD); exp_avg,
//                                                 exp_avg_sq (Adam, AdamW) as the parameter; step (I64, 0-d)
//   __metadata__  braid.training_state            "1", the version of this layout
//                 optimizer                       "SGD", "Adam" or "AdamW"
//                 optimizer.param_groups          JSON, as torch.optim's, one object per parameter group:
//                                                 [{"lr": 0.05, "momentum": 0.9, ..., "params": [0, 1, ...]}, ...],
//                                                 indices counted over all groups, booleans as 0 or 1
//                 scheduler, scheduler.state      (with a schedule) "StepLR", "CosineAnnealingLR" or
//                                                 "WarmupCosineLR", and JSON {"last_epoch": 938, "base_lrs": [0.05]
//                                                 (one per group), "T_max": 938, ...}
//                 extra.<key>                     the caller's own strings (epoch, seed, ...)
//                 braid.checksum                  "crc32:<8 hex digits>" over every tensor (checksum() below) and
//                                                 every other metadata entry; load_training_state refuses a file
//                                                 whose contents do not match it (a corrupt checkpoint)
// Loading checks the whole file against the model, optimizer and schedule before it changes any of them.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "braid/nn/module.h"

namespace braid::optim {
class Optimizer;
class LRScheduler;
}  // namespace braid::optim

namespace braid::nn {

using Metadata = std::map<std::string, std::string>;

// Tensors are saved contiguous and on the CPU, whatever their layout and device.
void save(const StateDict& tensors, const std::string& path, const Metadata& metadata = {});
StateDict load(const std::string& path);
// The tensors and, into `metadata`, the file's "__metadata__", from one read of the file.
StateDict load(const std::string& path, Metadata& metadata);
// The file's "__metadata__" (empty when it has none); the header is validated as by load.
Metadata load_metadata(const std::string& path);
// Throws braid::Error naming `path` now if save(path) could not create its temporary file (a missing or
// read-only folder), so a program can refuse a bad checkpoint path before it trains.
void check_can_save(const std::string& path);

// zlib's CRC-32 of the tensors' names, dtypes, shapes and bytes, in name order, continuing from `crc`: equal for
// bitwise-equal tensors, so two runs can compare their final parameters by one printed number.
uint32_t checksum(const StateDict& tensors, uint32_t crc = 0);

void save(const Module& module, const std::string& path, const Metadata& metadata = {});
// Loads into the module's parameters and buffers; with strict, missing or unexpected names are errors. Shapes
// and dtypes must match either way.
void load(Module& module, const std::string& path, bool strict = true);

// The whole training state in one file (layout above). `extra` keys must be non-empty; their values come back
// from load_training_state. The optimizer's and schedule's kinds must match the file's, a schedule is needed
// exactly when the file has one, and every tensor must fit: otherwise braid::Error names the file and the misfit,
// and nothing has changed. Loaded optimizer state lives on the parameters' devices.
void save_training_state(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                         const optim::LRScheduler& scheduler, const Metadata& extra = {});
void save_training_state(const std::string& path, const Module& model, const optim::Optimizer& optimizer,
                         const Metadata& extra = {});
Metadata load_training_state(const std::string& path, Module& model, optim::Optimizer& optimizer,
                             optim::LRScheduler& scheduler);
Metadata load_training_state(const std::string& path, Module& model, optim::Optimizer& optimizer);

}  // namespace braid::nn
