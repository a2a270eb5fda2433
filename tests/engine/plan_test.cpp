// The backend-neutral plan (engine/plan.hpp): fusion and relu placement, views, hook points,
// gradient edges, and buffer slots whose live ranges never overlap.
#include <gtest/gtest.h>

#include <map>

#include "engine/plan.hpp"
#include "engine/reference_models.hpp"
#include "test_util.hpp"

namespace iotnas {
namespace {

int index_of(const Graph& g, const std::string& name) {
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].layer.name == name) return int(i);
  ADD_FAILURE() << "no node " << name;
  return -1;
}

// conv -> relu -> pool -> conv -> relu (two consumers: add and flatten) -> ... -> dense -> relu?
ModelSpec branchy() {
  ModelSpec s{"branchy", {2, 8, 8}, {}};
  s.layers = {conv("c1", 4, 3),
              relu("r1"),
              max_pool("p1", 2),
              conv("c2", 4, 3),
              relu("r2"),
              from(conv("c3", 4, 3), {"r2"}),
              add("sum", {"r2", "c3"}),
              from(add("twice", {"sum", "sum"}), {"sum", "sum"}),
              flatten("f"),
              dense("d", 6),
              relu("rd"),
              dense("out", 3)};
  return s;
}

TEST(Plan, ReluFusesOrMovesBehindItsPoolAndTheOthersAreSteps) {
  const Graph g = build_graph(branchy());
  const ExecPlan train = make_plan(g, Mode::train), infer = make_plan(g, Mode::infer);
  const int c1 = index_of(g, "c1"), r1 = index_of(g, "r1"), p1 = index_of(g, "p1");
  const int c2 = index_of(g, "c2"), r2 = index_of(g, "r2"), d = index_of(g, "d"),
            rd = index_of(g, "rd");
  // Training: r1 is applied by its max pool; inference: fused into c1.
  EXPECT_TRUE(train.nodes[size_t(r1)].relu_after_pool);
  EXPECT_TRUE(train.nodes[size_t(p1)].relu_by_pool);
  EXPECT_EQ(train.nodes[size_t(c1)].fused_relu, -1);
  EXPECT_EQ(train.nodes[size_t(r1)].storage, c1);
  EXPECT_FALSE(infer.nodes[size_t(r1)].relu_after_pool);
  EXPECT_EQ(infer.nodes[size_t(c1)].fused_relu, r1);
  EXPECT_TRUE(infer.nodes[size_t(r1)].fused);
  EXPECT_EQ(infer.nodes[size_t(c1)].hook_id, r1);
  EXPECT_FALSE(infer.nodes[size_t(r1)].hookable);
  // c2 -> r2 fuses in both modes (r2 is read by two nodes, c2 only by r2).
  for (const ExecPlan* p : {&train, &infer}) {
    EXPECT_EQ(p->nodes[size_t(c2)].fused_relu, r2);
    EXPECT_EQ(p->nodes[size_t(d)].fused_relu, rd);
  }
  // flatten is a view of its input.
  EXPECT_EQ(infer.nodes[size_t(index_of(g, "f"))].storage, index_of(g, "twice"));
}

TEST(Plan, GradientEdgesInBackwardOrderFirstWritesOthersAdd) {
  const Graph g = build_graph(branchy());
  const ExecPlan p = make_plan(g, Mode::train);
  const int r2 = index_of(g, "r2"), c3 = index_of(g, "c3"), sum = index_of(g, "sum"),
            twice = index_of(g, "twice");
  // r2 feeds c3 (input 0) and sum (input 0): sum comes later, so the backward pass visits it first.
  ASSERT_EQ(p.nodes[size_t(r2)].edges.size(), 2u);
  EXPECT_EQ(p.nodes[size_t(r2)].edges[0].consumer, sum);
  EXPECT_EQ(p.nodes[size_t(r2)].edges[1].consumer, c3);
  EXPECT_FALSE(p.accumulates(r2, sum, 0));
  EXPECT_TRUE(p.accumulates(r2, c3, 0));
  // The same map twice in one add: input 0 writes, input 1 adds.
  EXPECT_FALSE(p.accumulates(sum, twice, 0));
  EXPECT_TRUE(p.accumulates(sum, twice, 1));
  EXPECT_TRUE(make_plan(g, Mode::infer).nodes[size_t(r2)].edges.empty());
}

TEST(Plan, HookScopeSkipsMapsThatOnlyMoveSeenValues) {
  const Graph g = build_graph(branchy());
  const ExecPlan p = make_plan(g, Mode::infer);
  EXPECT_TRUE(p.nodes[size_t(index_of(g, "p1"))].skip_computed);  // max of hooked values
  EXPECT_TRUE(p.nodes[size_t(index_of(g, "f"))].skip_computed);
  EXPECT_FALSE(p.nodes[size_t(index_of(g, "sum"))].skip_computed);  // computes new values
  EXPECT_FALSE(p.nodes[size_t(index_of(g, "c2"))].skip_computed);
}

TEST(Plan, TrainingBatchNormsUpdateRunningStatistics) {
  const Graph g = build_graph(reference_model("resnet20", {3, 32, 32}, 10));
  const ExecPlan t = make_plan(g, Mode::train), i = make_plan(g, Mode::infer);
  int updates = 0;
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    EXPECT_EQ(t.nodes[k].updates_running_stats, g.nodes[k].layer.op == Op::batch_norm);
    EXPECT_FALSE(i.nodes[k].updates_running_stats);
    updates += t.nodes[k].updates_running_stats;
  }
  EXPECT_GT(updates, 10);
}

// Two maps share a slot only when one's last reader has run before the other is produced, every
// slot holds its largest map, and the output's slot is never reused.
TEST(Plan, BufferSlotsNeverHoldTwoLiveMaps) {
  for (const auto& ref : reference_models()) {
    const Shape in = ref.name.rfind("resnet", 0) == 0 ? Shape{3, 32, 32} : Shape{1, 28, 28};
    const Graph g = build_graph(reference_model(ref.name, in, 10));
    const ExecPlan p = make_plan(g, Mode::infer);
    std::map<int, std::vector<int>> users;  // slot -> storage nodes in order
    int64_t slotted = 0, naive = 0;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const NodePlan& n = p.nodes[i];
      if (n.storage != int(i)) {
        EXPECT_EQ(n.slot, -1) << ref.name;
        continue;
      }
      ASSERT_GE(n.slot, 0) << ref.name;
      EXPECT_GE(p.slots[size_t(n.slot)], g.nodes[i].out.size()) << ref.name;
      users[n.slot].push_back(int(i));
      naive += g.nodes[i].out.size();
    }
    for (auto& [slot, nodes] : users) {
      slotted += p.slots[size_t(slot)];
      for (size_t k = 1; k < nodes.size(); ++k)
        EXPECT_LT(p.nodes[size_t(nodes[k - 1])].last_use, nodes[k])
            << ref.name << ": slot " << slot << " reused while node " << nodes[k - 1] << " lives";
    }
    EXPECT_EQ(p.nodes[size_t(p.nodes.back().storage)].last_use, int(g.nodes.size()));
    EXPECT_LT(slotted, naive) << ref.name << ": reuse saves memory";
  }
}

}  // namespace
}  // namespace iotnas
