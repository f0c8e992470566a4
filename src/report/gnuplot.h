// Running gnuplot (Debian's gnuplot-nox) to draw one SVG: a private scratch folder for the data
// files and the script, and an atomic write of the figure. Every figure of pelab goes through here.
#pragma once

#include <filesystem>
#include <string>

namespace pelab {

// gnuplot strings are single-quoted; a quote inside is doubled.
std::string gnuplot_quoted(const std::string& text);

class GnuplotFigure {
 public:
  explicit GnuplotFigure(std::filesystem::path svg);
  ~GnuplotFigure();
  GnuplotFigure(const GnuplotFigure&) = delete;
  GnuplotFigure& operator=(const GnuplotFigure&) = delete;

  // Writes `contents` to a data file in the scratch folder and returns its path, quoted for use
  // in a plot command.
  std::string data_file(const std::string& name, const std::string& contents);
  // The terminal line (SVG, white background, sans font) with the output set to the temporary
  // figure; the script passed to draw() should start with it.
  std::string terminal(int width_px, int height_px) const;
  // Runs `script` and renames the figure into place. Throws std::runtime_error naming the figure
  // and gnuplot's first error line when gnuplot is missing or fails.
  void draw(const std::string& script);

 private:
  std::filesystem::path svg_, tmp_svg_, work_;
};

}  // namespace pelab
