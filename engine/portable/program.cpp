// The portable executable: buffers from the plan, the op -> emitter table, the registry row.
#include <cstring>

#include "engine/emitters.hpp"
#include "engine/portable/emit.hpp"
#include "iotnas/config.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::portable {

namespace {

std::unique_ptr<Executable> build(const BuildArgs& a) {
  return std::make_unique<Exec>(a);
}

}  // namespace

Exec::Exec(const BuildArgs& a)
    : g_(a.graph),
      plan_(a.plan),
      buf_(a.buffers),
      cap_(a.capacity),
      train_(a.plan.mode == Mode::train) {
  const size_t count = g_.nodes.size();
  out_.assign(count, nullptr);
  if (train_) {  // every map is kept for the backward pass
    storage_.resize(count);
    for (size_t i = 0; i < count; ++i)
      if (plan_.nodes[i].storage == int(i))
        storage_[i].assign(size_t(cap_) * g_.nodes[i].out.size(), 0.f);
    for (size_t i = 0; i < count; ++i) out_[i] = storage_[size_t(plan_.nodes[i].storage)].data();
    // One gradient per node; a relu applied by its pool shares its producer's.
    grad_storage_.resize(count);
    grad_.assign(count, nullptr);
    for (size_t i = 1; i < count; ++i) {
      if (plan_.nodes[i].relu_after_pool) continue;
      grad_storage_[i].assign(size_t(cap_) * g_.nodes[i].out.size(), 0.f);
      grad_[i] = grad_storage_[i].data();
    }
    for (size_t i = 1; i < count; ++i)
      if (plan_.nodes[i].relu_after_pool) grad_[i] = grad_[size_t(g_.nodes[i].inputs[0])];
  } else {  // maps whose readers have all run give their slot to later maps
    storage_.resize(plan_.slots.size());
    for (size_t s = 0; s < plan_.slots.size(); ++s)
      storage_[s].assign(size_t(cap_) * plan_.slots[s], 0.f);
    for (size_t i = 0; i < count; ++i)
      out_[i] = storage_[size_t(plan_.nodes[size_t(plan_.nodes[i].storage)].slot)].data();
  }
  fwd_.resize(count);
  bwd_.resize(count);
  emit_nodes(*this, g_, "portable");
}

bool Exec::forward(int node) {
  auto& steps = fwd_[size_t(node)];
  for (auto& s : steps) s();
  return !steps.empty();
}

void Exec::backward(int node) {
  for (auto& s : bwd_[size_t(node)]) s();
}

MapView Exec::map(int node) {
  return {out_[size_t(node)], count(g_.nodes[size_t(node)])};
}

Exec::Target Exec::target(int i, int k) const {
  const int in = g_.nodes[size_t(i)].inputs[size_t(k)];
  if (in == 0) return {};
  return {grad_[size_t(in)], plan_.accumulates(in, i, k)};
}

kernels::ConvShape Exec::conv_shape(const Node& node) const {
  const Layer& l = node.layer;
  kernels::ConvShape s;
  s.n = n_;
  s.c_in = node.in.c, s.h_in = node.in.h, s.w_in = node.in.w;
  s.c_out = node.out.c, s.h_out = node.out.h, s.w_out = node.out.w;
  s.kh = l.kernel_h, s.kw = l.kernel_w, s.sh = l.stride_h, s.sw = l.stride_w;
  s.ph = l.pad_h, s.pw = l.pad_w, s.groups = l.groups;
  return s;
}

kernels::PoolShape Exec::pool_shape(const Node& node) const {
  const Layer& l = node.layer;
  kernels::PoolShape s;
  s.n = n_, s.c = node.in.c, s.h_in = node.in.h, s.w_in = node.in.w;
  s.h_out = node.out.h, s.w_out = node.out.w;
  s.kh = l.kernel_h, s.kw = l.kernel_w, s.sh = l.stride_h, s.sw = l.stride_w;
  s.ph = l.pad_h, s.pw = l.pad_w;
  return s;
}

void write_or_add(float* dst, const float* g, int64_t count, bool accumulate) {
  if (accumulate) {
    const float* srcs[2] = {dst, g};
    pk::add_fwd(count, 2, srcs, dst);
  } else {
    std::memcpy(dst, g, sizeof(float) * size_t(count));
  }
}

}  // namespace iotnas::portable

namespace iotnas {

Backend portable_backend() {
  return {BackendKind::portable, "portable", true, true, IOTNAS_VERSION, "", 2, portable::build};
}

}  // namespace iotnas
