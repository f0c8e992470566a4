// Checks a checkpoint's pickles before LibTorch's unpickler reads them.
//
// LibTorch 1.13 trusts the numbers inside an archive's pickles (data.pkl, constants.pkl and the
// code/*.debug_pkl records): a memo index becomes a vector size (one mutated LONG_BINPUT asked for
// 25 GB: tests/fuzz/regressions/checkpoint-libtorch-unpickler-25gb.pt), a storage's element count
// becomes its byte size whatever the record holds, and a tensor's sizes and strides are set on a
// storage without a bounds check. So pelab walks every pickle first, opcode by opcode, with a
// small model of the unpickler's stack, and refuses (CheckpointError, before any allocation of
// the claimed size):
//   - an opcode pelab's checkpoints never hold, or one cut off by the end of the record;
//   - a string or bytes length beyond the record's end;
//   - a memo index that skips ahead (the pickler numbers them 0, 1, 2, ...) or reads an unset one;
//   - a storage whose dtype is unknown, whose data record is missing, or whose element count
//     times element size is more than its data record holds;
//   - a tensor (torch._utils._rebuild_tensor_v2) whose offset, sizes and strides reach past its
//     storage.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

namespace pelab {

// Checks one pickle record. `record` names it in messages ("data.pkl"); `storage_prefix` is the
// folder its storages live in ("data/" for data.pkl, "constants/" for constants.pkl);
// `record_sizes` maps every record name of the archive to its size in bytes. Throws
// CheckpointError naming `file`, the record and the byte offset of the problem.
void check_pickle(const std::filesystem::path& file, const std::string& record,
                  std::string_view bytes, const std::string& storage_prefix,
                  const std::map<std::string, std::size_t>& record_sizes);

}  // namespace pelab
