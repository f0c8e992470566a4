// The report's PE zoo section (reproduce/zoo.h): accuracy of the zoo PEs beside RoPE, Task 1
// head-ablation heatmaps with the single-head deposit verdicts, and how their kernels and trained
// logits compare with RoPE's contraction (the full tables are in the spectra section).
#pragma once

#include <filesystem>
#include <string>

#include "report/html.h"
#include "report/report_data.h"

namespace pelab {

// The section's HTML, its figures drawn into `dir` (recorded in `files`, a figure gnuplot cannot
// draw named on the page instead). Empty when the data holds no run of a zoo PE but rope.
std::string zoo_section_html(const ReportData& data, const std::filesystem::path& dir,
                             ReportFiles& files);

}  // namespace pelab
