#include "xmodal/io/tensorboard.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "../support/event_reader.h"
#include "../support/temp_dir.h"
#include "xmodal/core/files.h"

namespace xmodal::io {
namespace {

using xmodal::testing::read_tensorboard_events;
using xmodal::testing::TempDir;

std::string bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s.push_back(static_cast<char>(v));
  return s;
}

TEST(TensorBoard, Crc32cMatchesThePublishedVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the CRC catalogue's check value
  // RFC 3720, appendix B.4.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
}

TEST(TensorBoard, TheVersionRecordStartsLikeEveryTensorFlowEventFile) {
  // Every event file TensorFlow / TensorBoard writes begins with these 12 bytes: the 24-byte
  // version event's length and its masked CRC.
  TempDir dir;
  const auto path = (dir.path() / "events.out.tfevents.1.host").string();
  { EventWriter w(path); }
  const std::string data = read_file(path);
  EXPECT_EQ(data.substr(0, 12), bytes({0x18, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0x7f, 0x4b, 0x22}));
  EXPECT_EQ(data.size(), 12u + 24u + 4u);
  EXPECT_NE(data.find("brain.Event:2"), std::string::npos);
}

TEST(TensorBoard, ScalarsReadBackThroughAnIndependentReader) {
  TempDir dir;
  const auto path = (dir.path() / "events.out.tfevents.1.host").string();
  {
    EventWriter w(path);
    w.write({1700000000.25, 1, {{"train/loss", 2.5f}, {"train/lr", 1e-4f}}});
    w.write({1700000001.5, 300, {{"eval/accuracy", 0.9125f}}});
    w.write({1700000002.0,
             std::numeric_limits<int64_t>::max(),
             {{"end/inf", std::numeric_limits<float>::infinity()}}});
  }
  {  // appending to a file that has its version event adds no second one
    EventWriter w(path);
    w.write({1700000003.0, 301, {{"train/loss", -0.0f}}});
  }
  const auto events = read_tensorboard_events(path);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_GT(events[0].wall_time, 1.7e9);
  EXPECT_EQ(events[1].wall_time, 1700000000.25);
  EXPECT_EQ(events[1].step, 1);
  ASSERT_EQ(events[1].values.size(), 2u);
  EXPECT_EQ(events[1].values[0].tag, "train/loss");
  EXPECT_EQ(events[1].values[0].simple_value, 2.5f);
  EXPECT_EQ(events[1].values[1].tag, "train/lr");
  EXPECT_EQ(events[1].values[1].simple_value, 1e-4f);
  EXPECT_EQ(events[2].step, 300);
  EXPECT_EQ(events[2].values[0].simple_value, 0.9125f);
  EXPECT_EQ(events[3].step, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(events[3].values[0].simple_value, std::numeric_limits<float>::infinity());
  EXPECT_EQ(events[4].step, 301);
}

TEST(TensorBoard, TruncationKeepsWholeRecordsUpToTheStep) {
  TempDir dir;
  const auto path = (dir.path() / "events.out.tfevents.1.host").string();
  {
    EventWriter w(path);
    for (int64_t step = 1; step <= 6; ++step) w.write({1.0 * step, step, {{"train/loss", 1.0f}}});
  }
  const auto whole = read_event_records(path);
  ASSERT_EQ(whole.records.size(), 7u);
  EXPECT_EQ(event_step(whole.records[0]), 0);  // the version event
  EXPECT_EQ(event_step(whole.records[3]), 3);
  EXPECT_EQ(event_step("\x10"), -1);  // a varint cut short
  {  // a killed writer's partial record, then bytes with a wrong CRC
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << tfrecord(encode_scalar_event({7.0, 7, {{"train/loss", 1.0f}}})).substr(0, 30);
  }
  EXPECT_THROW(read_tensorboard_events(path), std::runtime_error);  // the test reader is strict
  EXPECT_EQ(read_event_records(path).records.size(), 7u);
  EXPECT_EQ(read_event_records(path).valid_bytes, whole.valid_bytes);
  truncate_events(path, 4);
  const auto kept = read_tensorboard_events(path);
  ASSERT_EQ(kept.size(), 5u);  // version + steps 1..4
  EXPECT_EQ(kept.back().step, 4);
  {  // a run killed after its end summary at step 4: a resumed run drops it, nothing else
    EventWriter w2(path);
    w2.write({9.0, 4, {{"end/train_s", 2.0f}, {"end/samples", 8.0f}}});
  }
  truncate_events(path, 4, "end/");
  const auto resumed = read_tensorboard_events(path);
  ASSERT_EQ(resumed.size(), 5u);
  EXPECT_EQ(resumed.back().values.at(0).tag, "train/loss");

  // A flipped bit in a record's data: that record is skipped, the ones after it are kept.
  std::string data = read_file(path);
  data[data.size() - 6] ^= 1;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  EXPECT_EQ(read_event_records(path).records.size(), 4u);
  EXPECT_EQ(read_event_records(path).corrupt, 1);
  EXPECT_THROW(read_tensorboard_events(path), std::runtime_error);
}

// A resume used to drop every record after a corrupt one without a word (record 5 of 11).
TEST(TensorBoard, ACorruptRecordOnResumeIsReportedAndTheOriginalKept) {
  TempDir dir;
  const auto path = (dir.path() / "events.out.tfevents.1.host").string();
  {
    EventWriter w(path);
    for (int64_t step = 1; step <= 10; ++step) w.write({1.0 * step, step, {{"train/loss", 1.0f}}});
  }
  std::string data = read_file(path);
  // record 5 (step 4): flip a byte of its data
  size_t at = 0;
  for (int i = 0; i < 4; ++i) at += 16 + read_event_records(path).records[i].size();
  const std::string original = data;
  data[at + 14] ^= 0x40;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  const std::string report = truncate_events(path, 8);
  EXPECT_NE(report.find("1 corrupt record dropped (the first is record 5 of 11)"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("the original is kept as " + path + ".corrupt"), std::string::npos)
      << report;
  EXPECT_EQ(read_file(path + ".corrupt"), data);
  const auto kept = read_tensorboard_events(path);
  ASSERT_EQ(kept.size(), 8u);  // version + steps 1-3, 5-8
  EXPECT_EQ(kept[4].step, 5);

  // a corrupt length: the framing is lost from there on, and said so
  data = original;
  data[at + 2] ^= 0x01;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  const std::string framing = truncate_events(path, 10);
  EXPECT_NE(framing.find("bytes are unreadable"), std::string::npos) << framing;
  EXPECT_EQ(read_tensorboard_events(path).size(), 4u);

  // a killed writer's last record: dropped silently, as before
  {
    EventWriter w(path);
    w.write({11.0, 11, {{"train/loss", 1.0f}}});
  }
  data = read_file(path);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data.substr(0, data.size() - 5);
  EXPECT_EQ(truncate_events(path, 20), "");
}

TEST(TensorBoard, FileNamesFollowTheWritersConvention) {
  const std::string name = event_file_name();
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u);
  EXPECT_EQ(name.find('/'), std::string::npos);
}

}  // namespace
}  // namespace xmodal::io
