#include "analysis/spectral.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "analysis/matrix_stats.h"
#include "model/mla.h"

namespace pelab {

KernelSpectrum spectrum_of(const torch::Tensor& kernel, std::string name, int64_t layer,
                           int64_t index) {
  KernelSpectrum s;
  s.name = std::move(name);
  s.layer = layer;
  s.index = index;
  const auto k = kernel.is_complex() ? kernel.to(torch::kComplexDouble) : kernel.to(torch::kDouble);
  s.symmetric = torch::allclose(k, k.transpose(0, 1).conj(), 1e-12, 1e-12);
  s.eigenvalues = symmetric_eigenvalues(k);
  s.singular_values = torch::linalg::svdvals(k, c10::nullopt);
  s.condition_number = condition_from_singular_values(s.singular_values);
  const auto diagonal = torch::real(k.diagonal());
  s.min_diagonal = diagonal.min().item<double>();
  s.max_diagonal = diagonal.max().item<double>();
  s.toeplitz_distance = k.is_complex() ? toeplitz_distance(torch::real(k)) : toeplitz_distance(k);
  return s;
}

std::vector<KernelSpectrum> kernel_spectra(const PositionalEncoding& pe, int64_t n, int64_t layers,
                                           const torch::Tensor& theta) {
  std::vector<KernelSpectrum> out;
  switch (pe.kind()) {
    case PeKind::kNone:
    case PeKind::kContextual:  // CoPE: content-dependent, no fixed kernel
      break;
    case PeKind::kBias:
      for (int64_t l = 0; l < layers; ++l) {
        const auto b = pe.kernel(n, l);
        for (int64_t h = 0; h < b.size(0); ++h) out.push_back(spectrum_of(b[h], "B", l, h));
      }
      break;
    case PeKind::kAbsolute:
      out.push_back(spectrum_of(pe.kernel(n, 0)[0], "G_pp", 0, 0));
      break;
    case PeKind::kRotary:
    case PeKind::kRotaryAbsolute:
    case PeKind::kLatentAttention: {
      // Every rotated head shares one T (same frequencies), so it is reported once.
      const auto t = pe.kernel(n, 0);
      if (!t.defined() || t.size(0) == 0) break;  // RoPE on no head
      out.push_back(spectrum_of(t[0], "T", 0, 0));
      const auto offsets = torch::arange(n, torch::kDouble);
      const auto delta = offsets.unsqueeze(1) - offsets.unsqueeze(0);  // i - j
      for (int64_t f = 0; f < theta.size(0); ++f) {
        const double th = theta[f].item<double>();
        auto e = torch::polar(torch::ones_like(delta), delta * th);  // E_ij = e^{i (i-j) theta}
        auto s = spectrum_of(e, "E", 0, f);
        s.theta = th;
        out.push_back(std::move(s));
      }
      break;
    }
  }
  return out;
}

namespace {

int64_t numerical_rank(const torch::Tensor& ascending_eigenvalues, double tol = 1e-10) {
  const double top = ascending_eigenvalues[-1].item<double>();
  if (top <= 0) return 0;
  return (ascending_eigenvalues > tol * top).sum().item<int64_t>();
}

// |lambda|_(1) / |lambda|_(r): the r-th largest magnitude (equals lambda_1 / lambda_r for a PSD
// matrix; an indefinite coupled matrix such as A + B with ALiBi's B is measured by magnitudes).
std::optional<double> condition_on_rank(const torch::Tensor& eigenvalues, int64_t r) {
  if (r <= 0) return std::nullopt;
  const auto magnitudes = std::get<0>(eigenvalues.abs().sort(0, /*descending=*/true));
  const double top = magnitudes[0].item<double>(), low = magnitudes[r - 1].item<double>();
  if (low <= 1e-14 * top) return std::nullopt;
  return top / low;
}

CouplingCheck check_from(const torch::Tensor& a, const torch::Tensor& coupled, std::string kind) {
  CouplingCheck c;
  c.kind = std::move(kind);
  const auto ev_a = symmetric_eigenvalues(a);
  const auto ev_c = symmetric_eigenvalues(coupled);
  c.eigenvalues_a = ev_a;
  c.eigenvalues_coupled = ev_c;
  c.rank = numerical_rank(ev_a);
  c.lambda_min_a = ev_a[0].item<double>();
  c.lambda_max_a = ev_a[-1].item<double>();
  c.lambda_min_coupled = ev_c[0].item<double>();
  c.lambda_max_coupled = ev_c[-1].item<double>();
  c.condition_a = condition_on_rank(ev_a, c.rank);
  c.condition_coupled = condition_on_rank(ev_c, c.rank);
  if (c.condition_a && c.condition_coupled)
    c.contraction_ratio = *c.condition_coupled / *c.condition_a;
  return c;
}

}  // namespace

CouplingCheck schur_check(const torch::Tensor& a, const torch::Tensor& kernel) {
  const auto a64 = a.to(torch::kDouble), t64 = kernel.to(torch::kDouble);
  CouplingCheck c = check_from(a64, a64 * t64, "schur");
  const auto diagonal = t64.diagonal();
  c.bound_low = c.lambda_min_a * diagonal.min().item<double>();
  c.bound_high = c.lambda_max_a * diagonal.max().item<double>();
  const double slack = 1e-9 * std::max(1.0, std::abs(c.lambda_max_a));
  c.bound_holds =
      c.lambda_min_coupled >= c.bound_low - slack && c.lambda_max_coupled <= c.bound_high + slack;
  return c;
}

CouplingCheck weyl_check(const torch::Tensor& a, const torch::Tensor& bias) {
  const auto a64 = a.to(torch::kDouble), b64 = bias.to(torch::kDouble);
  CouplingCheck c = check_from(a64, a64 + b64, "weyl");
  const auto ev_a = symmetric_eigenvalues(a64), ev_b = symmetric_eigenvalues(b64);
  const auto ev_sum = symmetric_eigenvalues(a64 + b64);
  c.bound_low = ev_b[0].item<double>();
  c.bound_high = ev_b[-1].item<double>();
  const auto shift = ev_sum - ev_a;  // lambda_k(A + B) - lambda_k(A), both ascending
  const double slack = 1e-9 * std::max(1.0, ev_sum.abs().max().item<double>());
  c.bound_holds = shift.min().item<double>() >= c.bound_low - slack &&
                  shift.max().item<double>() <= c.bound_high + slack;
  return c;
}

std::vector<torch::Tensor> random_psd_matrices(int64_t n, int64_t draws, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<torch::Tensor> out;
  for (int64_t d = 0; d < draws; ++d) {
    auto x = at::normal(0.0, 1.0, {n, 2 * n}, generator, torch::TensorOptions(torch::kDouble));
    out.push_back(torch::matmul(x, x.t()) / double(2 * n));
  }
  return out;
}

std::vector<TrainedGram> trained_content_grams(Transformer& model, const Dataset& data,
                                               int64_t samples) {
  using torch::indexing::Slice;
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const auto& config = model->config();
  const int64_t heads = config.n_heads, head_dim = config.d_model / heads;
  samples = std::min(samples, data.size());
  auto s = model->begin(data.tokens.slice(0, 0, samples), data.lengths.slice(0, 0, samples));
  const auto kernel = model->pe->kernel(1, 0);
  const bool rotary_pe =
      model->pe->kind() == PeKind::kRotary || model->pe->kind() == PeKind::kRotaryAbsolute;
  const int64_t rotated_heads = rotary_pe && kernel.defined() ? kernel.size(0) : 0;
  std::vector<TrainedGram> out;
  for (int64_t l = 0; l < static_cast<int64_t>(model->blocks->size()); ++l) {
    auto& block = *model->blocks[l]->as<Block>();
    auto normed = block.attention_norm(s.x);
    torch::Tensor queries;  // [B, H or 1, L, D]: the channels the PE's kernel acts on
    double scale = 1.0 / std::sqrt(double(head_dim));
    if (auto* mla = dynamic_cast<LatentAttention*>(block.attention.get())) {
      auto source = !mla->query_down.is_empty() ? mla->query_norm(mla->query_down(normed)) : normed;
      queries = split_heads(mla->query_rope(source), config.mla_shared_rotary_query ? 1 : heads);
      scale = 1.0 / std::sqrt(double(head_dim + config.mla_rope_dim));
    } else {
      queries =
          split_heads(dynamic_cast<MultiHeadAttention&>(*block.attention).query(normed), heads);
    }
    for (int64_t b = 0; b < samples; ++b) {
      const int64_t n = data.lengths[b].item<int64_t>();
      for (int64_t h = 0; h < queries.size(1); ++h) {
        auto q = queries[b][h].index({Slice(0, n)}).to(torch::kDouble);
        if (h < rotated_heads) q = q.index({Slice(), Slice(0, rotary_dims(config))});
        out.push_back({b, l, h, torch::matmul(q, q.t()) * scale});
      }
    }
    model->run_block(s, l);
  }
  model->train(was_training);
  return out;
}

std::vector<LogitSpectrumStats> logit_spectra(Transformer& model, const Dataset& data,
                                              int64_t samples) {
  using torch::indexing::Slice;
  constexpr int64_t kShown = 8;
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  samples = std::min(samples, data.size());
  std::vector<AttentionRecord> records;
  ForwardOptions options;
  options.attention_records = &records;
  model->forward(data.tokens.slice(0, 0, samples), data.lengths.slice(0, 0, samples), options);
  const auto& config = model->config();
  const int64_t qk_width =
      config.d_model / config.n_heads +
      (model->pe->kind() == PeKind::kLatentAttention ? config.mla_rope_dim : 0);
  std::vector<LogitSpectrumStats> out;
  for (int64_t l = 0; l < static_cast<int64_t>(records.size()); ++l) {
    const auto& logits = records[l].logits;  // [B, H, L, L]
    for (int64_t h = 0; h < logits.size(1); ++h) {
      LogitSpectrumStats st;
      st.layer = l;
      st.head = h;
      std::vector<double> shown(kShown, 0.0);
      for (int64_t b = 0; b < samples; ++b) {
        const int64_t n = data.lengths[b].item<int64_t>();
        const auto sv = singular_values(logits[b][h].index({Slice(0, n), Slice(0, n)}));
        const double top = sv[0].item<double>(), low = sv[-1].item<double>();
        st.mean_log10_condition += (top > 0 && low > 1e-16 * top) ? std::log10(top / low) : 16.0;
        const double within = sv[std::min(n, qk_width) - 1].item<double>();
        st.mean_log10_condition_within_rank +=
            (top > 0 && within > 1e-16 * top) ? std::log10(top / within) : 16.0;
        st.mean_effective_rank += effective_rank(sv);
        st.mean_top_share += top / std::max(sv.sum().item<double>(), 1e-300);
        for (int64_t k = 0; k < std::min(kShown, n); ++k)
          shown[k] += top > 0 ? sv[k].item<double>() / top : 0.0;
      }
      st.mean_log10_condition /= double(samples);
      st.mean_log10_condition_within_rank /= double(samples);
      st.mean_effective_rank /= double(samples);
      st.mean_top_share /= double(samples);
      for (auto& v : shown) v /= double(samples);
      st.mean_normalised_singular_values = shown;
      out.push_back(st);
    }
  }
  model->train(was_training);
  return out;
}

}  // namespace pelab
