#include "report/heatmap.h"

#include <fmt/format.h>

#include <sstream>

#include "report/gnuplot.h"

namespace pelab {
namespace fs = std::filesystem;

namespace {

constexpr const char* kPalette = "set palette defined (0 '#2b0a57', 0.5 '#d9485f', 1 '#fde68a')\n";

// "col row value" lines, the layout gnuplot's `with image` reads.
std::string matrix_data(const torch::Tensor& matrix) {
  TORCH_CHECK(matrix.dim() == 2, "heatmap needs a 2-d matrix, got ", matrix.sizes());
  const auto values = matrix.to(torch::kDouble).contiguous();
  const auto* v = values.data_ptr<double>();
  const int64_t rows = values.size(0), cols = values.size(1);
  std::ostringstream out;
  out.precision(9);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out << c << ' ' << r << ' ' << v[r * cols + c] << '\n';
  return out.str();
}

std::string ranges(int64_t rows, int64_t cols) {
  return fmt::format("set xrange [-0.5:{}]\nset yrange [{}:-0.5]\n", cols - 0.5, rows - 0.5);
}

}  // namespace

void write_heatmap_svg(const fs::path& svg, const torch::Tensor& matrix,
                       const HeatmapLabels& labels) {
  GnuplotFigure figure(svg);
  const std::string data = figure.data_file("matrix.dat", matrix_data(matrix));
  const int64_t rows = matrix.size(0), cols = matrix.size(1);
  std::string gp = figure.terminal(std::max<int64_t>(640, 60 * cols + 200),
                                   std::max<int64_t>(320, 50 * rows + 160));
  gp += "set title " + gnuplot_quoted(labels.title) + "\n";
  gp += "set xlabel " + gnuplot_quoted(labels.x_label) + "\n";
  gp += "set ylabel " + gnuplot_quoted(labels.y_label) + "\n";
  gp += "set cblabel " + gnuplot_quoted(labels.value_label) + "\n";
  gp += ranges(rows, cols) + "set xtics 1\nset ytics 1\n" + kPalette;
  gp += "plot " + data + " using 1:2:3 with image pixels notitle";
  if (rows * cols <= 400)
    gp += ", '' using 1:2:(sprintf('%.2f', $3)) with labels font ',9' textcolor 'white' notitle";
  figure.draw(gp + "\n");
}

void write_heatmap_panels_svg(const fs::path& svg, const std::vector<HeatmapPanel>& panels,
                              const std::string& title) {
  TORCH_CHECK(!panels.empty(), "a panel figure needs at least one panel");
  GnuplotFigure figure(svg);
  const int64_t columns = std::min<int64_t>(4, panels.size());
  const int64_t rows = (static_cast<int64_t>(panels.size()) + columns - 1) / columns;
  std::string gp = figure.terminal(static_cast<int>(360 * columns), static_cast<int>(340 * rows));
  gp += std::string(kPalette) + "unset key\nset size ratio -1\n";
  gp += fmt::format("set multiplot layout {},{} title {}\n", rows, columns, gnuplot_quoted(title));
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const auto& m = panels[i].matrix;
    const std::string data = figure.data_file(fmt::format("panel{}.dat", i), matrix_data(m));
    gp += "set title " + gnuplot_quoted(panels[i].title) + "\n";
    gp += ranges(m.size(0), m.size(1));
    gp += "plot " + data + " using 1:2:3 with image pixels notitle\n";
  }
  figure.draw(gp + "unset multiplot\n");
}

void write_line_plot_svg(const fs::path& svg, const std::vector<LineSeries>& series,
                         const LinePlotLabels& labels) {
  TORCH_CHECK(!series.empty(), "a line plot needs at least one series");
  GnuplotFigure figure(svg);
  std::string gp = figure.terminal(720, 440);
  gp += "set title " + gnuplot_quoted(labels.title) + "\n";
  gp += "set xlabel " + gnuplot_quoted(labels.x_label) + "\n";
  gp += "set ylabel " + gnuplot_quoted(labels.y_label) + "\n";
  gp += "set key outside right\nset grid\n";
  if (labels.log_y) gp += "set logscale y\n";
  std::string plot = "plot ";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    TORCH_CHECK(s.x.size() == s.y.size(), "line series '", s.title, "': x and y differ in length");
    const bool bars = !s.error.empty();
    TORCH_CHECK(!bars || s.error.size() == s.y.size(), "line series '", s.title,
                "': error bars differ in length");
    std::ostringstream data;
    data.precision(9);
    for (std::size_t k = 0; k < s.x.size(); ++k)
      data << s.x[k] << ' ' << s.y[k] << ' ' << (bars ? s.error[k] : 0.0) << '\n';
    const std::string file = figure.data_file(fmt::format("series{}.dat", i), data.str());
    if (i > 0) plot += ", ";
    plot += file + (bars ? " using 1:2:3 with yerrorlines" : " using 1:2 with linespoints") +
            " lw 2 title " + gnuplot_quoted(s.title);
  }
  figure.draw(gp + plot + "\n");
}

}  // namespace pelab
