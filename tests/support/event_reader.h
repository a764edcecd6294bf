// A TensorBoard event file reader for tests, written from the published formats and sharing no
// code with lib/xmodal/io/tensorboard.cpp:
// - TFRecord (tensorflow/core/lib/io/record_writer.cc): uint64 length, uint32 masked CRC-32C of
//   the length bytes, the data, uint32 masked CRC-32C of the data; mask: rotate right 15, add
//   0xa282ead8. CRC-32C computed bit by bit here (RFC 3720, reflected polynomial 0x82F63B78).
// - Event / Summary / Summary.Value (tensorflow/core/util/event.proto,
//   tensorflow/core/framework/summary.proto), decoded by the protobuf wire format: every field of
//   any wire type is parsed, so an unexpected field or a broken length is an error.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace xmodal::testing {

struct TbValue {
  std::string tag;
  float simple_value = 0;
};

struct TbEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<TbValue> values;
};

namespace detail {

inline uint32_t crc32c_bitwise(const std::string& data) {
  uint32_t crc = 0xffffffffu;
  for (const unsigned char byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

inline uint64_t little_endian(const std::string& s, size_t at, int n) {
  if (at + n > s.size()) throw std::runtime_error("truncated fixed-width value");
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  return v;
}

// One protocol buffer message as (field, wire type, value) triples.
struct Field {
  uint32_t number;
  int wire;
  uint64_t scalar;    // varint, fixed64, fixed32
  std::string bytes;  // length-delimited
};

inline uint64_t varint(const std::string& s, size_t& at) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (at >= s.size()) throw std::runtime_error("truncated varint");
    const auto b = static_cast<unsigned char>(s[at++]);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
  throw std::runtime_error("varint longer than 10 bytes");
}

inline std::vector<Field> fields(const std::string& message) {
  std::vector<Field> out;
  size_t at = 0;
  while (at < message.size()) {
    const uint64_t key = varint(message, at);
    Field f{static_cast<uint32_t>(key >> 3), static_cast<int>(key & 7), 0, {}};
    if (f.wire == 0) {
      f.scalar = varint(message, at);
    } else if (f.wire == 1) {
      f.scalar = little_endian(message, at, 8);
      at += 8;
    } else if (f.wire == 5) {
      f.scalar = little_endian(message, at, 4);
      at += 4;
    } else if (f.wire == 2) {
      const uint64_t n = varint(message, at);
      if (n > message.size() - at) throw std::runtime_error("length past the message end");
      f.bytes = message.substr(at, n);
      at += n;
    } else {
      throw std::runtime_error("unsupported wire type " + std::to_string(f.wire));
    }
    out.push_back(f);
  }
  return out;
}

inline TbEvent parse_event(const std::string& data) {
  TbEvent e;
  for (const auto& f : fields(data)) {
    if (f.number == 1 && f.wire == 1) {
      std::memcpy(&e.wall_time, &f.scalar, 8);
    } else if (f.number == 2 && f.wire == 0) {
      e.step = static_cast<int64_t>(f.scalar);
    } else if (f.number == 3 && f.wire == 2) {
      e.file_version = f.bytes;
    } else if (f.number == 5 && f.wire == 2) {
      for (const auto& v : fields(f.bytes)) {
        if (v.number != 1 || v.wire != 2) throw std::runtime_error("Summary: unexpected field");
        TbValue value;
        bool has_value = false;
        for (const auto& g : fields(v.bytes)) {
          if (g.number == 1 && g.wire == 2) {
            value.tag = g.bytes;
          } else if (g.number == 2 && g.wire == 5) {
            const auto bits = static_cast<uint32_t>(g.scalar);
            std::memcpy(&value.simple_value, &bits, 4);
            has_value = true;
          } else {
            throw std::runtime_error("Summary.Value: unexpected field " + std::to_string(g.number));
          }
        }
        if (!has_value) throw std::runtime_error("Summary.Value without simple_value");
        e.values.push_back(value);
      }
    } else {
      throw std::runtime_error("Event: unexpected field " + std::to_string(f.number));
    }
  }
  return e;
}

}  // namespace detail

/// Every event of `path`; throws std::runtime_error on a bad CRC, a truncated record or a
/// malformed Event.
inline std::vector<TbEvent> read_tensorboard_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<TbEvent> events;
  size_t at = 0;
  while (at < s.size()) {
    const std::string length = s.substr(at, 8);
    const uint64_t n = detail::little_endian(s, at, 8);
    if (detail::little_endian(s, at + 8, 4) != detail::masked(detail::crc32c_bitwise(length))) {
      throw std::runtime_error(path + ": bad length CRC at byte " + std::to_string(at));
    }
    if (at + 16 + n > s.size()) throw std::runtime_error(path + ": truncated record");
    const std::string data = s.substr(at + 12, n);
    if (detail::little_endian(s, at + 12 + n, 4) != detail::masked(detail::crc32c_bitwise(data))) {
      throw std::runtime_error(path + ": bad data CRC at byte " + std::to_string(at));
    }
    events.push_back(detail::parse_event(data));
    at += 16 + n;
  }
  return events;
}

}  // namespace xmodal::testing
