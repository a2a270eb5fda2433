// The report's plots: each front's points as gnuplot data, drawn to SVG and PNG.
#include <cctype>
#include <filesystem>

#include "apps/report/internal.hpp"
#include "engine/util/files.hpp"
#include "engine/util/plot.hpp"

namespace iotnas::apps {

namespace {

std::string slug(const std::string& name) {
  std::string o;
  for (char c : name) o += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return o;
}

}  // namespace

bool have_gnuplot() {
  return !find_gnuplot().empty();
}

std::string detail::plot_fronts(const std::string& dir, const std::string& name,
                                const std::string& title, const std::string& xlabel,
                                const Results& r, const std::vector<const NamedFront*>& fronts,
                                bool background) {
  namespace fs = std::filesystem;
  const fs::path plots = fs::path(dir) / "plots";
  fs::create_directories(plots);
  std::string script = "set terminal svg size 900,560 dynamic\nset output '" +
                       (plots / (name + ".svg")).string() + "'\nset title '" + title +
                       "'\nset xlabel '" + xlabel +
                       "'\nset ylabel 'accuracy (%)'\nset logscale x\nset key bottom right\n"
                       "set grid\n";
  std::string plot = "plot ";
  if (background) {
    std::string data;
    for (const auto& c : r.candidates)
      data += std::to_string(c.weight_bytes) + " " + fmt("%.4f", c.accuracy * 100) + "\n";
    write_file_atomic((plots / (name + "_all.dat")).string(), data);
    plot += "'" + (plots / (name + "_all.dat")).string() +
            "' using 1:2 with points pt 7 ps 0.3 lc rgb '#cccccc' title 'all (model, format)', ";
  }
  for (size_t k = 0; k < fronts.size(); ++k) {
    std::string data;
    for (int i : fronts[k]->points) {
      const auto& c = r.candidates[i];
      data += fmt("%.6g", search::cost_value(c, fronts[k]->cost)) + " " +
              fmt("%.4f", c.accuracy * 100) + "\n";
    }
    const fs::path file = plots / (name + "_" + slug(fronts[k]->name) + ".dat");
    write_file_atomic(file.string(), data);
    std::string label = fronts[k]->name.substr(fronts[k]->name.find(':') + 1);
    const std::string lc = " lc " + std::to_string(k + 1);
    plot += "'" + file.string() + "' using 1:2 with steps lw 2" + lc + " title '" + label + "', '" +
            file.string() + "' using 1:2 with points pt 7" + lc + " notitle";
    plot += k + 1 < fronts.size() ? ", " : "\n";
  }
  if (fronts.empty()) return "";
  script += plot;
  script += "set terminal pngcairo size 900,560\nset output '" +
            (plots / (name + ".png")).string() + "'\nreplot\n";
  const fs::path gp = plots / (name + ".gp");
  write_file_atomic(gp.string(), script);
  if (!run_gnuplot(find_gnuplot(), plots.string(), gp.string()).empty()) return "";
  return "plots/" + name + ".svg";
}

}  // namespace iotnas::apps
