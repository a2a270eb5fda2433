// layer_knn: latency = a + b * sum over the layer units of a time looked up among the measured
// units of the same op and kind nearest in log-shape (k nearest neighbours).
#include <algorithm>
#include <array>
#include <climits>
#include <cmath>

#include "calib/latency/kinds.hpp"
#include "engine/util/fields.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::calib {

namespace {

constexpr int kNeighbours = 4;
// Weight of the model footprint (log2 bytes) in layer_knn's distance, against 1 per log2 of a
// shape dimension: the same layer runs slower in a model whose data outgrows the caches.
constexpr double kFootprintWeight = 0.5;

// The time of one layer from its nearest measured layers of the same op and kind (of the same op
// when no layer of its kind was measured: *unseen is then set), each moved along the op's
// time-work slope to the layer's work.
double unit_ms(const LatencyModel& m, const LayerUnit& q, bool* unseen, int exclude_model = -1) {
  struct Near {
    double d2;
    const LayerUnit* u;
  };
  std::array<Near, kNeighbours> best{};
  int nb = 0;
  const auto consider = [&](bool same_kind) {
    for (const auto& u : m.table) {
      if (u.op != q.op || (same_kind && u.kind != q.kind)) continue;
      if (exclude_model >= 0 && u.model == exclude_model) continue;
      double d2 = 0;
      for (size_t k = 0; k < q.x.size(); ++k) d2 += (u.x[k] - q.x[k]) * (u.x[k] - q.x[k]);
      const double dc = kFootprintWeight * (u.footprint - q.footprint);
      d2 += dc * dc;
      if (nb < kNeighbours) {
        best[size_t(nb++)] = {d2, &u};
      } else if (d2 < best[kNeighbours - 1].d2) {
        best[kNeighbours - 1] = {d2, &u};
      } else {
        continue;
      }
      for (int j = nb - 1; j > 0 && best[size_t(j)].d2 < best[size_t(j - 1)].d2; --j)
        std::swap(best[size_t(j)], best[size_t(j - 1)]);
    }
  };
  consider(true);
  if (nb == 0) {
    if (unseen) *unseen = true;
    consider(false);
  }
  if (nb == 0) return 0;
  auto it = m.slope.find(slope_key(q.op, q.kind));
  if (it == m.slope.end()) it = m.slope.find(slope_key(q.op, -1));
  const double slope = it == m.slope.end() ? 1.0 : it->second;
  double sw = 0, sl = 0;
  for (int j = 0; j < nb; ++j) {
    const LayerUnit& u = *best[size_t(j)].u;
    const double w = 1 / (best[size_t(j)].d2 + 0.02);
    sl += w * (std::log2(u.ms + kEpsMs) + slope * (q.log_work - u.log_work));
    sw += w;
  }
  return std::max(std::exp2(sl / sw) - kEpsMs, 0.0);
}

}  // namespace

void fit_layer_knn(LatencyModel& m, std::span<const ModelFeatures> x, std::span<const double> y) {
  std::vector<size_t> rows;
  m.table = scaled_layers(m, x, y, rows);
  // Per (op, kind), and per op for kinds with few layers, the least-squares slope of log time on
  // log work, kept in [0, 1.5].
  std::map<int64_t, std::vector<std::pair<double, double>>> pts;
  for (const auto& u : m.table) {
    const std::pair<double, double> pt{u.log_work, std::log2(u.ms + kEpsMs)};
    pts[slope_key(u.op, u.kind)].push_back(pt);
    pts[slope_key(u.op, -1)].push_back(pt);
  }
  for (const auto& [key, v] : pts) {
    double mx = 0, my = 0;
    for (const auto& [a, b] : v) mx += a, my += b;
    mx /= double(v.size());
    my /= double(v.size());
    double sxy = 0, sxx = 0;
    for (const auto& [a, b] : v) sxy += (a - mx) * (b - my), sxx += (a - mx) * (a - mx);
    if (v.size() >= 8 && sxx > 1) m.slope[key] = std::clamp(sxy / sxx, 0.0, 1.5);
  }
  // What the neighbours get wrong on average: every fitted model predicted from the other
  // models' layers (as a new model will be); b is the median ratio of measured to predicted
  // (robust to the few models whose layers have no close neighbour).
  std::vector<double> ratio;
  for (size_t r : rows) {
    double sum = 0;
    for (const auto& u : x[r].units) sum += unit_ms(m, u, nullptr, int(r));
    if (sum > 0) ratio.push_back((y[r] - m.a_ms) / sum);
  }
  if (!ratio.empty()) {
    std::nth_element(ratio.begin(), ratio.begin() + long(ratio.size() / 2), ratio.end());
    if (ratio[ratio.size() / 2] > 0) m.b = ratio[ratio.size() / 2];
  }
  for (auto& u : m.table) u.model = -1;
}

double layer_knn_ms(const LatencyModel& m, const ModelFeatures& x) {
  double s = 0;
  for (const auto& u : x.units) s += unit_ms(m, u, nullptr);
  return std::max(m.a_ms + m.b * s, 1e-6);
}

void warn_layer_knn(const LatencyModel& m, const ModelFeatures& x, std::vector<std::string>& out) {
  int unseen = 0;
  for (const auto& u : x.units) {
    bool miss = false;
    (void)unit_ms(m, u, &miss);
    unseen += miss;
  }
  warn_unseen_layers(unseen, out);
}

void layer_knn_to_json(const LatencyModel& m, nlohmann::json& j) {
  // One row per measured layer: op, kind, x[6], log2 work, footprint, milliseconds.
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& u : m.table)
    rows.push_back({u.op, u.kind, u.x[0], u.x[1], u.x[2], u.x[3], u.x[4], u.x[5], u.log_work,
                    u.footprint, u.ms});
  j["layers"] = std::move(rows);
  nlohmann::json slopes = nlohmann::json::array();
  for (const auto& [op, v] : m.slope) slopes.push_back({op, v});
  j["slopes"] = std::move(slopes);
  j["a_ms"] = m.a_ms;
  j["b"] = m.b;
}

void layer_knn_from_json(const nlohmann::json& j, const std::string& origin, LatencyModel& m) {
  for (const auto& row : j.at("layers")) {
    if (!row.is_array() || row.size() != 11)
      fail(origin, ": a layer_knn layer row needs 11 numbers; fit it again");
    if (!fields::integer_in(row[0], 0, kNumOps - 1) || !fields::integer_in(row[1], 0, INT32_MAX))
      fail(origin, ": a layer_knn layer row has a bad op or kind; fit it again");
    LayerUnit u;
    u.op = row[0].get<int>();
    u.kind = row[1].get<int>();
    for (size_t k = 0; k < u.x.size(); ++k) u.x[k] = row[2 + k].get<double>();
    u.log_work = row[8].get<double>();
    u.footprint = row[9].get<double>();
    u.ms = row[10].get<double>();
    if (!(u.ms >= 0)) fail(origin, ": a layer_knn layer row is out of range; fit it again");
    m.table.push_back(u);
  }
  for (const auto& s : j.at("slopes")) m.slope[s.at(0).get<int64_t>()] = s.at(1).get<double>();
  m.a_ms = j.at("a_ms").get<double>();
  m.b = j.at("b").get<double>();
  if (m.table.empty()) fail(origin, ": the layer_knn model has no layers; fit it again");
}

}  // namespace iotnas::calib
