#include "xmodal/core/strings.h"

#include <gtest/gtest.h>

namespace xmodal {
namespace {

TEST(Strings, EditDistance) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("pach_size", "patch_size"), 1u);
  EXPECT_EQ(edit_distance("trian", "train"), 1u);  // neighbour swap
}

TEST(Strings, ClosestMatchOnlyForPlausibleTypos) {
  const std::vector<std::string> keys = {"patch_size", "hidden", "layers", "heads", "mlp_dim"};
  EXPECT_EQ(closest_match("pach_size", keys), "patch_size");
  EXPECT_EQ(closest_match("hiden", keys), "hidden");
  EXPECT_EQ(closest_match("heads", keys), "heads");
  EXPECT_EQ(closest_match("mlp", keys), "mlp_dim");  // prefix
  EXPECT_EQ(closest_match("optimizer", keys), "");
  EXPECT_EQ(closest_match("x", keys), "");
}

TEST(Strings, SplitJoinTrim) {
  EXPECT_EQ(split("a.b..c", '.'), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(split("", '.'), (std::vector<std::string>{""}));
  EXPECT_EQ(join({"a", "b", "c"}, ", "), "a, b, c");
  EXPECT_EQ(join({}, ", "), "");
  EXPECT_EQ(trim("  a b \t\n"), "a b");
  EXPECT_EQ(trim(" \t "), "");
}

TEST(Strings, Utf8ValidityAsJsonNeedsIt) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80"));
  for (const char* bad : {"caf\xe9", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                          "\xc3", "\xe4\xb8", "\xff", "\x80"}) {
    EXPECT_FALSE(is_valid_utf8(bad)) << escape_invalid_utf8(bad);
  }
  EXPECT_EQ(escape_invalid_utf8("/img/caf\xe9.png"), "/img/caf\\xe9.png");
  EXPECT_EQ(escape_invalid_utf8("caf\xc3\xa9\xff"), "caf\xc3\xa9\\xff");
}

}  // namespace
}  // namespace xmodal
