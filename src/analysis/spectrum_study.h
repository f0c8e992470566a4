// `pelab spectrum` as a library call: a PE's kernel spectra, Schur checks (RoPE family: A o T)
// or Weyl checks (bias and absolute PEs: A + B, A + G_pp) on random PSD Gram matrices and, with a
// trained run, on its content Gram matrices, plus the run's logit singular-value spectra.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/spectral.h"

namespace pelab {

struct SpectrumRequest {
  int64_t positions = 64;  // n
  int64_t draws = 5;       // random PSD matrices
  uint64_t seed = 0;
  // Trained run (optional): its model and the data its Gram matrices and logits come from.
  Transformer* model = nullptr;
  const Dataset* data = nullptr;
  int64_t samples = 4;
};

struct SpectrumStudy {
  std::string pe;
  int64_t positions = 0;
  std::vector<KernelSpectrum> kernels;
  std::vector<CouplingCheck> checks;
  std::vector<LogitSpectrumStats> logit_spectra;  // trained run only
};

// The RoPE-family frequencies theta_t the PE rotates with (empty for other PEs).
torch::Tensor pe_frequencies(const ModelConfig& model);

SpectrumStudy run_spectrum_study(const PositionalEncoding& pe, const ModelConfig& model,
                                 const SpectrumRequest& request);
nlohmann::json spectrum_to_json(const SpectrumStudy& study);
// Two figures: `<stem>-kernels.svg` (sorted eigenvalues of the kernels) and, when there are
// checks, `<stem>-coupling.svg` (spectrum of A and of the coupled matrix for the first checks).
std::vector<std::filesystem::path> write_spectrum_figures(const SpectrumStudy& study,
                                                          const std::filesystem::path& stem);

}  // namespace pelab
