#include "report/heatmap.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace pelab {
namespace fs = std::filesystem;

namespace {

// gnuplot strings are single-quoted; a quote inside is doubled.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

void write_heatmap_svg(const fs::path& svg, const torch::Tensor& matrix,
                       const HeatmapLabels& labels) {
  TORCH_CHECK(matrix.dim() == 2, "heatmap needs a 2-d matrix, got ", matrix.sizes());
  const auto values = matrix.to(torch::kDouble).contiguous();
  const int64_t rows = values.size(0), cols = values.size(1);
  const fs::path work = fs::temp_directory_path() / fmt::format("pelab-heatmap-{}", getpid());
  fs::create_directories(work);
  const fs::path data = work / "matrix.dat", script = work / "plot.gp";
  const fs::path tmp_svg = svg.string() + ".tmp";
  {
    std::ofstream out(data);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        out << c << ' ' << r << ' ' << values[r][c].item<double>() << '\n';
  }
  {
    std::ofstream gp(script);
    gp << "set terminal svg size " << std::max<int64_t>(640, 60 * cols + 200) << ","
       << std::max<int64_t>(320, 50 * rows + 160)
       << " dynamic font 'sans,12' background '#ffffff'\n"
       << "set output " << quoted(tmp_svg.string()) << "\n"
       << "set title " << quoted(labels.title) << "\n"
       << "set xlabel " << quoted(labels.x_label) << "\nset ylabel " << quoted(labels.y_label)
       << "\n"
       << "set cblabel " << quoted(labels.value_label) << "\n"
       << "set xrange [-0.5:" << cols - 0.5 << "]\nset yrange [" << rows - 0.5 << ":-0.5]\n"
       << "set xtics 1\nset ytics 1\nset palette defined (0 '#2b0a57', 0.5 '#d9485f', 1 "
          "'#fde68a')\n"
       << "plot " << quoted(data.string()) << " using 1:2:3 with image pixels notitle";
    if (rows * cols <= 400)
      gp << ", '' using 1:2:(sprintf('%.2f', $3)) with labels font ',9' textcolor 'white' notitle";
    gp << "\n";
  }
  const std::string command =
      fmt::format("gnuplot {} 2> {}", script.string(), (work / "gnuplot.log").string());
  const int status = std::system(command.c_str());
  if (status != 0 || !fs::exists(tmp_svg)) {
    std::ifstream log(work / "gnuplot.log");
    std::string first;
    std::getline(log, first);
    fs::remove_all(work);
    fs::remove(tmp_svg);
    throw std::runtime_error(fmt::format(
        "could not draw '{}' with gnuplot ({}); install Debian's gnuplot-nox (make deps)",
        svg.string(), first.empty() ? "gnuplot not found or failed" : first));
  }
  fs::rename(tmp_svg, svg);
  fs::remove_all(work);
}

}  // namespace pelab
