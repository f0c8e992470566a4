#include "analysis/decomposition.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "analysis/matrix_stats.h"
#include "model/mla.h"

namespace pelab {

namespace {

struct ContentPosition {
  torch::Tensor content, position;  // [1, L, d]; position undefined without an absolute PE
};

// u = LN(x) split into the parts carried by c = x - p and by p (see the header).
ContentPosition split_layer_norm(torch::nn::LayerNorm norm, const torch::Tensor& x,
                                 const torch::Tensor& p) {
  auto u = norm(x);
  if (!p.defined()) return {u, {}};
  const double eps = norm->options.eps();
  auto sigma = torch::sqrt(x.var(-1, /*unbiased=*/false, /*keepdim=*/true) + eps);
  auto p_centred = p - p.mean(-1, true);
  auto u_position = p_centred / sigma * norm->weight;
  return {u - u_position, u_position};
}

LogitTerm make_term(std::string name, torch::Tensor matrix) {
  LogitTerm t;
  t.name = std::move(name);
  t.matrix = std::move(matrix);
  t.frobenius_norm = t.matrix.to(torch::kDouble).norm().item<double>();
  t.toeplitz_distance = toeplitz_distance(t.matrix);
  return t;
}

double relative_error(const torch::Tensor& approx, const torch::Tensor& exact) {
  const double norm = exact.to(torch::kDouble).norm().item<double>();
  const double diff = (approx.to(torch::kDouble) - exact.to(torch::kDouble)).norm().item<double>();
  return norm == 0 ? diff : diff / norm;
}

// The rotary view from the head's unrotated and rotated queries and keys, [L, D] each, whose
// first rotary_dims channels rotate.
RotaryView rotary_view(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& q_rot,
                       const torch::Tensor& k_rot, int64_t rotary_dims, double scale,
                       torch::Tensor kernel, int64_t n) {
  using torch::indexing::Slice;
  auto gram = [&](const torch::Tensor& a, const torch::Tensor& b, Slice channels) {
    return torch::matmul(a.index({Slice(0, n), channels}), b.index({Slice(0, n), channels}).t()) *
           scale;
  };
  RotaryView v;
  v.present = true;
  v.rotary_channels = make_term("rotary_channels", gram(q_rot, k_rot, Slice(0, rotary_dims)));
  v.other_channels =
      make_term("other_channels", gram(q, k, Slice(rotary_dims, torch::indexing::None)));
  v.content_gram = make_term("content_gram", gram(q, k, Slice(0, rotary_dims)));
  v.kernel = std::move(kernel);
  v.hadamard = v.content_gram.matrix.to(torch::kDouble) * v.kernel;
  v.hadamard_relative_error = relative_error(v.hadamard, v.rotary_channels.matrix);
  return v;
}

torch::Tensor head_matrix(const torch::Tensor& scores, int64_t head, int64_t n) {
  using torch::indexing::Slice;
  return scores[0][scores.size(1) == 1 ? 0 : head].index({Slice(0, n), Slice(0, n)});
}

void decompose_standard(LogitDecomposition& d, TransformerImpl& model, BlockImpl& block,
                        const ForwardState& s, int64_t n) {
  auto& attention = dynamic_cast<MultiHeadAttention&>(*block.attention);
  const auto& config = model.config();
  const int64_t heads = config.n_heads, head_dim = config.d_model / heads;
  const double scale = 1.0 / std::sqrt(double(head_dim));
  const auto L = s.x.size(1);
  auto p = model.pe->embedding(L);
  if (p.defined()) p = p.unsqueeze(0).to(s.x.dtype());
  auto query_side = split_layer_norm(block.attention_norm, s.x, p);
  ContentPosition key_side = query_side;
  if (config.kv_source == "embedding")
    key_side =
        p.defined() ? ContentPosition{s.embeddings - p, p} : ContentPosition{s.embeddings, {}};

  // s(a, b): the head's score function, rotation included (linear in each argument).
  auto score = [&](const torch::Tensor& q_in, const torch::Tensor& k_in) {
    auto q = split_heads(q_in, heads), k = split_heads(k_in, heads);
    std::tie(q, k) = model.pe->rotate(q, k, s.inputs.positions);
    return head_matrix(torch::matmul(q, k.transpose(-2, -1)) * scale, d.head, n);
  };
  auto q_content = attention.query(query_side.content);
  auto k_content = attention.key(key_side.content);
  d.terms.push_back(make_term("content_content", score(q_content, k_content)));
  if (p.defined()) {
    auto q_position = torch::linear(query_side.position, attention.query->weight);
    auto k_position = torch::linear(key_side.position, attention.key->weight);
    d.terms.push_back(make_term("content_position", score(q_content, k_position)));
    d.terms.push_back(make_term("position_content", score(q_position, k_content)));
    d.terms.push_back(make_term("position_position", score(q_position, k_position)));
  }
  auto bias = model.pe->bias(L, d.layer);
  if (bias.defined()) {
    using torch::indexing::Slice;
    d.terms.push_back(
        make_term("bias", bias[d.head].index({Slice(0, n), Slice(0, n)}).to(s.x.dtype())));
  }

  if (model.pe->kind() == PeKind::kContextual) {
    // CoPE: its positional term is the content-counted bias, from the full queries and keys.
    auto q = split_heads(attention.query(block.attention_norm(s.x)), heads);
    auto k = split_heads(
        attention.key(config.kv_source == "embedding" ? s.embeddings : block.attention_norm(s.x)),
        heads);
    std::tie(q, k) = model.pe->rotate(q, k, s.inputs.positions);
    auto contextual = model.pe->contextual_bias(q, k, s.inputs.additive_mask, d.layer);
    d.terms.push_back(make_term("contextual_position", head_matrix(contextual, d.head, n)));
  }

  auto kernel = model.pe->kernel(n, d.layer);
  const bool rotary =
      model.pe->kind() == PeKind::kRotary || model.pe->kind() == PeKind::kRotaryAbsolute;
  if (rotary && kernel.defined() && d.head < kernel.size(0)) {
    auto q = split_heads(attention.query(block.attention_norm(s.x)), heads);
    auto k = split_heads(
        attention.key(config.kv_source == "embedding" ? s.embeddings : block.attention_norm(s.x)),
        heads);
    auto [q_rot, k_rot] = model.pe->rotate(q, k, s.inputs.positions);
    d.rotary = rotary_view(q[0][d.head], k[0][d.head], q_rot[0][d.head], k_rot[0][d.head],
                           rotary_dims(config), scale, kernel[d.head], n);
  }
}

void decompose_latent(LogitDecomposition& d, TransformerImpl& model, BlockImpl& block,
                      const ForwardState& s, int64_t n) {
  auto& mla = dynamic_cast<LatentAttention&>(*block.attention);
  const auto& config = model.config();
  const int64_t heads = config.n_heads, head_dim = config.d_model / heads;
  const double scale = 1.0 / std::sqrt(double(head_dim + config.mla_rope_dim));
  auto normed = block.attention_norm(s.x);
  auto keys_from = config.kv_source == "embedding" ? s.embeddings : normed;
  auto k_content = split_heads(mla.key_up(mla.kv_norm(mla.kv_down(keys_from))), heads);
  auto query_source = !mla.query_down.is_empty() ? mla.query_norm(mla.query_down(normed)) : normed;
  auto q_content = split_heads(mla.query_up(query_source), heads);
  auto k_rotary = mla.key_rope(keys_from).unsqueeze(1);
  auto q_rotary =
      split_heads(mla.query_rope(query_source), config.mla_shared_rotary_query ? 1 : heads);
  auto [q_rot, k_rot] = model.pe->rotate(q_rotary, k_rotary, s.inputs.positions);
  d.terms.push_back(make_term(
      "latent_content",
      head_matrix(torch::matmul(q_content, k_content.transpose(-2, -1)) * scale, d.head, n)));
  d.terms.push_back(make_term(
      "rotary", head_matrix(torch::matmul(q_rot, k_rot.transpose(-2, -1)) * scale, d.head, n)));
  const int64_t q_head = q_rotary.size(1) == 1 ? 0 : d.head;
  d.rotary = rotary_view(q_rotary[0][q_head], k_rotary[0][0], q_rot[0][q_head], k_rot[0][0],
                         config.mla_rope_dim, scale, model.pe->kernel(n, d.layer)[0], n);
  d.rotary.other_channels = make_term("other_channels", d.terms[0].matrix);
}

}  // namespace

LogitDecomposition decompose_logits(Transformer& model, const torch::Tensor& tokens, int64_t length,
                                    int64_t layer, int64_t head, bool valid_only) {
  const auto layers = static_cast<int64_t>(model->blocks->size());
  const auto heads = model->config().n_heads;
  if (layer < 0 || layer >= layers)
    throw ConfigError(
        fmt::format("--layer {} is out of range; this model has layers 0..{}", layer, layers - 1));
  if (head < 0 || head >= heads)
    throw ConfigError(
        fmt::format("--head {} is out of range; this model has heads 0..{}", head, heads - 1));
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;

  const auto L = tokens.size(0);
  ForwardState s = model->begin(tokens.view({1, L}), torch::tensor({length}, torch::kLong));
  for (int64_t l = 0; l < layer; ++l) model->run_block(s, l);
  AttentionRecord record;
  ForwardState branch = s;
  model->run_block(branch, layer, {}, {}, &record);

  LogitDecomposition d;
  d.layer = layer;
  d.head = head;
  d.positions = valid_only ? length : L;
  const auto n = d.positions;
  d.logits = head_matrix(record.logits, head, n);
  auto& block = *model->blocks[layer]->as<Block>();
  if (model->pe->kind() == PeKind::kLatentAttention)
    decompose_latent(d, *model, block, s, n);
  else
    decompose_standard(d, *model, block, s, n);

  double total_norm = 0;
  for (const auto& t : d.terms) total_norm += t.frobenius_norm;
  auto sum = torch::zeros_like(d.logits);
  for (auto& t : d.terms) {
    t.share = total_norm == 0 ? 0 : t.frobenius_norm / total_norm;
    sum = sum + t.matrix;
  }
  d.reconstruction_relative_error = relative_error(sum, d.logits);
  model->train(was_training);
  return d;
}

namespace {

nlohmann::json matrix_json(const torch::Tensor& m) {
  const auto d = m.to(torch::kDouble).contiguous();
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i = 0; i < d.size(0); ++i) {
    const auto* row = d[i].data_ptr<double>();
    rows.push_back(std::vector<double>(row, row + d.size(1)));
  }
  return rows;
}

nlohmann::json term_json(const LogitTerm& t, bool with_matrices) {
  nlohmann::json j = {{"name", t.name},
                      {"frobenius_norm", t.frobenius_norm},
                      {"share", t.share},
                      {"toeplitz_distance", t.toeplitz_distance}};
  if (with_matrices) j["matrix"] = matrix_json(t.matrix);
  return j;
}

}  // namespace

nlohmann::json decomposition_to_json(const LogitDecomposition& d, bool with_matrices) {
  nlohmann::json j = {{"layer", d.layer},
                      {"head", d.head},
                      {"positions", d.positions},
                      {"logits", term_json(make_term("logits", d.logits), with_matrices)},
                      {"reconstruction_relative_error", d.reconstruction_relative_error}};
  j["terms"] = nlohmann::json::array();
  for (const auto& t : d.terms) j["terms"].push_back(term_json(t, with_matrices));
  if (d.rotary.present) {
    nlohmann::json r = {{"rotary_channels", term_json(d.rotary.rotary_channels, with_matrices)},
                        {"other_channels", term_json(d.rotary.other_channels, with_matrices)},
                        {"content_gram", term_json(d.rotary.content_gram, with_matrices)},
                        {"hadamard_relative_error", d.rotary.hadamard_relative_error},
                        {"kernel_toeplitz_distance", toeplitz_distance(d.rotary.kernel)}};
    if (with_matrices) r["kernel"] = matrix_json(d.rotary.kernel);
    j["rotary"] = r;
  } else {
    j["rotary"] = nullptr;
  }
  return j;
}

}  // namespace pelab
