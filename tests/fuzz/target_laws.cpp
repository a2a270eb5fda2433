// Laws files (search/law.cpp): parse, write back and parse again, and draw a few models from
// the laws as `iotnas sample` does.
#include "fuzz/fuzz_target.hpp"
#include "kernels/base/error.hpp"
#include "search/law.hpp"

IOTNAS_FUZZ_TARGET(laws) {
  using namespace iotnas;
  const search::LawSet set = search::parse_laws(fuzz::as_text(data), "fuzz-laws.json");
  try {
    search::parse_laws(search::laws_to_json(set), "round trip");
  } catch (const Error&) {
    fuzz::finding("the laws file laws_to_json writes does not parse");
  }
  const search::Space& space = search::find_space(set.space);
  search::SampleOptions o;
  if (set.input) o.input = *set.input;
  o.classes = set.classes;
  o.with_specs = true;
  search::sample_laws(space, set.laws, 3, o);
}
