// Checks a checkpoint's TorchScript type records before LibTorch parses them.
//
// A LibTorch archive (torch::serialize::OutputArchive) stores, besides its tensors and pickles,
// one small Python-syntax class per nested archive under code/ (code/__torch__.py, code/__torch__/
// ___torch_mangle_N.py) that torch::jit::load compiles. LibTorch 1.13's type parser recurses
// without bound on some damaged class records and crashes the process (found by the checkpoint
// fuzzer; tests/fuzz/regressions/checkpoint-libtorch-segv.pt). pelab only ever writes classes of
// one fixed shape, so everything else is refused here, with a message, before LibTorch sees it:
//   class Module(Module):
//     __parameters__ = ["name", ... ]        __buffers__ = [ ... ]
//     name : TYPE                            __annotations__ = []
//     __annotations__["name"] = TYPE
// where TYPE is Tensor, int, float, bool, str, Tuple/List/Optional/Dict of those (nested at most
// kMaxTypeDepth deep), or __torch__.___torch_mangle_N.Module, naming another record of the file;
// those references must not form a cycle.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <string>

namespace pelab {

inline constexpr int kMaxTypeDepth = 8;

// The code/ records of an archive: record name ("code/__torch__.py") -> its text. Throws
// CheckpointError (naming `file` and the record) when a record is not of the shape above or the
// classes refer to each other in a cycle or to a class the file does not hold.
void check_type_records(const std::filesystem::path& file,
                        const std::map<std::string, std::string>& code_records);

// Reads the code/ records of the archive at `file` and checks them (above). Throws
// CheckpointError when the file is not a readable zip archive.
void check_checkpoint_records(const std::filesystem::path& file);

}  // namespace pelab
