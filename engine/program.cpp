#include "engine/program.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/base/error.hpp"

namespace iotnas {

namespace {

// Every map of a batch must be addressable here: a 32-bit machine (the Pi's armhf build) has a
// 4 GiB address space, and size_t arithmetic there wraps at 2^32.
void check_addressable(const Graph& graph, int batch) {
  for (const Node& n : graph.nodes) {
    size_t bytes = 0;
    if (__builtin_mul_overflow(size_t(batch), size_t(n.out.size()), &bytes) ||
        __builtin_mul_overflow(bytes, sizeof(float), &bytes) || bytes > size_t(PTRDIFF_MAX)) {
      fail("layer '", n.layer.name, "': a batch of ", batch, " maps of ", n.out.size(),
           " floats is more than this machine can address; use a smaller batch or model");
    }
  }
}

}  // namespace

Program::Program(const Graph& graph, const ProgramOptions& options, const ProgramBuffers& buffers)
    : graph_(graph), options_(options), plan_(make_plan(graph, options.mode)) {
  IOTNAS_ASSERT(options.batch >= 1);
  check_addressable(graph, options.batch);
  const Backend& b = backend_info(options.backend);
  if (!b.usable || !b.build) fail("backend '", b.name, "' cannot run here: ", b.why_not);
  exe_ = b.build({graph, plan_, options.batch, buffers});
}

void Program::set_hook(ActivationHook hook, HookScope scope) {
  IOTNAS_ASSERT(options_.mode == Mode::infer, "hooks are for inference programs");
  hook_ = std::move(hook);
  scope_ = scope;
}

void Program::forward(const float* input, int n) {
  IOTNAS_ASSERT(n >= 1 && n <= options_.batch, "batch exceeds the program's capacity");
  n_ = n;
  float* in = exe_->input(n);
  const int64_t in_count = int64_t(n) * graph_.input.size();
  std::memcpy(in, input, sizeof(float) * size_t(in_count));
  if (hook_) hook_(0, in, in_count);
  for (size_t i = 1; i < graph_.nodes.size(); ++i) {
    const NodePlan& p = plan_.nodes[i];
    if (!exe_->forward(int(i)) || !hook_ || !p.hookable) continue;
    if (scope_ == HookScope::computed_maps && p.skip_computed) continue;
    const MapView m = exe_->map(int(i));
    hook_(p.hook_id, m.data, m.count);
  }
}

void Program::backward(const float* dlogits) {
  IOTNAS_ASSERT(options_.mode == Mode::train && n_ > 0, "backward needs a training forward first");
  std::memcpy(exe_->dlogits(), dlogits,
              sizeof(float) * size_t(n_) * size_t(graph_.output().out.size()));
  for (size_t i = graph_.nodes.size() - 1; i >= 1; --i) exe_->backward(int(i));
}

std::unique_ptr<Program> compile(const Graph& graph, const ProgramOptions& options,
                                 const ProgramBuffers& buffers) {
  return std::make_unique<Program>(graph, options, buffers);
}

}  // namespace iotnas
