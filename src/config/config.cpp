// The configuration schema: one table of keys, each bound to a struct member with its accepted
// values. TOML files, command-line overrides, saving and `pelab config keys` all go through it.
#include "config/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "config/suggest.h"

namespace pelab {

std::vector<std::string> pe_names();    // src/pe/registry.cpp; declared here to keep torch out
std::vector<std::string> task_names();  // src/tasks/registry.cpp, likewise

namespace {

// A key of the schema: parse() reads a textual value into the config, format() writes it back
// as a TOML value. `accepted` is shown in every error about this key.
struct Field {
  std::string key;
  std::string accepted;
  std::string doc;
  std::function<void(Config&, const std::string&)> parse;
  std::function<std::string(const Config&)> format;
};

[[noreturn]] void bad_value(const std::string& key, const std::string& value,
                            const std::string& accepted) {
  throw ConfigError(fmt::format("{}: bad value '{}'; accepted: {}", key, value, accepted));
}

template <typename Section>
Field int_field(std::string key, Section Config::*section, int64_t Section::*member, int64_t lo,
                int64_t hi, std::string doc) {
  std::string accepted = fmt::format("an integer in [{}, {}]", lo, hi);
  return Field{key, accepted, std::move(doc),
               [=](Config& c, const std::string& text) {
                 int64_t value = 0;
                 std::size_t used = 0;
                 try {
                   value = std::stoll(text, &used);
                 } catch (const std::exception&) {
                   bad_value(key, text, accepted);
                 }
                 if (used != text.size() || value < lo || value > hi)
                   bad_value(key, text, accepted);
                 (c.*section).*member = value;
               },
               [=](const Config& c) { return std::to_string((c.*section).*member); }};
}

template <typename Section>
Field real_field(std::string key, Section Config::*section, double Section::*member, double lo,
                 double hi, std::string doc) {
  std::string accepted = fmt::format("a number in [{}, {}]", lo, hi);
  return Field{key, accepted, std::move(doc),
               [=](Config& c, const std::string& text) {
                 double value = 0;
                 std::size_t used = 0;
                 try {
                   value = std::stod(text, &used);
                 } catch (const std::exception&) {
                   bad_value(key, text, accepted);
                 }
                 if (used != text.size() || !std::isfinite(value) || value < lo || value > hi)
                   bad_value(key, text, accepted);
                 (c.*section).*member = value;
               },
               [=](const Config& c) {
                 // Round-trips exactly and always reads back as a TOML float.
                 std::string s = fmt::format("{}", (c.*section).*member);
                 if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
                 return s;
               }};
}

template <typename Section>
Field bool_field(std::string key, Section Config::*section, bool Section::*member,
                 std::string doc) {
  return Field{
      key, "true or false", std::move(doc),
      [=](Config& c, const std::string& text) {
        if (text == "true") {
          (c.*section).*member = true;
        } else if (text == "false") {
          (c.*section).*member = false;
        } else {
          bad_value(key, text, "true or false");
        }
      },
      [=](const Config& c) { return std::string((c.*section).*member ? "true" : "false"); }};
}

template <typename Section>
Field choice_field(std::string key, Section Config::*section, std::string Section::*member,
                   std::function<std::vector<std::string>()> choices, std::string doc) {
  // Choices are looked up lazily so that the PE list comes from the PE registry.
  auto accepted_text = [choices] {
    std::string s = "one of: ";
    auto list = choices();
    for (std::size_t i = 0; i < list.size(); ++i) s += (i ? ", " : "") + list[i];
    return s;
  };
  return Field{key, "", std::move(doc),
               [=](Config& c, const std::string& text) {
                 auto list = choices();
                 if (std::find(list.begin(), list.end(), text) == list.end()) {
                   std::string msg =
                       fmt::format("{}: bad value '{}'; accepted: {}", key, text, accepted_text());
                   std::string near = nearest(text, list);
                   if (!near.empty()) msg += fmt::format(" (did you mean '{}'?)", near);
                   throw ConfigError(msg);
                 }
                 (c.*section).*member = text;
               },
               [=](const Config& c) { return "\"" + (c.*section).*member + "\""; }};
}

std::function<std::vector<std::string>()> fixed(std::vector<std::string> list) {
  return [list] { return list; };
}

// The PE names come from the PE registry (src/pe/registry.cpp).
std::function<std::vector<std::string>()> pe_choices() {
  return [] { return pe_names(); };
}

constexpr int64_t kBig = int64_t{1} << 40;

const std::vector<Field>& schema() {
  using M = ModelConfig;
  using T = TaskConfig;
  using R = TrainConfig;
  static const std::vector<Field> fields = [] {
    std::vector<Field> f;
    const auto model = &Config::model;
    const auto task = &Config::task;
    const auto train = &Config::train;
    // model
    f.push_back(choice_field(std::string("model.pe"), model, &M::pe, pe_choices(),
                             "positional encoding (pelab pe list)"));
    f.push_back(int_field(std::string("model.d_model"), model, &M::d_model, 1, 65536, "width"));
    f.push_back(int_field(std::string("model.n_heads"), model, &M::n_heads, 1, 4096, "heads"));
    f.push_back(int_field(std::string("model.n_layers"), model, &M::n_layers, 1, 1024, "blocks"));
    f.push_back(int_field(std::string("model.d_ff"), model, &M::d_ff, 1, 1 << 20, "FFN width"));
    f.push_back(real_field(std::string("model.dropout"), model, &M::dropout, 0, 0.99,
                           "dropout on embeddings, attention and FFN outputs"));
    f.push_back(real_field(std::string("model.attention_dropout"), model, &M::attention_dropout, 0,
                           0.99, "dropout on attention weights"));
    f.push_back(choice_field(std::string("model.activation"), model, &M::activation,
                             fixed({"relu", "gelu"}), "FFN activation"));
    f.push_back(bool_field(std::string("model.final_norm"), model, &M::final_norm,
                           "LayerNorm before pooling"));
    f.push_back(choice_field(std::string("model.mask"), model, &M::mask,
                             fixed({"none", "padding", "causal"}),
                             "attention mask (authors: none)"));
    f.push_back(choice_field(std::string("model.kv_source"), model, &M::kv_source,
                             fixed({"residual", "embedding"}),
                             "keys/values from the residual stream or the input embeddings"));
    f.push_back(choice_field(std::string("model.pooling"), model, &M::pooling,
                             fixed({"valid", "all"}),
                             "mean over valid positions or over all (authors: all)"));
    f.push_back(real_field(std::string("model.sinusoidal_base"), model, &M::sinusoidal_base, 1.0,
                           1e12, "sinusoidal absolute encoding base"));
    f.push_back(
        real_field(std::string("model.rope_base"), model, &M::rope_base, 1.0, 1e12, "RoPE base"));
    f.push_back(int_field(std::string("model.rotary_heads"), model, &M::rotary_heads, -1, 4096,
                          "RoPE on the first k heads only; -1 = all"));
    f.push_back(real_field(std::string("model.rotary_fraction"), model, &M::rotary_fraction, 1e-9,
                           1.0, "share of each rotated head's dims that rotate"));
    f.push_back(
        choice_field(std::string("model.rope_scaling"), model, &M::rope_scaling,
                     fixed({"none", "linear", "ntk", "yarn"}),
                     "rotary context scaling: position interpolation, NTK-aware base, YaRN"));
    f.push_back(real_field(std::string("model.rope_scaling_factor"), model, &M::rope_scaling_factor,
                           1.0, 1e6, "rotary context scaling factor s"));
    f.push_back(int_field(std::string("model.rope_original_length"), model,
                          &M::rope_original_length, 0, 1 << 24,
                          "YaRN: the training context length; 0 = the model's max_len"));
    f.push_back(real_field(std::string("model.xpos_scale_base"), model, &M::xpos_scale_base, 1.0,
                           1e9, "xPos: decay zeta^((i-j)/scale_base)"));
    f.push_back(real_field(std::string("model.rope_truncate"), model, &M::rope_truncate, 0.0, 1.0,
                           "p-RoPE: share of the lowest RoPE frequencies left unrotated"));
    f.push_back(choice_field(std::string("model.kerple_variant"), model, &M::kerple_variant,
                             fixed({"log", "power"}),
                             "KERPLE: -r1 log(1 + r2 |i-j|) or -r1 |i-j|^r2"));
    f.push_back(int_field(std::string("model.fire_hidden"), model, &M::fire_hidden, 1, 65536,
                          "FIRE: hidden width of the MLP"));
    f.push_back(real_field(std::string("model.fire_c"), model, &M::fire_c, 1e-6, 1e6,
                           "FIRE: initial c of psi(x) = log(c x + 1) (learned)"));
    f.push_back(real_field(std::string("model.fire_length"), model, &M::fire_length, 1.0, 1e9,
                           "FIRE: initial threshold L of psi(max(L, i)) (learned)"));
    f.push_back(int_field(std::string("model.cope_positions"), model, &M::cope_positions, 0,
                          1 << 20, "CoPE: position embeddings; 0 = the model's max_len"));
    f.push_back(bool_field(std::string("model.random_positions"), model, &M::random_positions,
                           "training positions: sorted random sample of [0, model.max_position)"));
    f.push_back(int_field(std::string("model.max_position"), model, &M::max_position, 0, 1 << 24,
                          "random positions: range [0, max_position), > task.seq_len"));
    f.push_back(choice_field(std::string("model.alibi_slopes"), model, &M::alibi_slopes,
                             fixed({"standard", "paper"}), "ALiBi slope rule"));
    f.push_back(int_field(std::string("model.t5_num_buckets"), model, &M::t5_num_buckets, 2, 4096,
                          "T5 relative-position buckets"));
    f.push_back(int_field(std::string("model.t5_max_distance"), model, &M::t5_max_distance, 2,
                          1 << 20, "T5 distance of the last bucket"));
    f.push_back(int_field(std::string("model.mla_kv_latent"), model, &M::mla_kv_latent, 1, 65536,
                          "MLA key/value latent width d_c"));
    f.push_back(int_field(std::string("model.mla_q_latent"), model, &M::mla_q_latent, 0, 65536,
                          "MLA query latent width d_c'; 0 = no query compression"));
    f.push_back(int_field(std::string("model.mla_rope_dim"), model, &M::mla_rope_dim, 2, 4096,
                          "MLA rotary dims per head d_R (even)"));
    f.push_back(bool_field(std::string("model.mla_shared_rotary_query"), model,
                           &M::mla_shared_rotary_query,
                           "authors' MLA: one rotary query shared by all heads"));
    f.push_back(bool_field(std::string("model.fused_attention"), model, &M::fused_attention,
                           "fused CPU attention kernels; false = explicit path (same numbers)"));
    f.push_back(bool_field(std::string("model.onednn_linear"), model, &M::onednn_linear,
                           "linear layers through oneDNN; false = LibTorch's at::linear (same "
                           "numbers up to rounding)"));
    // task
    f.push_back(choice_field(
        std::string("task.name"), task, &T::name, [] { return task_names(); },
        "Task 1 distance, Task 2 count or a probe (docs/TASKS.md)"));
    f.push_back(int_field(std::string("task.vocab_size"), task, &T::vocab_size, 4, 1 << 24,
                          "vocabulary size incl. pad 0"));
    f.push_back(int_field(std::string("task.samples"), task, &T::samples, 2, kBig, "sequences"));
    f.push_back(int_field(std::string("task.seq_len"), task, &T::seq_len, 1, 1 << 16,
                          "padded sequence length"));
    f.push_back(int_field(std::string("task.seed"), task, &T::seed, 0, kBig, "generator seed"));
    f.push_back(int_field(std::string("task.split_seed"), task, &T::split_seed, 0, kBig,
                          "train/test split seed"));
    f.push_back(real_field(std::string("task.train_fraction"), task, &T::train_fraction, 1e-9,
                           1 - 1e-9, "share of samples used for training"));
    f.push_back(bool_field(std::string("task.fillers_may_be_triggers"), task,
                           &T::fillers_may_be_triggers,
                           "authors' generator: fillers from all tokens"));
    f.push_back(int_field(std::string("task.distance_left_min"), task, &T::distance_left_min, 0,
                          1 << 16, "Task 1 fillers before w1, min"));
    f.push_back(int_field(std::string("task.distance_left_max"), task, &T::distance_left_max, 0,
                          1 << 16, "Task 1 fillers before w1, max"));
    f.push_back(int_field(std::string("task.distance_between_min"), task, &T::distance_between_min,
                          0, 1 << 16, "Task 1 fillers between, min"));
    f.push_back(int_field(std::string("task.distance_between_max"), task, &T::distance_between_max,
                          0, 1 << 16, "Task 1 fillers between, max"));
    f.push_back(int_field(std::string("task.distance_right_min"), task, &T::distance_right_min, 0,
                          1 << 16, "Task 1 fillers after w2, min"));
    f.push_back(int_field(std::string("task.distance_right_max"), task, &T::distance_right_max, 0,
                          1 << 16, "Task 1 fillers after w2, max"));
    f.push_back(int_field(std::string("task.count_triggers"), task, &T::count_triggers, 1, 1 << 20,
                          "Task 2 trigger set size"));
    f.push_back(int_field(std::string("task.count_min"), task, &T::count_min, 0, 1 << 16,
                          "Task 2 fewest triggers"));
    f.push_back(int_field(std::string("task.count_max"), task, &T::count_max, 0, 1 << 16,
                          "Task 2 most triggers"));
    f.push_back(int_field(std::string("task.count_length"), task, &T::count_length, 1, 1 << 16,
                          "Task 2 tokens per sequence"));
    f.push_back(int_field(std::string("task.recall_keys"), task, &T::recall_keys, 1, 1 << 20,
                          "recall: key tokens (a sequence's keys are distinct)"));
    f.push_back(int_field(std::string("task.recall_values"), task, &T::recall_values, 2, 1 << 20,
                          "recall: value tokens (the classes)"));
    f.push_back(int_field(std::string("task.recall_pairs"), task, &T::recall_pairs, 1, 1 << 16,
                          "recall: key-value pairs per sequence"));
    f.push_back(int_field(std::string("task.recall_length"), task, &T::recall_length, 3, 1 << 16,
                          "recall: tokens per sequence (pairs, fillers, query marker and key)"));
    f.push_back(int_field(std::string("task.first_position_min"), task, &T::first_position_min, 0,
                          1 << 16, "first: earliest position of the first trigger"));
    f.push_back(int_field(std::string("task.first_position_max"), task, &T::first_position_max, 0,
                          1 << 16, "first: latest position of the first trigger"));
    f.push_back(int_field(std::string("task.first_triggers_max"), task, &T::first_triggers_max, 1,
                          1 << 16, "first: most triggers per sequence (at least 1)"));
    f.push_back(int_field(std::string("task.first_length"), task, &T::first_length, 1, 1 << 16,
                          "first: tokens per sequence"));
    f.push_back(int_field(std::string("task.order_length"), task, &T::order_length, 2, 1 << 16,
                          "order: tokens per sequence"));
    f.push_back(int_field(std::string("task.offset_min"), task, &T::offset_min, 1, 1 << 16,
                          "offset: smallest offset after the trigger"));
    f.push_back(int_field(std::string("task.offset_max"), task, &T::offset_max, 1, 1 << 16,
                          "offset: largest offset after the trigger"));
    f.push_back(int_field(std::string("task.offset_values"), task, &T::offset_values, 2, 1 << 20,
                          "offset: content tokens (the classes)"));
    f.push_back(int_field(std::string("task.offset_length"), task, &T::offset_length, 3, 1 << 16,
                          "offset: tokens per sequence"));
    // train
    f.push_back(int_field(std::string("train.epochs"), train, &R::epochs, 1, 1 << 20, "epochs"));
    f.push_back(int_field(std::string("train.batch_size"), train, &R::batch_size, 1, 1 << 20,
                          "training batch size"));
    f.push_back(int_field(std::string("train.eval_batch_size"), train, &R::eval_batch_size, 0,
                          1 << 20,
                          "evaluation batch size; 0 = auto (batch_size, lowered to keep a batch's "
                          "activations within 1 MiB)"));
    f.push_back(real_field(std::string("train.lr"), train, &R::lr, 0, 10, "peak learning rate"));
    f.push_back(real_field(std::string("train.weight_decay"), train, &R::weight_decay, 0, 10,
                           "AdamW weight decay"));
    f.push_back(
        real_field(std::string("train.beta1"), train, &R::beta1, 0, 0.999999, "AdamW beta1"));
    f.push_back(
        real_field(std::string("train.beta2"), train, &R::beta2, 0, 0.999999, "AdamW beta2"));
    f.push_back(real_field(std::string("train.warmup_fraction"), train, &R::warmup_fraction, 0, 1,
                           "share of steps in linear warm-up"));
    f.push_back(real_field(std::string("train.grad_clip"), train, &R::grad_clip, 0, 1e9,
                           "max gradient norm; 0 = off"));
    f.push_back(int_field(std::string("train.seed"), train, &R::seed, 0, kBig,
                          "init, dropout and batch-order seed"));
    f.push_back(int_field(std::string("train.threads"), train, &R::threads, 0, 1024,
                          "intra-op threads; 0 = all cores"));
    f.push_back(choice_field(std::string("train.precision"), train, &R::precision,
                             fixed({"fp32", "bf16"}),
                             "fp32, or bf16 mixed precision: bf16 products in the linear layers "
                             "and the attention kernels; float32 weights, softmax, LayerNorm and "
                             "loss (needs AVX512_BF16)"));
    f.push_back(real_field(std::string("train.checkpoint_every_s"), train, &R::checkpoint_every_s,
                           0, 1e9,
                           "seconds between checkpoints inside an epoch (step-exact resume); "
                           "0 = only at epoch ends"));
    f.push_back(bool_field(std::string("train.track_spectra"), train, &R::track_spectra,
                           "record logit spectra and the top Hessian eigenvalue every epoch"));
    f.push_back(int_field(std::string("train.track_samples"), train, &R::track_samples, 1, 100000,
                          "test sequences the per-epoch spectra and Hessian use"));
    f.push_back(int_field(std::string("train.hessian_iterations"), train, &R::hessian_iterations, 0,
                          1000, "power iterations for the top Hessian eigenvalue; 0 = skip"));
    f.push_back(real_field(std::string("train.validation_fraction"), train, &R::validation_fraction,
                           0, 0.9,
                           "share of the train split held out (seeded) to pick the best epoch and "
                           "stop; 0 = none"));
    f.push_back(int_field(std::string("train.patience"), train, &R::patience, 0, 1 << 20,
                          "stop after this many epochs without a validation gain > min_delta; "
                          "0 = train to train.epochs"));
    f.push_back(real_field(std::string("train.min_delta"), train, &R::min_delta, 0, 1,
                           "smallest validation-accuracy gain that counts as an improvement"));
    return f;
  }();
  return fields;
}

const Field& find_field(const std::string& key) {
  for (const auto& f : schema())
    if (f.key == key) return f;
  std::vector<std::string> keys;
  for (const auto& f : schema()) keys.push_back(f.key);
  std::string msg = fmt::format("unknown config key '{}'", key);
  std::string near = nearest(key, keys);
  if (!near.empty()) msg += fmt::format(" (did you mean '{}'?)", near);
  msg += "; `pelab config keys` lists every key";
  throw ConfigError(msg);
}

// Text of a TOML leaf as the schema parsers read it.
std::string node_text(const std::string& key, const toml::node& node) {
  if (auto s = node.as_string()) return s->get();
  if (auto i = node.as_integer()) return std::to_string(i->get());
  if (auto d = node.as_floating_point()) return fmt::format("{}", d->get());
  if (auto b = node.as_boolean()) return b->get() ? "true" : "false";
  throw ConfigError(
      fmt::format("{}: unsupported TOML value type (expected a string, number or "
                  "boolean)",
                  key));
}

void apply_table(Config& config, const toml::table& table, const std::string& prefix) {
  for (const auto& [k, node] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (auto sub = node.as_table()) {
      apply_table(config, *sub, key);
    } else {
      find_field(key).parse(config, node_text(key, node));
    }
  }
}

Config parse_toml_over_defaults(std::string_view text, const std::string& source) {
  Config config;
  try {
    toml::table table = toml::parse(text, source);
    apply_table(config, table, "");
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}: TOML syntax error at line {}: {}", source,
                                  e.source().begin.line, e.description()));
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("{}: {}", source, e.what()));
  }
  return config;
}

void require(bool ok, const std::string& message) {
  if (!ok) throw ConfigError(message);
}

}  // namespace

Config load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  Config config;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) throw ConfigError(fmt::format("cannot read config file '{}'", file.string()));
    std::stringstream text;
    text << in.rdbuf();
    config = parse_toml_over_defaults(text.str(), file.string());
  }
  for (const auto& o : overrides) apply_override(config, o);
  validate(config);
  return config;
}

Config config_from_toml(std::string_view toml_text, const std::string& source_name) {
  Config config = parse_toml_over_defaults(toml_text, source_name);
  validate(config);
  return config;
}

void apply_override(Config& config, std::string_view key_equals_value) {
  auto eq = key_equals_value.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw ConfigError(
        fmt::format("bad override '{}': expected key=value, e.g. model.pe=rope", key_equals_value));
  std::string key(key_equals_value.substr(0, eq));
  std::string value(key_equals_value.substr(eq + 1));
  // Accept TOML-style quoting on the command line: model.pe="rope".
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front())
    value = value.substr(1, value.size() - 2);
  find_field(key).parse(config, value);
}

void validate(const Config& c) {
  const auto& m = c.model;
  require(m.d_model % m.n_heads == 0,
          fmt::format("model.n_heads: {} does not divide model.d_model = {}; accepted: a divisor "
                      "of model.d_model",
                      m.n_heads, m.d_model));
  require(m.rotary_heads <= m.n_heads,
          fmt::format("model.rotary_heads: bad value {}; accepted: -1 (all) or 0..{} (n_heads)",
                      m.rotary_heads, m.n_heads));
  const int64_t head_dim = m.d_model / m.n_heads;
  const bool rotary_pe = m.pe == "rope" || m.pe == "rope_abs" || m.pe == "xpos" || m.pe == "prope";
  if (rotary_pe)
    require(rotary_dims(m) >= 2 || m.rotary_heads == 0,
            fmt::format("model.rotary_fraction: {} of head_dim {} rotates no pair; accepted: a "
                        "fraction giving at least 2 dims",
                        m.rotary_fraction, head_dim));
  if (rotary_pe || m.pe == "sinusoidal")
    require(m.pe == "sinusoidal" ? m.d_model % 2 == 0 : head_dim % 2 == 0 || m.rotary_fraction < 1,
            fmt::format("model.d_model: {} gives an odd dimension that {} cannot pair; accepted: "
                        "an even d_model / head_dim",
                        m.d_model, m.pe));
  if (m.pe == "rope_abs")
    require(m.d_model % 2 == 0, "model.d_model: rope_abs needs an even d_model");
  if (m.pe == "mla")
    require(m.mla_rope_dim % 2 == 0,
            fmt::format("model.mla_rope_dim: bad value {}; accepted: an even number >= 2",
                        m.mla_rope_dim));
  const auto& t = c.task;
  if (m.random_positions)
    require(m.max_position > t.seq_len,
            fmt::format("model.max_position: {} with model.random_positions = true; accepted: more "
                        "than task.seq_len = {}",
                        m.max_position, t.seq_len));
  require(m.rope_scaling != "none" || m.rope_scaling_factor == 1.0,
          fmt::format("model.rope_scaling_factor: {} with model.rope_scaling = none; accepted: 1, "
                      "or set model.rope_scaling to linear, ntk or yarn",
                      m.rope_scaling_factor));
  require(t.samples >= 2, "task.samples: need at least 2 samples");
  const int64_t n_train = static_cast<int64_t>(std::llround(t.train_fraction * t.samples));
  require(n_train >= 1 && n_train < t.samples,
          fmt::format("task.train_fraction: {} of {} samples leaves an empty split; accepted: a "
                      "fraction giving both sides at least one sample",
                      t.train_fraction, t.samples));
  require(c.train.patience == 0 || c.train.validation_fraction > 0,
          fmt::format("train.patience: {} needs a validation set; accepted: 0, or set "
                      "train.validation_fraction > 0",
                      c.train.patience));
  const int64_t n_validation =
      static_cast<int64_t>(std::llround(c.train.validation_fraction * double(n_train)));
  require(c.train.validation_fraction == 0 || (n_validation >= 1 && n_validation < n_train),
          fmt::format("train.validation_fraction: {} of {} training samples leaves an empty "
                      "set; accepted: 0, or a fraction giving both sets at least one sample",
                      c.train.validation_fraction, n_train));
}

std::string to_toml(const Config& config) {
  std::string out = "# pelab resolved configuration: every key, as used by the run\n";
  std::string section;
  for (const auto& f : schema()) {
    auto dot = f.key.find('.');
    std::string s = f.key.substr(0, dot);
    if (s != section) {
      out += fmt::format("\n[{}]\n", s);
      section = s;
    }
    out += fmt::format("{} = {}\n", f.key.substr(dot + 1), f.format(config));
  }
  return out;
}

std::vector<ConfigKeyInfo> config_keys() {
  std::vector<ConfigKeyInfo> out;
  for (const auto& f : schema()) {
    std::string accepted = f.accepted;
    if (accepted.empty()) {
      // Choice fields: show the current choices by provoking the parser's message.
      Config probe;
      try {
        f.parse(probe, "\x01");
      } catch (const ConfigError& e) {
        std::string msg = e.what();
        auto pos = msg.find("accepted: ");
        accepted = pos == std::string::npos ? "" : msg.substr(pos + 10);
        // The parser may append a nearest-name suggestion; it is not part of the choices.
        const auto suggestion = accepted.find(" (did you mean");
        if (suggestion != std::string::npos) accepted.resize(suggestion);
      }
    }
    out.push_back({f.key, accepted, f.doc});
  }
  return out;
}

int64_t rotary_dims(const ModelConfig& model) {
  const int64_t head_dim = model.d_model / model.n_heads;
  const int64_t pairs =
      static_cast<int64_t>(std::floor(model.rotary_fraction * head_dim / 2.0 + 1e-9));
  return 2 * std::min(pairs, head_dim / 2);
}

}  // namespace pelab
