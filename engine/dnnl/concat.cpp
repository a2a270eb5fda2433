// Data movement on oneDNN: concat along channels (channels-last maps by a plain copy loop) and
// flatten (a view when only dense layers read it, else a reorder to plain NCHW).

#include <omp.h>

#include "engine/dnnl/emit.hpp"

namespace iotnas::onednn {

void emit_concat(Net& x, int i) {
  const auto [node, r, src] = x.at(i);
  std::vector<memory::desc> mds;
  Args args = x.sources(i, mds);
  // Channels-last inputs (batch 1: every convolution's choice) get a channels-last output. Left
  // to choose, oneDNN 2.6 picks an N-H-C-W layout (acbd) for maps of 7x7 and 14x14, on which the
  // pooling after an Inception block has only its reference kernel: 73-120 us instead of 1.
  bool channels_last = true;
  for (const auto& md : mds) channels_last &= md == memory::desc(md.dims(), dt::f32, tag::nhwc);
  const memory::desc nhwc_out({x.n_, node.out.c, node.out.h, node.out.w}, dt::f32, tag::nhwc);
  if (channels_last) {
    // A channels-last concat copies each pixel's channel runs. oneDNN's generic kernel pays about
    // 7 ns per run (21 us for 4 inputs at 28x28); a plain loop pays less.
    memory dst = x.new_mem(nhwc_out);
    std::vector<memory> srcs;
    std::vector<int> channels;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      srcs.push_back(x.rt_[node.inputs[k]].out);
      channels.push_back(x.g_.nodes[node.inputs[k]].out.c);
    }
    const int64_t pixels = int64_t(x.n_) * node.out.h * node.out.w;
    const int c_out = node.out.c;
    std::vector<const float*> from(srcs.size());
    r.fwd.push_back([dst, srcs, channels, pixels, c_out, from]() mutable {
      float* d = static_cast<float*>(dst.get_data_handle());
      for (size_t k = 0; k < srcs.size(); ++k)
        from[k] = static_cast<const float*>(srcs[k].get_data_handle());
      // Pixel by pixel: the output is written once, in order; the runs are short (a few to a
      // few dozen floats), so a plain loop beats a memcpy call per run. noexcept: it runs inside
      // a parallel region, which no exception may leave.
      auto copy = [&](int64_t p0, int64_t p1) noexcept {
        for (int64_t p = p0; p < p1; ++p) {
          float* o = d + p * c_out;
          for (size_t k = 0; k < from.size(); ++k) {
            const int c = channels[k];
            const float* src = from[k] + p * c;
            for (int j = 0; j < c; ++j) o[j] = src[j];
            o += c;
          }
        }
      };
      if (pixels * c_out < (1 << 16)) {
        copy(0, pixels);  // batch 1: no parallel region (entering one costs more than the copy)
        return;
      }
#pragma omp parallel
      {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        copy(pixels * t / nt, pixels * (t + 1) / nt);
      }
    });
    x.set_output(i, dst);
  } else {
    dnnl::concat::primitive_desc pd(1, mds, x.eng_);
    memory dst = x.new_mem(pd.dst_desc());
    args[DNNL_ARG_DST] = dst;
    r.fwd.push_back(x.exec(dnnl::concat(pd), args));
    x.set_output(i, dst);
  }
  if (!x.train_) return;
  // Split the gradient through a plain copy (sub-memories of blocked layouts need aligned
  // channel offsets).
  memory flat = x.as_layout(r.grad, x.plain(node.out), r.bwd);
  int offset = 0;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    const Shape s = x.g_.nodes[node.inputs[k]].out;
    if (node.inputs[k] != 0) {
      memory::desc part =
          x.plain(node.out).submemory_desc({x.n_, s.c, s.h, s.w}, {0, offset, 0, 0});
      memory view(part, x.eng_, flat.get_data_handle());
      std::vector<Step> after;
      memory t = x.grad_target(i, int(k), x.rt_[node.inputs[k]].md, after);
      Net::append(r.bwd, x.exec(dnnl::reorder(view, t), {{DNNL_ARG_FROM, view}, {DNNL_ARG_TO, t}}),
                  after);
    }
    offset += s.c;
  }
}

void emit_flatten(Net& x, int i) {
  const auto [node, r, src] = x.at(i);
  const int src_node = node.inputs[0];
  bool all_dense = !node.consumers.empty();  // the model's output must be plain
  for (int c : node.consumers) all_dense &= x.g_.nodes[c].layer.op == Op::dense;
  if (all_dense) {
    // Dense layers read the 4-D map directly; flatten is a view.
    r.out = src;
    r.md = src.get_desc();
  } else {
    const memory::desc flat4 = x.plain(node.in);  // same bytes as [n, C*H*W, 1, 1] plain
    memory out = x.new_mem(x.plain(node.out));
    memory view(flat4, x.eng_, out.get_data_handle());
    r.fwd.push_back(x.exec(dnnl::reorder(src, view), {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, view}}));
    r.out = out;
    r.md = out.get_desc();
  }
  if (!x.train_) return;
  x.make_grads(i);
  if (src_node == 0) return;
  std::vector<Step> after;
  memory t = x.grad_target(i, 0, x.rt_[src_node].md, after);
  memory from = all_dense ? r.grad : memory(x.plain(node.in), x.eng_, r.grad.get_data_handle());
  Net::append(r.bwd, x.exec(dnnl::reorder(from, t), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, t}}),
              after);
}

}  // namespace iotnas::onednn
