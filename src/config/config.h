// The run configuration: one plain struct per section, filled from TOML files and key=value
// overrides through a single schema (config.cpp), so loading, overriding, validating, saving and
// documenting the keys all read the same table.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pelab {

// Any problem with a configuration: the message names the key, the value and what is accepted.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModelConfig {
  std::string pe = "rope";  // positional encoding, one of `pelab pe list`
  int64_t d_model = 256;
  int64_t n_heads = 16;
  int64_t n_layers = 6;
  int64_t d_ff = 512;
  double dropout = 0.1;                // on embeddings, attention output and FFN output
  double attention_dropout = 0.1;      // on the attention weights
  std::string activation = "relu";     // relu | gelu
  bool final_norm = true;              // LayerNorm before pooling
  std::string mask = "padding";        // none (authors) | padding | causal
  std::string kv_source = "residual";  // residual (standard) | embedding (authors)
  std::string pooling = "valid";       // valid (standard) | all (authors: pads included)
  // Sinusoidal absolute encoding (sinusoidal, rope_abs).
  double sinusoidal_base = 10000.0;
  // RoPE family (rope, rope_abs, mla's rotary channel).
  double rope_base = 10000.0;
  int64_t rotary_heads = -1;     // rotate only the first k heads; -1 = all
  double rotary_fraction = 1.0;  // share of each rotated head's dims that rotate
  // Rotary context scaling, for every rotary PE (rope, rope_abs, mla, xpos, prope); may be
  // overridden at evaluation (`pelab eval RUN model.rope_scaling=yarn ...`).
  std::string rope_scaling = "none";  // none | linear | ntk | yarn
  double rope_scaling_factor = 1.0;   // s: the context is stretched s times
  int64_t rope_original_length = 0;   // YaRN's training context; 0 = the model's max_len
  // PE zoo (docs/PE.md): xPos, p-RoPE, KERPLE, FIRE, CoPE.
  double xpos_scale_base = 512.0;      // xPos: decay zeta_t^((i-j)/scale_base)
  double rope_truncate = 0.25;         // p-RoPE: share of the lowest frequencies left unrotated
  std::string kerple_variant = "log";  // KERPLE: log | power
  int64_t fire_hidden = 32;            // FIRE: hidden width of the MLP
  double fire_c = 1.0;                 // FIRE: initial c of psi(x) = log(c x + 1)
  double fire_length = 64.0;           // FIRE: initial threshold L of the normaliser
  int64_t cope_positions = 0;          // CoPE: position embeddings; 0 = the model's max_len
  // Randomized positions (Ruoss et al. 2023): in training, positions are a sorted random sample
  // of [0, max_position); in evaluation 0..L-1.
  bool random_positions = false;
  int64_t max_position = 0;  // > task.seq_len when random_positions is on
  // ALiBi.
  std::string alibi_slopes = "standard";  // standard 2^(-8(h+1)/H) | paper exp(-h/H)
  // T5 bucketed relative bias.
  int64_t t5_num_buckets = 32;
  int64_t t5_max_distance = 128;
  // MLA (DeepSeek-V2 multi-head latent attention with decoupled RoPE).
  int64_t mla_kv_latent = 128;           // d_c: compressed key/value latent
  int64_t mla_q_latent = 128;            // d_c': compressed query latent; 0 = no query compression
  int64_t mla_rope_dim = 16;             // d_R: rotary dims per head (and of the shared rotary key)
  bool mla_shared_rotary_query = false;  // authors: one rotary query shared by all heads
  // Fused CPU attention kernels (src/kernels) where they apply; false = the explicit path.
  bool fused_attention = true;
  // Linear layers through oneDNN (src/kernels/onednn_linear.h); false = LibTorch's at::linear.
  bool onednn_linear = true;
};

struct TaskConfig {
  std::string name = "distance";  // distance (Task 1) | count (Task 2) | a probe (src/tasks/)
  int64_t vocab_size = 1000;      // token ids 0..vocab_size-1; 0 is the pad
  int64_t samples = 20000;
  int64_t seq_len = 128;    // padded length of every sequence
  int64_t seed = 0;         // generator seed
  int64_t split_seed = 42;  // seed of the train/test split
  double train_fraction = 0.7;
  bool fillers_may_be_triggers = false;  // authors' generators: fillers drawn from all tokens
  // Task 1: trigger distance.
  int64_t distance_left_min = 1;
  int64_t distance_left_max = 25;
  int64_t distance_between_min = 1;
  int64_t distance_between_max = 70;
  int64_t distance_right_min = 1;
  int64_t distance_right_max = 25;
  // Task 2: trigger count.
  int64_t count_triggers = 20;  // size of the trigger token set
  int64_t count_min = 0;
  int64_t count_max = 100;
  int64_t count_length = 120;  // tokens per sequence before padding
  // Probe recall: key-value pairs among fillers, then the query marker and a key.
  int64_t recall_keys = 16;    // key tokens (pairs use distinct keys)
  int64_t recall_values = 8;   // value tokens = classes
  int64_t recall_pairs = 4;    // pairs per sequence
  int64_t recall_length = 24;  // tokens per sequence before padding
  // Probe first: the absolute position of the first trigger.
  int64_t first_position_min = 0;
  int64_t first_position_max = 15;  // classes = first_position_max + 1
  int64_t first_triggers_max = 3;   // triggers per sequence: 1 .. first_triggers_max
  int64_t first_length = 24;
  // Probe order: which of two distinct triggers comes first.
  int64_t order_length = 24;
  // Probe offset: the token o places after the unique trigger; o is named by a marker token.
  int64_t offset_min = 1;
  int64_t offset_max = 4;
  int64_t offset_values = 8;  // content tokens = classes
  int64_t offset_length = 24;
};

struct TrainConfig {
  int64_t epochs = 100;
  int64_t batch_size = 512;
  int64_t eval_batch_size = 0;  // 0 = batch_size
  double lr = 1e-4;
  double weight_decay = 1e-5;
  double beta1 = 0.98;
  double beta2 = 0.9;
  double warmup_fraction = 0.06;   // linear warm-up over this share of all steps, then cosine
  double grad_clip = 0.0;          // max global gradient norm; 0 = off
  int64_t seed = 0;                // model init, dropout and batch order
  int64_t threads = 0;             // 0 = all cores
  std::string precision = "fp32";  // fp32 | bf16 (mixed: bf16 products in the linear layers and
                                   // attention, float32 everything else)
  // Seconds between checkpoints inside an epoch (0 = only at epoch ends); operational, like
  // threads: it does not change the numbers.
  double checkpoint_every_s = 300;
  // Per-epoch analysis (analysis/training_probe.h): logit spectra and the top Hessian eigenvalue.
  bool track_spectra = false;
  int64_t track_samples = 32;       // test sequences used
  int64_t hessian_iterations = 10;  // power iterations; 0 = no Hessian
  // Early stopping (train/early_stopping.h): a validation set carved from the train split; stop
  // once validation accuracy has not improved by min_delta for patience epochs (0 = train to
  // train.epochs, which stays the ceiling).
  double validation_fraction = 0.0;
  int64_t patience = 0;
  double min_delta = 0.0;
};

struct Config {
  ModelConfig model;
  TaskConfig task;
  TrainConfig train;
};

// One documented key of the schema.
struct ConfigKeyInfo {
  std::string key;       // "model.d_model"
  std::string accepted;  // "integer in [1, 65536]", "one of: relu, gelu"
  std::string doc;
};

// Reads `file` (if not empty) over the defaults, then applies each "key=value" override,
// then validates. Throws ConfigError naming the key, the value and what is accepted.
Config load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides);
// Parses TOML text over the defaults and validates (used for configs stored in checkpoints).
Config config_from_toml(std::string_view toml_text, const std::string& source_name);
void apply_override(Config& config, std::string_view key_equals_value);
// Cross-key checks (head count divides d_model, task fits seq_len, ...).
void validate(const Config& config);
// The complete resolved configuration as TOML, every key written.
std::string to_toml(const Config& config);
std::vector<ConfigKeyInfo> config_keys();

// Classes the task's labels can take (the classifier's output size); src/tasks/registry.cpp.
int64_t num_classes(const TaskConfig& task);
// Positions per head that rotate under RoPE's rotary_fraction (even).
int64_t rotary_dims(const ModelConfig& model);

}  // namespace pelab
