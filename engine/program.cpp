#include "engine/program.hpp"

#include "kernels/base/error.hpp"

namespace iotnas {

std::vector<bool> hook_skips(const Graph& g) {
  const size_t count = g.nodes.size();
  std::vector<bool> skip(count, false);
  std::vector<bool> seen(count, false);  // the map holds only values the hook has seen
  seen[0] = true;
  for (size_t i = 1; i < count; ++i) {
    const Node& n = g.nodes[i];
    const Op op = n.layer.op;
    const bool selects =
        op == Op::relu || op == Op::max_pool || op == Op::concat || op == Op::flatten;
    bool inputs_seen = true;
    for (int in : n.inputs) inputs_seen = inputs_seen && seen[in];
    if (selects && inputs_seen) {
      skip[i] = true;
    }
    seen[i] = true;
  }
  return skip;
}

std::unique_ptr<Program> compile(const Graph& graph, const ProgramOptions& options,
                                 const ProgramBuffers& buffers) {
  const auto& info = kernels::backend_info(options.backend);
  if (!info.usable) fail("backend '", info.name, "' cannot run here: ", info.why_not);
  switch (options.backend) {
    case kernels::BackendKind::portable:
      return compile_portable(graph, options, buffers);
    case kernels::BackendKind::dnnl:
      return compile_dnnl(graph, options, buffers);
    case kernels::BackendKind::cuda:
      break;
  }
  fail("backend '", info.name,
       "' cannot run models yet (rounding kernels only); use --backend auto");
}

}  // namespace iotnas
