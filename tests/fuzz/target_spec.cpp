// The model spec parser and shape inference, as `iotnas spec FILE` runs them: parse, build the
// graph, its analytics and the batch norms it folds; a spec that parses writes JSON that parses
// to the same spec.
#include "engine/graph.hpp"
#include "engine/spec.hpp"
#include "fuzz/fuzz_target.hpp"
#include "kernels/base/error.hpp"

IOTNAS_FUZZ_TARGET(spec) {
  using namespace iotnas;
  const ModelSpec spec = parse_spec(fuzz::as_text(data), "fuzz.json");
  const std::string text = spec_to_json(spec);
  try {
    if (spec_to_json(parse_spec(text, "round trip")) != text) {
      fuzz::finding("spec_to_json, parsed again, writes another spec");
    }
  } catch (const Error& e) {
    fuzz::finding("the JSON spec_to_json writes does not parse");
  }
  const Graph g = build_graph(spec);
  analyze(g);
  foldable_batch_norms(g);
}
