// TensorBoard event files: scalars as TensorBoard, torch.utils.tensorboard and tensorboardX
// write them, without a protobuf library (Debian ships no C++ TensorBoard writer, and a second
// protobuf next to LibTorch's is asking for trouble).
//
// A file is a sequence of TFRecords (tensorflow/core/lib/io/record_writer.cc):
//   uint64 length (little-endian) | uint32 masked_crc32c(length) | data | uint32
//   masked_crc32c(data)
// with masked_crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8 over CRC-32C (Castagnoli). Each
// record's data is an `Event` protocol buffer (tensorflow/core/util/event.proto):
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }                (tensorflow/core/framework/summary.proto)
//   Value   { string tag = 1; float simple_value = 2; }
// The first record is the version event (file_version "brain.Event:2"). TensorBoard reads every
// file of a folder whose name contains "tfevents".
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xmodal::io {

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `data`.
uint32_t crc32c(std::string_view data);
/// The TFRecord mask of a CRC: rotate right by 15, add 0xa282ead8.
uint32_t masked_crc32c(std::string_view data);

/// One event with the scalars of one step.
struct ScalarEvent {
  double wall_time = 0;  ///< seconds since the epoch; 0: EventWriter::write takes the clock's
  int64_t step = 0;
  std::vector<std::pair<std::string, float>> values;  ///< tag, value
};

/// The bytes of an Event protocol buffer holding `event` (exposed for tests).
std::string encode_scalar_event(const ScalarEvent& event);
/// One TFRecord around `data` (exposed for tests).
std::string tfrecord(std::string_view data);

/// Appends scalar events to an event file, each record written and flushed whole.
class EventWriter {
 public:
  /// Opens `path` for appending; a new or empty file first gets the version event. Throws
  /// std::runtime_error naming the file when it cannot be opened.
  explicit EventWriter(const std::string& path);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;
  /// Throws std::runtime_error naming the file when the write fails.
  void write(ScalarEvent event);
  const std::string& path() const { return path_; }

 private:
  void append(const std::string& record);
  std::string path_;
  std::FILE* file_ = nullptr;
};

/// The records of an event file as written: their data, up to the first incomplete record (a
/// killed writer's last one) or lost framing (a corrupt length). A record whose data fails its
/// CRC is skipped and counted, the ones after it are read. `valid_bytes` is where the readable
/// records end.
struct EventRecords {
  std::vector<std::string> records;
  uint64_t valid_bytes = 0;
  uint64_t file_bytes = 0;
  int64_t corrupt = 0;        ///< records skipped for a data CRC mismatch
  int64_t first_corrupt = 0;  ///< the first one's number in the file (1-based), 0 = none
  bool torn_tail = false;     ///< the bytes after valid_bytes are one record cut short
};
EventRecords read_event_records(const std::string& path);

/// The step of an Event's bytes (0 when it has none, as the version event), or -1 when the bytes
/// are not a well-formed Event.
int64_t event_step(std::string_view event);

/// Rewrites `path` with only its well-formed records up to `step` (a resumed run drops what
/// came after its checkpoint, and a killed writer's partial record), leaving out those whose
/// scalars' tags start with `drop_tag_prefix` ("end/": the summary of a run that goes on).
/// Atomic. Returns "" or, when corrupt records or bytes were dropped, one line saying how many
/// (the original file is then kept as PATH.corrupt).
std::string truncate_events(const std::string& path, int64_t step,
                            const std::string& drop_tag_prefix = "");

/// A new event file name as TensorBoard's writers make it: events.out.tfevents.SECONDS.HOST.
std::string event_file_name();

}  // namespace xmodal::io
