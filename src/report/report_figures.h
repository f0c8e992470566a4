// The report's figures, one function per kind, each drawn through gnuplot (report/gnuplot.h) into
// one SVG file. They take ReportData pieces and know nothing of HTML.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "report/report_data.h"

namespace pelab {

// Grouped bars: final test accuracy of each PE (groups) per task (bars), error bars = std.
void write_accuracy_bars_svg(const std::filesystem::path& svg, const ReportData& data,
                             const std::string& setup, const std::vector<std::string>& pes);
// Mean test accuracy per epoch of each PE on one task (error bars = std over seeds).
void write_training_curves_svg(const std::filesystem::path& svg, const ReportData& data,
                               const std::string& setup, const std::string& task,
                               const std::vector<std::string>& pes);
// Heatmap of one run's head-ablation matrix.
void write_ablation_svg(const std::filesystem::path& svg, const Cell& cell,
                        const HeadAblation& ablation);
// Accuracy against the number of rotary heads (Task 1), one line per setup; "all" is n_heads.
void write_rotary_heads_svg(const std::filesystem::path& svg, const ReportData& data);
// Sorted eigenvalues of a kernel study's first kernels.
void write_kernel_eigenvalues_svg(const std::filesystem::path& svg, const SpectrumData& study);
// Sorted contraction ratios kappa(coupled) / kappa(A) of every study of one setup (log scale).
void write_contraction_ratios_svg(const std::filesystem::path& svg, const ReportData& data,
                                  const std::string& setup);
// Accuracy per layer with p_i removed vs random vectors removed (mean +- std over seeds).
void write_removal_svg(const std::filesystem::path& svg, const Cell& cell);

// Whether a figure has anything to show (so the page does not ask for an empty one).
bool has_rotary_heads(const ReportData& data);
bool has_contraction_ratios(const ReportData& data, const std::string& setup);

}  // namespace pelab
