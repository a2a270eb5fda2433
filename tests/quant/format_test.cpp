// Float types by name, the 184-type grid, weight bytes and --types lists (quant/format.hpp).
#include "quant/format.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>

#include "kernels/base/error.hpp"

namespace iotnas::quant {
namespace {

// The message of the iotnas::Error that fn throws, or "" if it throws none.
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(QuantFormat, NamesAndLabels) {
  EXPECT_EQ(parse_format("half"), (FloatFormat{5, 10}));
  EXPECT_EQ(parse_format("bfloat16"), (FloatFormat{8, 7}));
  EXPECT_EQ(parse_format("float"), (FloatFormat{8, 23}));
  EXPECT_EQ(parse_format("4:3"), (FloatFormat{4, 3}));
  EXPECT_EQ(parse_format("5:10"), (FloatFormat{5, 10}));
  EXPECT_EQ(parse_format("1:1"), (FloatFormat{1, 1}));
  EXPECT_EQ(format_name({5, 10}), "half");
  EXPECT_EQ(format_name({8, 7}), "bfloat16");
  EXPECT_EQ(format_name({8, 23}), "float");
  EXPECT_EQ(format_name({4, 3}), "4:3");
  EXPECT_EQ(format_label({4, 3}), "T(4,3)");
  for (FloatFormat f : all_formats()) EXPECT_EQ(parse_format(format_name(f)), f);
}

TEST(QuantFormat, BadTokensNameTheToken) {
  for (const char* bad : {"", "Half", "fp16", "4", "4:", ":3", "4:3:1", "a:3", "4:b", "-1:3", "0:3",
                          "9:3", "4:0", "4:24", "4:3 ", "+4:3", "4.0:3"}) {
    const std::string msg = error_of([&] { parse_format(bad); });
    std::string quoted = "'";
    quoted.append(bad).append("'");
    EXPECT_NE(msg.find(quoted), std::string::npos) << "token '" << bad << "' gave: " << msg;
  }
  EXPECT_NE(error_of([] { parse_format("9:3"); }).find("W=9 is out of range"), std::string::npos);
  EXPECT_NE(error_of([] { parse_format("4:24"); }).find("T=24 is out of range"), std::string::npos);
  EXPECT_NE(error_of([] { parse_format("fp16"); }).find("half, bfloat16, float or W:T"),
            std::string::npos);
}

TEST(QuantFormat, GridHas184TypesInFixedOrder) {
  const auto grid = all_formats();
  ASSERT_EQ(grid.size(), 184u);
  EXPECT_EQ(grid.front(), (FloatFormat{1, 1}));
  EXPECT_EQ(grid[1], (FloatFormat{1, 2}));
  EXPECT_EQ(grid[23], (FloatFormat{2, 1}));
  EXPECT_EQ(grid.back(), (FloatFormat{8, 23}));
  std::set<std::pair<int, int>> seen;
  for (size_t i = 0; i < grid.size(); ++i) {
    EXPECT_TRUE(grid[i].valid());
    EXPECT_EQ(format_index(grid[i]), int(i));
    seen.insert({grid[i].w, grid[i].t});
  }
  EXPECT_EQ(seen.size(), 184u);
}

TEST(QuantFormat, WeightBytesRoundsUpWholeBytes) {
  EXPECT_EQ(weight_bytes(0, {5, 10}), 0);
  EXPECT_EQ(weight_bytes(1, {5, 10}), 2);
  EXPECT_EQ(weight_bytes(1000, {8, 23}), 4000);
  EXPECT_EQ(weight_bytes(1000, {8, 7}), 2000);
  EXPECT_EQ(weight_bytes(1, {1, 1}), 1);          // 3 bits
  EXPECT_EQ(weight_bytes(3, {1, 1}), 2);          // 9 bits
  EXPECT_EQ(weight_bytes(8, {1, 1}), 3);          // 24 bits
  EXPECT_EQ(weight_bytes(1086, {4, 3}), 1086);    // 8 bits each
  EXPECT_EQ(weight_bytes(14378, {3, 2}), 10784);  // 6 bits: 86268 bits = 10783.5 bytes
  EXPECT_EQ(weight_bytes(int64_t(1) << 40, {8, 23}), int64_t(1) << 42);
  EXPECT_THROW(weight_bytes(-1, {8, 23}), Error);
}

TEST(QuantFormat, TypeLists) {
  EXPECT_EQ(parse_types("all").size(), 184u);
  EXPECT_EQ(parse_types(" all ").size(), 184u);
  EXPECT_EQ(parse_types("half"), (std::vector<FloatFormat>{{5, 10}}));
  EXPECT_EQ(parse_types("float,half,4:3,bfloat16"),
            (std::vector<FloatFormat>{{8, 23}, {5, 10}, {4, 3}, {8, 7}}));
  EXPECT_EQ(parse_types("4:3, 2:1"), (std::vector<FloatFormat>{{4, 3}, {2, 1}}));
  EXPECT_NE(error_of([] { parse_types(""); }).find("empty list"), std::string::npos);
  EXPECT_NE(error_of([] { parse_types("half,,4:3"); }).find("entry 2 is empty"), std::string::npos);
  EXPECT_NE(error_of([] { parse_types("half,"); }).find("entry 2 is empty"), std::string::npos);
  EXPECT_NE(error_of([] { parse_types("half,4:33"); }).find("'4:33'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_types("half,5:10"); }).find("listed twice"), std::string::npos);
  EXPECT_NE(error_of([] { parse_types("all,half"); }).find("'all'"), std::string::npos);
}

}  // namespace
}  // namespace iotnas::quant
