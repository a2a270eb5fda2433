// The oneDNN executable: a Net per batch size, the Net's layout helpers, the op -> emitter table
// and the registry row.
#include <cstring>
#include <map>
#include <memory>

#include "engine/dnnl/emit.hpp"
#include "engine/emitters.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::onednn {

namespace {

// Sum of a node's edge gradients into its gradient, first in its backward steps.
void prepend_edge_sum(Net::NodeRt& r, const dnnl::engine& eng, dnnl::stream& strm) {
  if (r.edges.empty()) return;
  std::vector<memory::desc> mds;
  std::vector<float> scales(r.edges.size(), 1.f);
  for (const auto& e : r.edges) mds.push_back(e.get_desc());
  dnnl::sum::primitive_desc pd(r.grad.get_desc(), scales, mds, eng);
  Args args{{DNNL_ARG_DST, r.grad}};
  for (size_t k = 0; k < r.edges.size(); ++k) args[DNNL_ARG_MULTIPLE_SRC + int(k)] = r.edges[k];
  dnnl::sum p(pd);
  r.bwd.insert(r.bwd.begin(), [p, args, &strm]() { p.execute(strm, args); });
}

// A Net per batch size seen (a training run sees its batch and the last, shorter one).
class Exec final : public Executable {
 public:
  explicit Exec(const BuildArgs& a)
      : args_(a),
        eng_(dnnl::engine::kind::cpu, 0),
        strm_(eng_),
        train_(a.plan.mode == Mode::train) {
    net(a.capacity);
  }
  float* input(int n) override {
    current_ = &net(n);
    if (!current_->weights_ready_ || train_) {
      for (auto& s : current_->weight_steps_) s();
      current_->weights_ready_ = true;
    }
    return static_cast<float*>(current_->rt_[0].out.get_data_handle());
  }
  bool forward(int node) override {
    auto& steps = current_->rt_[size_t(node)].fwd;
    for (auto& s : steps) s();
    return !steps.empty();
  }
  MapView map(int node) override {
    const auto& r = current_->rt_[size_t(node)];
    return {static_cast<float*>(r.out.get_data_handle()), int64_t(r.md.get_size() / sizeof(float))};
  }
  const float* logits() override {
    return static_cast<const float*>(current_->rt_.back().out.get_data_handle());
  }
  float* dlogits() override {
    return static_cast<float*>(current_->rt_.back().grad.get_data_handle());
  }
  void backward(int node) override {
    for (auto& s : current_->rt_[size_t(node)].bwd) s();
  }
  void params_changed() override {
    for (auto& [n, net] : nets_) net->weights_ready_ = false;
  }
  std::vector<std::string> implementations() const override {
    if (current_) return current_->impls_;
    auto it = nets_.find(args_.capacity);
    return it == nets_.end() ? std::vector<std::string>{} : it->second->impls_;
  }

 private:
  Net& net(int n) {
    auto it = nets_.find(n);
    if (it != nets_.end()) return *it->second;
    try {
      auto p = std::make_unique<Net>(args_, n, eng_, strm_);
      return *nets_.emplace(n, std::move(p)).first->second;
    } catch (const dnnl::error& e) {
      fail("oneDNN cannot run model '", args_.graph.name, "' at batch ", n, ": ", e.what(),
           " (try --backend portable)");
    }
  }

  BuildArgs args_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  bool train_;
  std::map<int, std::unique_ptr<Net>> nets_;
  Net* current_ = nullptr;
};

std::unique_ptr<Executable> build(const BuildArgs& a) {
  return std::make_unique<Exec>(a);
}

}  // namespace

Net::Net(const BuildArgs& a, int n, const dnnl::engine& eng, dnnl::stream& strm)
    : g_(a.graph),
      plan_(a.plan),
      buf_(a.buffers),
      n_(n),
      train_(a.plan.mode == Mode::train),
      eng_(eng),
      strm_(strm) {
  const size_t count = g_.nodes.size();
  rt_.resize(count);
  rt_[0].md = plain(g_.input);
  rt_[0].out = new_mem(rt_[0].md);
  emit_nodes(*this, g_, "dnnl");
  if (train_)
    for (size_t i = 1; i < count; ++i) prepend_edge_sum(rt_[i], eng_, strm_);
}

Step Net::exec(primitive p, Args args) {
  const std::string where = g_.nodes[size_t(building_)].layer.name;
  const char* impl = nullptr;
  if (dnnl_primitive_desc_query(p.get_primitive_desc(), dnnl_query_impl_info_str, 0, &impl) ==
          dnnl_success &&
      impl)
    impls_.push_back(where + ": " + impl);
  return [this, p, args, where]() {
    try {
      p.execute(strm_, args);
    } catch (const dnnl::error& e) {
      throw InternalError("oneDNN step of node '" + where + "' failed: " + e.what());
    }
  };
}

memory Net::as_layout(const memory& m, const memory::desc& want, std::vector<Step>& steps) {
  if (m.get_desc() == want) return m;
  if (m.get_desc().dims() != want.dims()) {
    // oneDNN reshaped a 4-D map (e.g. [n, C*H*W, 1, 1] for an inner product): through a plain
    // copy, whose bytes are the same under either shape.
    const memory::desc& have = m.get_desc();
    memory p = as_layout(m, memory::desc(have.dims(), dt::f32, tag::nchw), steps);
    return as_layout(
        memory(memory::desc(want.dims(), dt::f32, tag::nchw), eng_, p.get_data_handle()), want,
        steps);
  }
  memory t = new_mem(want);
  steps.push_back(exec(dnnl::reorder(m, t), {{DNNL_ARG_FROM, m}, {DNNL_ARG_TO, t}}));
  return t;
}

void Net::make_grads(int i) {
  NodeRt& r = rt_[size_t(i)];
  r.grad = new_mem(r.md);
  const size_t consumers = g_.nodes[size_t(i)].consumers.size();
  if (consumers > 1)
    for (size_t k = 0; k < consumers; ++k) r.edges.push_back(new_mem(r.md));
}

void Net::set_output(int i, const memory& produced) {
  NodeRt& r = rt_[size_t(i)];
  const Shape& s = g_.nodes[size_t(i)].out;
  if (s.h == 1 && s.w == 1 && produced.get_desc() != plain(s)) {
    r.out = new_mem(plain(s));
    r.fwd.push_back(
        exec(dnnl::reorder(produced, r.out), {{DNNL_ARG_FROM, produced}, {DNNL_ARG_TO, r.out}}));
  } else {
    r.out = produced;
  }
  r.md = r.out.get_desc();
  if (train_) make_grads(i);
  const int relu = plan_.nodes[size_t(i)].fused_relu;
  if (relu >= 0) {  // the relu node shares this output
    rt_[size_t(relu)].md = r.md;
    rt_[size_t(relu)].out = r.out;
  }
}

memory Net::grad_target(int i, int k, const memory::desc& have, std::vector<Step>& after) {
  const int src = g_.nodes[size_t(i)].inputs[size_t(k)];
  if (src == 0) return memory();  // the image needs no gradient
  NodeRt& s = rt_[size_t(src)];
  memory target = s.edges.empty() ? s.grad : s.edges.at(size_t(s.next_edge++));
  if (have == target.get_desc()) return target;
  if (have.dims() != target.get_desc().dims()) {  // reshaped (see as_layout): via a plain copy
    const memory::desc tplain(target.get_desc().dims(), dt::f32, tag::nchw);
    memory p = target.get_desc() == tplain ? target : new_mem(tplain);
    memory t = new_mem(have);
    memory view(memory::desc(have.dims(), dt::f32, tag::nchw), eng_, p.get_data_handle());
    after.push_back(exec(dnnl::reorder(t, view), {{DNNL_ARG_FROM, t}, {DNNL_ARG_TO, view}}));
    if (p != target)
      after.push_back(exec(dnnl::reorder(p, target), {{DNNL_ARG_FROM, p}, {DNNL_ARG_TO, target}}));
    return t;
  }
  memory t = new_mem(have);
  after.push_back(exec(dnnl::reorder(t, target), {{DNNL_ARG_FROM, t}, {DNNL_ARG_TO, target}}));
  return t;
}

memory Net::user_as(const memory& user, const memory& prim) {
  const memory::desc& p = prim.get_desc();
  if (user.get_desc().dims() == p.dims()) return user;
  const tag plain_tag = p.data.ndims == 2 ? tag::ab : p.data.ndims == 4 ? tag::abcd : tag::abcde;
  return memory(memory::desc(p.dims(), dt::f32, plain_tag), eng_, user.get_data_handle());
}

Args Net::sources(int i, std::vector<memory::desc>& mds) {
  Args args;
  const Node& node = g_.nodes[size_t(i)];
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    const memory& m = rt_[size_t(node.inputs[k])].out;
    mds.push_back(m.get_desc());
    args[DNNL_ARG_MULTIPLE_SRC + int(k)] = m;
  }
  return args;
}

memory Net::weights_as(const memory& user_in, const memory::desc& want, const memory& have) {
  if (have && have.get_desc() == want) return have;
  if (user_in.get_desc() == want) return user_in;
  memory prim = new_mem(want);
  memory user = user_as(user_in, prim);
  weight_steps_.push_back(
      exec(dnnl::reorder(user, prim), {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, prim}}));
  return prim;
}

memory Net::diff_weights_as(const memory& user_in, const memory::desc& have,
                            std::vector<Step>& after) {
  if (user_in.get_desc() == have) return user_in;
  memory prim = new_mem(have);
  memory user = user_as(user_in, prim);
  after.push_back(exec(dnnl::reorder(prim, user), {{DNNL_ARG_FROM, prim}, {DNNL_ARG_TO, user}}));
  return prim;
}

dnnl::primitive_attr Net::relu_attr(int i) const {
  dnnl::primitive_attr attr;
  if (plan_.nodes[size_t(i)].fused_relu >= 0) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(po);
  }
  return attr;
}

}  // namespace iotnas::onednn

namespace iotnas {

Backend dnnl_backend() {
  const dnnl_version_t* v = dnnl_version();
  return {
      BackendKind::dnnl,
      "dnnl",
      true,
      true,
      std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch),
      "",
      1,
      onednn::build};
}

}  // namespace iotnas
