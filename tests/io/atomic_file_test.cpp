// Bounded reading (core/files.h) and atomic writing (io/atomic_file.h) on the kinds of paths a
// user points xmodal at: folders, FIFOs, devices, symlinks, files too large, read-only modes.
#include "xmodal/io/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../support/temp_dir.h"

namespace xmodal::io {
namespace {

namespace fs = std::filesystem;
using xmodal::testing::TempDir;

// The reason of the FileError `f` throws, "" when it throws none.
template <typename F>
std::string reason_of(F f) {
  try {
    f();
  } catch (const FileError& e) {
    return e.reason();
  }
  return "";
}

TEST(Files, ReadingRefusesWhatIsNotARegularFileSayingWhatItIs) {
  TempDir dir;
  const std::string fifo = (dir.path() / "pipe").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(reason_of([&] { read_file(fifo); }), "it is a FIFO, not a regular file");
  EXPECT_EQ(reason_of([&] { read_file(dir.path().string()); }), "it is a folder, not a file");
  EXPECT_EQ(reason_of([&] { read_file((dir.path() / "none").string()); }), "no such file");
  EXPECT_EQ(reason_of([&] { read_file("/dev/zero"); }),
            "it is a character device, not a regular file");
  const std::string loop = (dir.path() / "loop").string();
  fs::create_symlink(loop, loop);
  EXPECT_EQ(reason_of([&] { read_file(loop); }), "Too many levels of symbolic links");
  try {
    read_file(fifo);
    FAIL();
  } catch (const FileError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read " + fifo + ": it is a FIFO, not a regular file");
  }
}

TEST(Files, ReadingFollowsSymlinksAndKeepsToTheLimit) {
  TempDir dir;
  const std::string file = dir.write("a.txt", "0123456789");
  const std::string link = (dir.path() / "link").string();
  fs::create_symlink(file, link);
  EXPECT_EQ(read_file(link), "0123456789");
  EXPECT_EQ(check_regular_file(link), 10);
  EXPECT_EQ(read_file(file, 10), "0123456789");
  EXPECT_EQ(reason_of([&] { read_file(file, 9); }),
            "10 bytes is more than the limit of 9 bytes for this file");
}

TEST(AtomicFile, ReplacesWholeKeepsTheModeAndLeavesNoTemporary) {
  TempDir dir;
  const std::string file = dir.write("out.json", "old");
  ::chmod(file.c_str(), 0640);
  write_file_atomic(file, "new contents");
  EXPECT_EQ(read_file(file), "new contents");
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "out.json");
  }
  EXPECT_EQ(entries, 1);
}

TEST(AtomicFile, FollowsASymlinkAndRefusesAFolder) {
  TempDir dir;
  const std::string target = dir.write("real.txt", "old");
  const std::string link = (dir.path() / "link.txt").string();
  fs::create_symlink("real.txt", link);
  write_file_atomic(link, "through the link");
  EXPECT_TRUE(fs::is_symlink(link));  // the link stays, its target is replaced
  EXPECT_EQ(read_file(target), "through the link");
  EXPECT_THROW(write_file_atomic(dir.path().string(), "x"), FileError);
  EXPECT_THROW(write_file_atomic((dir.path() / "missing" / "f").string(), "x"), FileError);
}

TEST(AtomicFile, WritesThroughADevice) {
  EXPECT_NO_THROW(write_file_atomic("/dev/null", "discarded"));
  EXPECT_TRUE(fs::is_character_file("/dev/null"));  // not replaced by a regular file
}

}  // namespace
}  // namespace xmodal::io
