// Heatmaps as SVG through gnuplot (Debian's gnuplot-nox), for ablation matrices and later for
// logit and kernel matrices.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>

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

}  // namespace pelab
