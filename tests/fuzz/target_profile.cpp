// Device profiles (calib/profile.cpp) with their fitted latency model (the boosted-tree reader
// among them): parse, write back and parse again, and predict the latency of the profile's own
// models as `iotnas calib predict` would.
#include "calib/fit.hpp"
#include "calib/latency_model.hpp"
#include "calib/profile.hpp"
#include "fuzz/fuzz_target.hpp"
#include "kernels/base/error.hpp"

IOTNAS_FUZZ_TARGET(profile) {
  using namespace iotnas;
  const calib::Profile p = calib::parse_profile(fuzz::as_text(data), "fuzz-profile.json");
  try {
    calib::parse_profile(calib::profile_to_json(p).dump(), "round trip");
  } catch (const Error&) {
    fuzz::finding("the profile profile_to_json writes does not parse");
  }
  if (p.fit.is_null()) return;
  const calib::LatencyModel m = calib::fitted_model(p, "fuzz-profile.json");
  for (const calib::ProfileModel& pm : p.models) {
    calib::predict(m, calib::model_features(pm.spec, pm.space));
  }
}
