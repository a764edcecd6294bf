#include "xmodal/core/logging.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "../support/temp_dir.h"

namespace xmodal::log {
namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Logging, ParsesLevelsAndRejectsUnknownOnes) {
  EXPECT_EQ(parse_level("debug"), Level::debug);
  EXPECT_EQ(level_name(Level::warn), "warn");
  try {
    parse_level("loud");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("trace, debug, info, warn, error, off"),
              std::string::npos);
  }
}

TEST(Logging, FileSinkGetsMessagesAtOrAboveTheLevel) {
  xmodal::testing::TempDir dir;
  const std::string path = (dir.path() / "sub" / "train.log").string();
  const Level saved = level();
  set_level(Level::info);
  set_file(path);
  debug("[test] hidden {}", 1);
  info("[test] step {} loss {:.2f}", 3, 0.125);
  warn("[test] careful");
  close_file();
  info("[test] after close");
  set_level(saved);
  const std::string text = read(path);
  EXPECT_EQ(text.find("hidden"), std::string::npos) << text;
  EXPECT_NE(text.find("[info] [test] step 3 loss 0.12"), std::string::npos) << text;
  EXPECT_NE(text.find("[warning] [test] careful"), std::string::npos) << text;
  EXPECT_EQ(text.find("after close"), std::string::npos) << text;
}

TEST(Logging, FileKeepsInfoWhenTheConsoleIsQuieter) {
  xmodal::testing::TempDir dir;
  const std::string path = (dir.path() / "train.log").string();
  const Level saved = level();
  set_level(Level::warn);
  set_file(path);
  info("[test] kept in the file");
  debug("[test] not kept");
  close_file();
  set_level(saved);
  const std::string text = read(path);
  EXPECT_NE(text.find("kept in the file"), std::string::npos) << text;
  EXPECT_EQ(text.find("not kept"), std::string::npos) << text;
}

TEST(Logging, UnwritableFileIsARuntimeError) {
  EXPECT_THROW(set_file("/proc/xmodal-cannot-write/train.log"), std::exception);
}

}  // namespace
}  // namespace xmodal::log
