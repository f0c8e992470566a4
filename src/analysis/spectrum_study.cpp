#include "analysis/spectrum_study.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "analysis/matrix_stats.h"
#include "pe/rope.h"
#include "pe/rotary.h"
#include "report/heatmap.h"

namespace pelab {

torch::Tensor pe_frequencies(const ModelConfig& model) {
  if (model.pe == "mla") return rope_frequencies(model.mla_rope_dim, model.rope_base);
  if (model.pe == "rope" || model.pe == "rope_abs" || model.pe == "xpos" || model.pe == "prope")
    return rope_frequencies(rotary_dims(model), model.rope_base);
  return torch::zeros({0}, torch::kDouble);
}

namespace {

// The frequencies the PE really uses (p-RoPE's zeros, model.rope_scaling); the config's
// otherwise (mla).
torch::Tensor frequencies_of(const PositionalEncoding& pe, const ModelConfig& model) {
  if (const auto* rope = dynamic_cast<const Rope*>(&pe)) return rope->rotary().theta;
  return pe_frequencies(model);
}

}  // namespace

namespace {

bool is_rotary(PeKind kind) {
  return kind == PeKind::kRotary || kind == PeKind::kRotaryAbsolute ||
         kind == PeKind::kLatentAttention;
}

// The kernels a coupling check uses: T (head 0) for the RoPE family, B of every head of `layer`
// for bias PEs, G_pp for absolute PEs. Names match KernelSpectrum.
std::vector<std::pair<std::string, torch::Tensor>> coupling_kernels(const PositionalEncoding& pe,
                                                                    int64_t n, int64_t layer) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (pe.kind() == PeKind::kNone) return out;
  const auto k = pe.kernel(n, layer);
  if (!k.defined() || k.size(0) == 0) return out;  // e.g. RoPE on 0 heads
  if (is_rotary(pe.kind())) {
    out.push_back({"T", k[0]});
  } else if (pe.kind() == PeKind::kBias) {
    for (int64_t h = 0; h < k.size(0); ++h)
      out.push_back({fmt::format("B layer {} head {}", layer, h), k[h]});
  } else {
    out.push_back({"G_pp", k[0]});
  }
  return out;
}

CouplingCheck check(const PositionalEncoding& pe, const torch::Tensor& a,
                    const std::pair<std::string, torch::Tensor>& kernel, std::string source) {
  auto c = is_rotary(pe.kind()) ? schur_check(a, kernel.second) : weyl_check(a, kernel.second);
  c.kernel = kernel.first;
  c.source = std::move(source);
  return c;
}

}  // namespace

SpectrumStudy run_spectrum_study(const PositionalEncoding& pe, const ModelConfig& model,
                                 const SpectrumRequest& request) {
  SpectrumStudy study;
  study.pe = pe.name();
  study.positions = request.positions;
  const int64_t n = request.positions;
  study.kernels = kernel_spectra(pe, n, model.n_layers, frequencies_of(pe, model));

  const auto randoms = random_psd_matrices(n, request.draws, request.seed);
  for (const auto& kernel : coupling_kernels(pe, n, 0))
    for (std::size_t d = 0; d < randoms.size(); ++d)
      study.checks.push_back(check(pe, randoms[d], kernel, fmt::format("random draw {}", d)));

  if (request.model && request.data) {
    for (const auto& g : trained_content_grams(*request.model, *request.data, request.samples)) {
      const auto kernels = coupling_kernels(pe, g.gram.size(0), g.layer);
      if (kernels.empty()) continue;
      // RoPE: the one T; bias PEs: the head's own B.
      const auto& kernel = kernels.size() == 1 ? kernels[0] : kernels[g.head];
      study.checks.push_back(
          check(pe, g.gram, kernel,
                fmt::format("run layer {} head {} sample {}", g.layer, g.head, g.sample)));
    }
    study.logit_spectra = logit_spectra(*request.model, *request.data, request.samples);
  }
  return study;
}

namespace {

std::vector<double> to_vector(const torch::Tensor& t) {
  const auto d = t.to(torch::kDouble).contiguous();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

nlohmann::json optional_json(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json spectrum_to_json(const SpectrumStudy& study) {
  nlohmann::json j = {{"pe", study.pe}, {"positions", study.positions}};
  j["kernels"] = nlohmann::json::array();
  for (const auto& k : study.kernels) {
    nlohmann::json e = {{"name", k.name},
                        {"layer", k.layer},
                        {"index", k.index},
                        {"symmetric", k.symmetric},
                        {"eigenvalues", to_vector(k.eigenvalues)},
                        {"condition_number", optional_json(k.condition_number)},
                        {"min_diagonal", k.min_diagonal},
                        {"max_diagonal", k.max_diagonal},
                        {"toeplitz_distance", k.toeplitz_distance}};
    if (k.name == "E") e["theta"] = k.theta;
    j["kernels"].push_back(e);
  }
  j["coupling_checks"] = nlohmann::json::array();
  int64_t holding = 0;
  std::vector<double> ratios;
  for (const auto& c : study.checks) {
    holding += c.bound_holds;
    if (c.contraction_ratio) ratios.push_back(*c.contraction_ratio);
    j["coupling_checks"].push_back({{"source", c.source},
                                    {"kind", c.kind},
                                    {"kernel", c.kernel},
                                    {"rank", c.rank},
                                    {"lambda_min_a", c.lambda_min_a},
                                    {"lambda_max_a", c.lambda_max_a},
                                    {"lambda_min_coupled", c.lambda_min_coupled},
                                    {"lambda_max_coupled", c.lambda_max_coupled},
                                    {"bound_low", c.bound_low},
                                    {"bound_high", c.bound_high},
                                    {"bound_holds", c.bound_holds},
                                    {"condition_a", optional_json(c.condition_a)},
                                    {"condition_coupled", optional_json(c.condition_coupled)},
                                    {"contraction_ratio", optional_json(c.contraction_ratio)}});
  }
  std::sort(ratios.begin(), ratios.end());
  j["summary"] = {
      {"checks", study.checks.size()},
      {"bounds_hold", holding},
      {"median_contraction_ratio",
       ratios.empty() ? nlohmann::json(nullptr) : nlohmann::json(ratios[ratios.size() / 2])},
      {"checks_that_contract",
       std::count_if(ratios.begin(), ratios.end(), [](double r) { return r < 1; })}};
  j["logit_spectra"] = nlohmann::json::array();
  for (const auto& s : study.logit_spectra)
    j["logit_spectra"].push_back(
        {{"layer", s.layer},
         {"head", s.head},
         {"mean_log10_condition", s.mean_log10_condition},
         {"mean_log10_condition_within_rank", s.mean_log10_condition_within_rank},
         {"mean_effective_rank", s.mean_effective_rank},
         {"mean_top_share", s.mean_top_share},
         {"mean_normalised_singular_values", s.mean_normalised_singular_values}});
  return j;
}

std::vector<std::filesystem::path> write_spectrum_figures(const SpectrumStudy& study,
                                                          const std::filesystem::path& stem) {
  std::vector<std::filesystem::path> written;
  constexpr std::size_t kMaxSeries = 8;
  std::vector<LineSeries> kernels;
  for (const auto& k : study.kernels) {
    if (kernels.size() == kMaxSeries) break;
    LineSeries s;
    s.title = k.name == "E" ? fmt::format("E(t={})", k.index)
                            : fmt::format("{} l{} #{}", k.name, k.layer, k.index);
    s.y = to_vector(k.eigenvalues);
    for (std::size_t i = 0; i < s.y.size(); ++i) s.x.push_back(double(i));
    kernels.push_back(std::move(s));
  }
  if (!kernels.empty()) {
    const auto file = stem.string() + "-kernels.svg";
    write_line_plot_svg(file, kernels,
                        {fmt::format("{}: kernel eigenvalues, n = {}", study.pe, study.positions),
                         "index (ascending)", "eigenvalue"});
    written.push_back(file);
  }
  if (!study.checks.empty()) {
    // The first check's whole spectrum before and after the coupling.
    const auto& c = study.checks.front();
    std::vector<LineSeries> series(2);
    series[0].title = "A (" + c.source + ")";
    series[0].y = to_vector(c.eigenvalues_a);
    series[1].title = (c.kind == "schur" ? "A o " : "A + ") + c.kernel;
    series[1].y = to_vector(c.eigenvalues_coupled);
    for (auto& s : series)
      for (std::size_t i = 0; i < s.y.size(); ++i) s.x.push_back(double(i));
    const auto file = stem.string() + "-coupling.svg";
    write_line_plot_svg(
        file, series,
        {fmt::format("{}: {} check, condition ratio {}", study.pe, c.kind,
                     c.contraction_ratio ? fmt::format("{:.3f}", *c.contraction_ratio)
                                         : std::string("n/a")),
         "index (ascending)", "eigenvalue"});
    written.push_back(file);
  }
  return written;
}

}  // namespace pelab
