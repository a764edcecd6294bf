#include "xmodal/train/early_stopping.h"

#include <gtest/gtest.h>

#include <cmath>

namespace xmodal::train {
namespace {

TEST(EarlyStopping, PatienceCountsNonImprovingEvaluations) {
  const EarlyStopping es(config::MetricMode::max, 2, 0.01);
  EarlyStoppingState s;
  EXPECT_TRUE(es.update(s, 0.5, 1));
  EXPECT_FALSE(es.update(s, 0.505, 2));  // within min_delta
  EXPECT_FALSE(s.stopped);
  EXPECT_TRUE(es.update(s, 0.6, 3));  // resets the count
  EXPECT_FALSE(es.update(s, 0.6, 4));
  EXPECT_FALSE(s.stopped);
  EXPECT_FALSE(es.update(s, std::nan(""), 5));  // NaN never improves
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.best_step, 3);

  const EarlyStopping low(config::MetricMode::min, 1, 0.0);
  EarlyStoppingState t;
  EXPECT_TRUE(low.update(t, 2.0, 1));
  EXPECT_TRUE(low.update(t, 1.0, 2));
  EXPECT_FALSE(low.update(t, 1.0, 3));
  EXPECT_TRUE(t.stopped);
}

// Resumed runs continue from the checkpointed state: the rule itself holds none.
TEST(EarlyStopping, TheRuleKeepsNoStateOfItsOwn) {
  const EarlyStopping es(config::MetricMode::max, 1, 0.0);
  EarlyStoppingState resumed;
  resumed.best = 0.9;
  resumed.best_step = 40;
  EXPECT_FALSE(es.update(resumed, 0.85, 50));
  EXPECT_TRUE(resumed.stopped);
  EXPECT_EQ(resumed.best_step, 40);
  EarlyStoppingState fresh;
  EXPECT_TRUE(es.update(fresh, 0.85, 50));  // the same value, another run: the first best
  EXPECT_FALSE(fresh.stopped);
}

}  // namespace
}  // namespace xmodal::train
