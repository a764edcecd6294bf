#include "xmodal/io/tensorboard.h"

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "xmodal/io/atomic_file.h"

namespace xmodal::io {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFileVersion = "brain.Event:2";

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}

// Protocol buffer wire format: little-endian fixed-width values, base-128 varints.
void put_fixed(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// A length-delimited field (wire type 2).
void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_varint(out, static_cast<uint64_t>(field) << 3 | 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Event.wall_time: field 1, 64-bit.
void put_wall_time(std::string& out, double seconds) {
  static_assert(sizeof(double) == sizeof(uint64_t));
  uint64_t bits = 0;
  std::memcpy(&bits, &seconds, sizeof bits);
  out.push_back(0x09);
  put_fixed(out, bits, 8);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

uint64_t get_fixed(std::string_view data, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(data[at + i])) << (8 * i);
  }
  return v;
}

// Reads a varint at `at`; false when it runs past the end or is longer than 10 bytes.
bool get_varint(std::string_view data, size_t& at, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (at >= data.size()) return false;
    const auto byte = static_cast<unsigned char>(data[at++]);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

}  // namespace

uint32_t crc32c(std::string_view data) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  uint32_t c = 0xffffffffu;
  for (const char ch : data) c = table[(c ^ static_cast<unsigned char>(ch)) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string encode_scalar_event(const ScalarEvent& event) {
  std::string out;
  put_wall_time(out, event.wall_time);
  if (event.step != 0) {  // proto3 leaves a zero out
    out.push_back(0x10);  // step: field 2, varint (a negative int64 takes 10 bytes)
    put_varint(out, static_cast<uint64_t>(event.step));
  }
  std::string summary;
  for (const auto& [tag, value] : event.values) {
    std::string v;
    put_bytes(v, 1, tag);
    uint32_t value_bits = 0;
    static_assert(sizeof(float) == sizeof(uint32_t));
    std::memcpy(&value_bits, &value, sizeof value_bits);
    v.push_back(0x15);  // simple_value: field 2, 32-bit
    put_fixed(v, value_bits, 4);
    put_bytes(summary, 1, v);
  }
  put_bytes(out, 5, summary);
  return out;
}

std::string tfrecord(std::string_view data) {
  std::string length;
  put_fixed(length, data.size(), 8);
  std::string out = length;
  put_fixed(out, masked_crc32c(length), 4);
  out.append(data);
  put_fixed(out, masked_crc32c(data), 4);
  return out;
}

EventWriter::EventWriter(const std::string& path) : path_(path) {
  std::error_code ec;
  const bool fresh = !fs::exists(path, ec) || fs::file_size(path, ec) == 0;
  file_ = std::fopen(path.c_str(), "ab");
  if (!file_) throw std::runtime_error("cannot open " + path + " for appending");
  if (fresh) {
    std::string version;
    put_wall_time(version, now_seconds());
    put_bytes(version, 3, kFileVersion);
    append(tfrecord(version));
  }
}

EventWriter::~EventWriter() {
  if (file_) std::fclose(file_);
}

void EventWriter::append(const std::string& record) {
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() ||
      std::fflush(file_) != 0) {
    throw std::runtime_error("cannot write " + path_);
  }
}

void EventWriter::write(ScalarEvent event) {
  if (event.wall_time == 0) event.wall_time = now_seconds();
  append(tfrecord(encode_scalar_event(event)));
}

EventRecords read_event_records(const std::string& path) {
  const std::string data = read_file(path);
  EventRecords r;
  r.file_bytes = data.size();
  size_t at = 0;
  while (data.size() - at >= 12) {
    const std::string_view length(data.data() + at, 8);
    if (get_fixed(data, at + 8, 4) != masked_crc32c(length)) break;  // the framing is lost
    const uint64_t n = get_fixed(data, at, 8);
    if (data.size() - at < 16 || n > data.size() - at - 16) break;  // incomplete
    const std::string_view body(data.data() + at + 12, n);
    at += 16 + n;
    if (get_fixed(data, at - 4, 4) != masked_crc32c(body)) {  // this record only: skip it
      if (r.corrupt == 0) r.first_corrupt = static_cast<int64_t>(r.records.size() + 1);
      ++r.corrupt;
      r.valid_bytes = at;
      continue;
    }
    r.records.emplace_back(body);
    r.valid_bytes = at;
  }
  // What is left: a killed writer's last record (its framing intact, cut short), or bytes whose
  // framing is lost
  if (at < data.size()) {
    const size_t rest = data.size() - at;
    r.torn_tail = rest < 12 || get_fixed(data, at + 8, 4) ==
                                   masked_crc32c(std::string_view(data.data() + at, 8));
  }
  return r;
}

int64_t event_step(std::string_view event) {
  int64_t step = 0;
  size_t at = 0;
  while (at < event.size()) {
    uint64_t key = 0;
    if (!get_varint(event, at, key)) return -1;
    uint64_t v = 0;
    switch (key & 7) {
      case 0:
        if (!get_varint(event, at, v)) return -1;
        if ((key >> 3) == 2) step = static_cast<int64_t>(v);
        break;
      case 1:
        if (event.size() - at < 8) return -1;
        at += 8;
        break;
      case 2:
        if (!get_varint(event, at, v) || v > event.size() - at) return -1;
        at += v;
        break;
      case 5:
        if (event.size() - at < 4) return -1;
        at += 4;
        break;
      default:
        return -1;
    }
  }
  return step;
}

std::string truncate_events(const std::string& path, int64_t step,
                            const std::string& drop_tag_prefix) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return "";
  // A Summary.Value's tag is field 1, length-delimited: 0x0a, its length, its bytes.
  const auto has_prefixed_tag = [&](const std::string& record) {
    for (size_t at = record.find(drop_tag_prefix); at != std::string::npos;
         at = record.find(drop_tag_prefix, at + 1)) {
      if (at >= 2 && record[at - 2] == '\x0a' &&
          static_cast<unsigned char>(record[at - 1]) >= drop_tag_prefix.size()) {
        return true;
      }
    }
    return false;
  };
  const EventRecords all = read_event_records(path);
  std::string kept;
  for (const auto& record : all.records) {
    const int64_t s = event_step(record);
    if (s < 0 || s > step) continue;
    if (!drop_tag_prefix.empty() && has_prefixed_tag(record)) continue;
    kept += tfrecord(record);
  }
  // Anything but a killed writer's last record lost: the original is kept aside, and said so
  std::string report;
  const uint64_t unreadable = all.file_bytes - all.valid_bytes;
  if (all.corrupt > 0 || (unreadable > 0 && !all.torn_tail)) {
    const std::string aside = path + ".corrupt";
    fs::copy_file(path, aside, fs::copy_options::overwrite_existing, ec);
    if (all.corrupt > 0) {
      report = fmt::format("{} corrupt record{} dropped (the first is record {} of {})",
                           all.corrupt, all.corrupt > 1 ? "s" : "", all.first_corrupt,
                           all.records.size() + static_cast<size_t>(all.corrupt));
    }
    if (unreadable > 0 && !all.torn_tail) {
      report += fmt::format(
          "{}the last {} bytes are unreadable (their framing is corrupt) and "
          "were dropped with every record in them",
          report.empty() ? "" : "; ", unreadable);
    }
    report = path + ": " + report +
             (ec ? "; the original could not be kept (" + ec.message() + ")"
                 : "; the original is kept as " + aside);
  }
  write_file_atomic(path, kept);
  return report;
}

std::string event_file_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  for (char* c = host; *c; ++c) {
    if (*c == '/') *c = '_';
  }
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  return "events.out.tfevents." + std::to_string(seconds) + "." + host;
}

}  // namespace xmodal::io
