// The op -> emitter table every backend builds its steps with. A backend whose build state is X
// (its executable or per-batch net) defines, in its own namespace, emit_<op>(X&, int node) for
// each op it computes; the table finds them by argument-dependent lookup, so the list of ops is
// written once, here, and an op a backend lacks is null in its table: emit_nodes refuses a model
// using it, naming the op and the backend. What a backend supports and what it runs come from
// the same functions.
#pragma once

#include <array>
#include <cstddef>

#include "engine/graph.hpp"
#include "kernels/base/error.hpp"

namespace iotnas {

template <typename X>
using Emitter = void (*)(X&, int);

template <typename X>
constexpr std::array<Emitter<X>, kNumOps> emitter_table() {
  std::array<Emitter<X>, kNumOps> t{};
  // For each op: its emitter when the backend declares emit_<op>(X&, int).
#define IOTNAS_EMITTER(op)                            \
  if constexpr (requires(X & x) { emit_##op(x, 0); }) \
    t[size_t(Op::op)] = [](X& x, int i) { emit_##op(x, i); };
  IOTNAS_EMITTER(conv2d)
  IOTNAS_EMITTER(batch_norm)
  IOTNAS_EMITTER(relu)
  IOTNAS_EMITTER(max_pool)
  IOTNAS_EMITTER(avg_pool)
  IOTNAS_EMITTER(global_avg_pool)
  IOTNAS_EMITTER(add)
  IOTNAS_EMITTER(concat)
  IOTNAS_EMITTER(flatten)
  IOTNAS_EMITTER(dense)
#undef IOTNAS_EMITTER
  return t;
}

// Emits the steps of nodes 1.. of `graph` into x, in order (node 0, the input, has none).
template <typename X>
void emit_nodes(X& x, const Graph& graph, const char* backend) {
  static constexpr auto table = emitter_table<X>();
  for (size_t i = 1; i < graph.nodes.size(); ++i) {
    const Op op = graph.nodes[i].layer.op;
    const Emitter<X> e = table[size_t(op)];
    if (!e)
      fail("model '", graph.name, "': the ", backend, " backend has no kernel for ", op_name(op));
    if constexpr (requires { x.building(0); }) x.building(int(i));  // for its error messages
    e(x, int(i));
  }
}

}  // namespace iotnas
