#include "report/gnuplot.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace pelab {
namespace fs = std::filesystem;

std::string gnuplot_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

GnuplotFigure::GnuplotFigure(fs::path svg) : svg_(std::move(svg)) {
  static std::atomic<int> counter{0};
  tmp_svg_ = svg_.string() + ".tmp";
  work_ = fs::temp_directory_path() / fmt::format("pelab-plot-{}-{}", getpid(), counter++);
  fs::create_directories(work_);
}

GnuplotFigure::~GnuplotFigure() {
  std::error_code ignored;
  fs::remove_all(work_, ignored);
  fs::remove(tmp_svg_, ignored);
}

std::string GnuplotFigure::data_file(const std::string& name, const std::string& contents) {
  const fs::path file = work_ / name;
  std::ofstream(file) << contents;
  return gnuplot_quoted(file.string());
}

std::string GnuplotFigure::terminal(int width_px, int height_px) const {
  return fmt::format(
      "set terminal svg size {},{} dynamic font 'sans,12' background '#ffffff'\nset output {}\n",
      width_px, height_px, gnuplot_quoted(tmp_svg_.string()));
}

void GnuplotFigure::draw(const std::string& script) {
  const fs::path script_file = work_ / "plot.gp", log_file = work_ / "gnuplot.log";
  std::ofstream(script_file) << script;
  const std::string command =
      fmt::format("gnuplot {} 2> {}", script_file.string(), log_file.string());
  const int status = std::system(command.c_str());
  if (status != 0 || !fs::exists(tmp_svg_)) {
    std::ifstream log(log_file);
    std::string first;
    std::getline(log, first);
    throw std::runtime_error(fmt::format(
        "could not draw '{}' with gnuplot ({}); install Debian's gnuplot-nox (make deps)",
        svg_.string(), first.empty() ? "gnuplot not found or failed" : first));
  }
  fs::rename(tmp_svg_, svg_);
}

}  // namespace pelab
