// Figures as SVG through gnuplot: heatmaps (ablation matrices, logit terms, kernels) and line
// plots with error bars (per-layer accuracies, spectra).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

namespace pelab {

struct HeatmapLabels {
  std::string title;
  std::string x_label;  // columns
  std::string y_label;  // rows
  std::string value_label;
};

// matrix: [rows, cols]. Writes `svg` atomically; cell values are printed in the cells when the
// matrix is small. Throws std::runtime_error when gnuplot is missing or fails.
void write_heatmap_svg(const std::filesystem::path& svg, const torch::Tensor& matrix,
                       const HeatmapLabels& labels);

// Several matrices side by side (at most 4 per row), each with its own colour scale; for large
// matrices such as [L, L] logit terms. No cell labels.
struct HeatmapPanel {
  std::string title;
  torch::Tensor matrix;  // [rows, cols]
};
void write_heatmap_panels_svg(const std::filesystem::path& svg,
                              const std::vector<HeatmapPanel>& panels, const std::string& title);

// Lines over a shared x axis; `error` (optional, same length as y) draws error bars.
struct LineSeries {
  std::string title;
  std::vector<double> x, y, error;
};
struct LinePlotLabels {
  std::string title, x_label, y_label;
  bool log_y = false;
};
void write_line_plot_svg(const std::filesystem::path& svg, const std::vector<LineSeries>& series,
                         const LinePlotLabels& labels);

}  // namespace pelab
