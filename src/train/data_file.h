// Sequences as files, for Python and for `pelab predict` (docs/CHECKPOINTS.md, "Data files").
//
// Two formats, chosen by the file's extension:
//   .safetensors  tensors tokens I64 [N, L], lengths I64 [N], labels I64 [N] (optional) and
//                 split U8 [N] (optional; 0 = train, 1 = test); metadata format = pelab-data,
//                 split, config_toml (the configuration that generated the rows)
//   .jsonl        one JSON object per line: {"tokens": [L ints], "length": n, "label": y,
//                 "split": "train" | "test"}; length defaults to the token count, label and
//                 split may be left out
// tokens are the padded rows exactly as the model sees them (right-padded with 0 to L).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>

#include "tasks/task.h"

namespace pelab {

// A data file that cannot be read, written or used: the message names the file, the row and
// what is accepted.
class DataFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class DataFormat { kSafetensors, kJsonLines };

// By extension: .safetensors or .jsonl; anything else is a DataFileError naming both.
DataFormat data_format_for(const std::filesystem::path& file);

struct DataFile {
  Dataset data;         // labels undefined when the file has none
  torch::Tensor split;  // [N] uint8, 0 = train, 1 = test; undefined when the file has none
};

// The rows of `split_name` (train | test | all) of a split; with "all", `split` marks each row.
DataFile data_of_split(const DatasetSplit& split, const std::string& split_name);

// Writes atomically (temporary file + rename) in the format of the extension. metadata goes into
// the safetensors header (the JSON-lines format has no place for it). Refuses a folder that does
// not exist before writing anything.
void write_data_file(const std::filesystem::path& file, const DataFile& rows,
                     const std::map<std::string, std::string>& metadata);

// Reads and checks the structure: integer dtypes, consistent shapes, no unknown tensors or keys,
// every row the same token count. Values are checked against a model by check_rows_for_model.
DataFile read_data_file(const std::filesystem::path& file);

// Checks that a model with `vocab_size` tokens, `max_len` positions and `num_classes` classes can
// take the rows: token ids in [0, vocab_size), 1 <= length <= L, L <= max_len, labels in
// [0, num_classes). Throws DataFileError naming the first bad row.
void check_rows_for_model(const DataFile& rows, const std::filesystem::path& file,
                          int64_t vocab_size, int64_t max_len, int64_t num_classes);

}  // namespace pelab
