// Data movement on the portable backend: concat along channels (kernels/portable/concat.cpp) and
// flatten (a view of its input's NCHW map: no forward step; backward hands its gradient on).
#include "engine/portable/emit.hpp"

namespace iotnas::portable {

void emit_concat(Exec& x, int i) {
  const Node& node = x.g_.nodes[size_t(i)];
  std::vector<const float*> srcs;
  std::vector<int> ch;
  for (int in : node.inputs) {
    srcs.push_back(x.out_[size_t(in)]);
    ch.push_back(x.g_.nodes[size_t(in)].out.c);
  }
  float* dst = x.out_[size_t(i)];
  const int hw = node.out.h * node.out.w;
  x.fwd_[size_t(i)].push_back([&x, srcs, ch, dst, hw] {
    pk::concat_fwd(x.n_, hw, int(srcs.size()), srcs.data(), ch.data(), dst);
  });
  if (!x.train_) return;
  const float* g = x.grad_[size_t(i)];
  std::vector<Exec::Target> ts;
  bool any_acc = false, all_acc = true;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    ts.push_back(x.target(i, int(k)));
    any_acc |= ts.back().accumulate;
    all_acc &= ts.back().accumulate;
  }
  // The kernel takes one accumulate flag: inputs whose flag differs (or the image, which needs
  // no gradient) get theirs through a scratch buffer.
  const bool acc = any_acc && all_acc;
  x.bwd_[size_t(i)].push_back([&x, ch, g, ts, acc, hw] {
    std::vector<std::vector<float>> scratch;
    std::vector<float*> dsrcs;
    for (size_t k = 0; k < ts.size(); ++k) {
      if (!ts[k].ptr || ts[k].accumulate != acc) {
        scratch.emplace_back(size_t(x.n_) * ch[k] * hw);
        dsrcs.push_back(scratch.back().data());
      } else {
        dsrcs.push_back(ts[k].ptr);
      }
    }
    pk::concat_bwd(x.n_, hw, int(ts.size()), g, ch.data(), dsrcs.data(), acc);
    for (size_t k = 0; k < ts.size(); ++k)
      if (ts[k].ptr && ts[k].accumulate != acc)
        write_or_add(ts[k].ptr, dsrcs[k], int64_t(x.n_) * ch[k] * hw, ts[k].accumulate);
  });
}

void emit_flatten(Exec& x, int i) {
  if (!x.train_) return;
  const Node& node = x.g_.nodes[size_t(i)];
  const float* g = x.grad_[size_t(i)];
  const Exec::Target t = x.target(i, 0);
  if (!t.ptr) return;
  x.bwd_[size_t(i)].push_back(
      [&x, &node, g, t] { write_or_add(t.ptr, g, x.count(node), t.accumulate); });
}

}  // namespace iotnas::portable
