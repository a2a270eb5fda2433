// The backend seam. A backend turns a graph and its plan (engine/plan.hpp) into an Executable:
// the steps of every node, in its own layouts and kernels. Everything around the steps (copying
// the input in, calling the activation hook where the plan says, walking the nodes forward and
// backward, caching per batch size) is engine/program.cpp's, once for all backends.
//
// The registry has one row per backend; `iotnas info`, `--backend`, the
// tests (every op on every usable backend) and the benchmarks all read it. Adding a backend is
// one folder (engine/<name>/: program.cpp with its row and one file per op family) and one line
// in engine/backend.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "engine/plan.hpp"

namespace iotnas {

enum class BackendKind { portable, dnnl, cuda };

// An activation map as the hook sees it: `count` floats in the backend's layout (padding lanes
// of blocked layouts included; they are zero and must stay zero).
struct MapView {
  float* data = nullptr;
  int64_t count = 0;
};

// The buffers a program reads and writes; owned by the caller, sized by the graph.
struct ProgramBuffers {
  const float* params = nullptr;  // [num_params]; read at every forward (may change in between)
  float* grads = nullptr;         // [num_params]; train: overwritten by backward
  float* state = nullptr;         // [num_state]; train: running stats updated by forward
};

// One graph on one backend, for batches of up to `capacity` images. The program (engine/
// program.cpp) calls, per forward: input(n), then forward(i) for i = 1..N-1 in order (and map(i)
// when it hooks node i); per backward: dlogits(), then backward(i) for i = N-1..1.
class Executable {
 public:
  virtual ~Executable() = default;
  // Prepares a pass over n <= capacity images; returns where the n input images go, NCHW.
  virtual float* input(int n) = 0;
  // Runs node i's forward steps; false when the node has none (a view, a fused relu).
  virtual bool forward(int node) = 0;
  // Node i's output map after forward(i).
  virtual MapView map(int node) = 0;
  // [n, classes] after the last node's forward, row-major.
  virtual const float* logits() = 0;
  // Training: where dL/dlogits [n, classes] go before backward(N-1).
  virtual float* dlogits() = 0;
  // Training: node i's backward steps (gradients of its inputs and parameters).
  virtual void backward(int node) = 0;
  // Inference executables may keep parameters repacked: called after buffers.params changed.
  virtual void params_changed() {}
  // The kernel behind each step, "<layer>: <kernel>" in the order built ("ref" marks slow
  // reference kernels).
  virtual std::vector<std::string> implementations() const { return {}; }
};

struct BuildArgs {
  const Graph& graph;
  const ExecPlan& plan;
  int capacity = 1;
  ProgramBuffers buffers;
};

struct Backend {
  BackendKind kind;
  const char* name;     // "portable", "dnnl", "cuda": what --backend takes
  bool built = false;   // compiled into this binary
  bool usable = false;  // built and able to run models on this machine
  std::string version;  // e.g. oneDNN "2.6.3"
  std::string why_not;  // when !usable: the reason, e.g. "no CUDA device"
  int auto_rank = 0;    // "auto" takes the usable backend of lowest rank
  // Builds a graph's executable (throws iotnas::Error naming the model when it cannot); null
  // when !usable.
  std::unique_ptr<Executable> (*build)(const BuildArgs&) = nullptr;
};

// Every backend (portable, dnnl, cuda).
const std::vector<Backend>& backends();
const Backend& backend_info(BackendKind kind);
// The backends that can run models here, in registry order (tests and benchmarks loop over it).
std::vector<BackendKind> usable_backends();
const char* backend_name(BackendKind kind);
inline std::ostream& operator<<(std::ostream& os, BackendKind kind) {
  return os << backend_name(kind);
}
// "auto" (the usable backend of lowest auto_rank) or a backend's name. Throws iotnas::Error for an
// unknown or unusable name, saying why and what is available.
BackendKind parse_backend(const std::string& name);

// Each backend's row (engine/<name>/program.cpp).
Backend portable_backend();
Backend dnnl_backend();
Backend cuda_backend();

}  // namespace iotnas
