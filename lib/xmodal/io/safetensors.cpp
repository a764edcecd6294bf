#include "xmodal/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <stdexcept>

#include "xmodal/core/error.h"
#include "xmodal/core/strings.h"
#include "xmodal/io/atomic_file.h"

namespace xmodal::io {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit

struct DType {
  const char* name;
  int bits;
  std::optional<torch::ScalarType> torch_type;
};

// Every dtype the format defines (safetensors 0.6), with its size in bits.
const std::vector<DType>& dtypes() {
  static const std::vector<DType> table = {
      {"BOOL", 8, torch::kBool},         {"F4", 4, std::nullopt},
      {"F6_E2M3", 6, std::nullopt},      {"F6_E3M2", 6, std::nullopt},
      {"U8", 8, torch::kUInt8},          {"I8", 8, torch::kInt8},
      {"F8_E5M2", 8, std::nullopt},      {"F8_E4M3", 8, std::nullopt},
      {"F8_E8M0", 8, std::nullopt},      {"I16", 16, torch::kInt16},
      {"U16", 16, std::nullopt},         {"F16", 16, torch::kFloat16},
      {"BF16", 16, torch::kBFloat16},    {"I32", 32, torch::kInt32},
      {"U32", 32, std::nullopt},         {"F32", 32, torch::kFloat32},
      {"C64", 64, torch::kComplexFloat}, {"F64", 64, torch::kFloat64},
      {"I64", 64, torch::kInt64},        {"U64", 64, std::nullopt},
  };
  return table;
}

const DType* find_dtype(const std::string& name) {
  for (const auto& d : dtypes()) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool valid_utf8(const uint8_t* p, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    size_t extra = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= n) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace

struct SafeTensorsFile::Storage {
  std::string owned;    // in-memory files
  void* map = nullptr;  // mapped files
  size_t map_size = 0;
  const uint8_t* bytes = nullptr;
  size_t size = 0;
  ~Storage() {
    if (map && map != MAP_FAILED) munmap(map, map_size);
  }
};

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  SafeTensorsFile file;
  file.path_ = path;
  file.storage_ = std::make_shared<Storage>();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int saved = errno;
    ::close(fd);
    throw InputError("cannot stat " + path + ": " + std::strerror(saved));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw InputError(path + ": is a directory, not a safetensors file");
  }
  file.storage_->size = static_cast<size_t>(st.st_size);
  if (st.st_size > 0) {
    void* map = mmap(nullptr, file.storage_->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      const int saved = errno;
      ::close(fd);
      throw InputError("cannot map " + path + ": " + std::strerror(saved));
    }
    file.storage_->map = map;
    file.storage_->map_size = file.storage_->size;
    file.storage_->bytes = static_cast<const uint8_t*>(map);
  }
  ::close(fd);
  file.parse();
  return file;
}

SafeTensorsFile SafeTensorsFile::from_bytes(std::string bytes, const std::string& name) {
  SafeTensorsFile file;
  file.path_ = name;
  file.storage_ = std::make_shared<Storage>();
  file.storage_->owned = std::move(bytes);
  file.storage_->bytes = reinterpret_cast<const uint8_t*>(file.storage_->owned.data());
  file.storage_->size = file.storage_->owned.size();
  file.parse();
  return file;
}

namespace {

// A header problem: "<file>: <what> (<the safetensors crate's error variant>)".
struct Fail {
  const std::string& path;
  [[noreturn]] void operator()(const std::string& what, const char* variant) const {
    throw InputError(path + ": " + what + " (" + variant + ")");
  }
};

struct Entry {
  std::string name;
  TensorInfo info;
  const DType* dtype;
};

// The header's JSON, refusing a key given twice (nlohmann would silently keep the last one).
json parse_header(const uint8_t* header, size_t n, const Fail& fail) {
  // Parse with duplicate-key detection (nlohmann would silently keep the last one).
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int /*depth*/, json::parse_event_t event, json& value) {
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == json::parse_event_t::object_end && !open_objects.empty()) open_objects.pop_back();
    if (event == json::parse_event_t::key && !open_objects.empty() &&
        !open_objects.back().insert(value.get<std::string>()).second && duplicate.empty()) {
      duplicate = value.get<std::string>();
    }
    return true;
  };
  json root;
  try {
    root = json::parse(header, header + n, on_event);
  } catch (const json::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what(), "InvalidHeaderDeserialization");
  }
  if (!duplicate.empty()) {
    fail("header has the key '" + duplicate + "' twice", "InvalidHeaderDeserialization");
  }
  if (!root.is_object()) fail("header is not a JSON object", "InvalidHeaderDeserialization");
  return root;
}

// One tensor's entry {"dtype", "shape", "data_offsets"}, checked.
Entry parse_entry(const std::string& name, const json& v, const Fail& fail) {
  const std::string where = "tensor '" + name + "': ";
  if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
      !v.contains("data_offsets")) {
    fail(where + "expected {\"dtype\", \"shape\", \"data_offsets\"}",
         "InvalidHeaderDeserialization");
  }
  for (auto f = v.begin(); f != v.end(); ++f) {
    if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets") {
      fail(where + "unknown field '" + f.key() + "'", "InvalidHeaderDeserialization");
    }
  }
  Entry e{name, {}, nullptr};
  if (!v["dtype"].is_string())
    fail(where + "dtype is not a string", "InvalidHeaderDeserialization");
  e.info.dtype = v["dtype"].get<std::string>();
  e.dtype = find_dtype(e.info.dtype);
  if (!e.dtype)
    fail(where + "unknown dtype '" + e.info.dtype + "'", "InvalidHeaderDeserialization");
  const json& shape = v["shape"];
  if (!shape.is_array()) fail(where + "shape is not a list", "InvalidHeaderDeserialization");
  uint64_t elements = 1;
  bool overflow = false;
  for (const json& d : shape) {
    if (!d.is_number_unsigned()) {
      fail(where + "shape entries must be non-negative integers", "InvalidHeaderDeserialization");
    }
    const uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
    if (dim != 0 && elements > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
    elements *= dim;
    e.info.shape.push_back(static_cast<int64_t>(dim));
  }
  const json& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    fail(where + "data_offsets must be [begin, end]", "InvalidHeaderDeserialization");
  }
  e.info.begin = offsets[0].get<uint64_t>();
  e.info.end = offsets[1].get<uint64_t>();
  if (overflow) fail(where + "shape " + shape.dump() + " overflows", "ValidationOverflow");
  if (elements > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(e.dtype->bits)) {
    fail(where + "shape " + shape.dump() + " of " + e.info.dtype + " overflows in bits",
         "ValidationOverflow");
  }
  return e;
}

// Tensors must tile the buffer from 0 to its end, in offset order, without holes.
void check_tiling(std::vector<Entry>& entries, uint64_t buffer_size, const Fail& fail) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.info.begin, a.info.end, a.name) < std::tie(b.info.begin, b.info.end, b.name);
  });
  uint64_t expected_begin = 0;
  for (const Entry& e : entries) {
    const std::string where = "tensor '" + e.name + "': ";
    if (e.info.begin != expected_begin || e.info.end < e.info.begin) {
      fail(where + "data_offsets [" + std::to_string(e.info.begin) + ", " +
               std::to_string(e.info.end) + "] leave a hole or overlap (expected begin " +
               std::to_string(expected_begin) + ")",
           "InvalidOffset");
    }
    uint64_t elements = 1;
    for (int64_t d : e.info.shape) elements *= static_cast<uint64_t>(d);
    const uint64_t bits = elements * static_cast<uint64_t>(e.dtype->bits);
    if (bits % 8 != 0) {
      fail(
          where + e.info.dtype + " " + shape_text(e.info.shape) + " is not a whole number of bytes",
          "MisalignedSlice");
    }
    if (e.info.end - e.info.begin != bits / 8) {
      fail(where + e.info.dtype + " " + shape_text(e.info.shape) + " needs " +
               std::to_string(bits / 8) + " bytes, data_offsets hold " +
               std::to_string(e.info.end - e.info.begin),
           "TensorInvalidInfo");
    }
    expected_begin = e.info.end;
  }
  if (expected_begin != buffer_size) {
    fail("tensors cover " + std::to_string(expected_begin) + " bytes but the data buffer has " +
             std::to_string(buffer_size) +
             (buffer_size < expected_begin ? " (truncated file?)" : ""),
         "MetadataIncompleteBuffer");
  }
}

}  // namespace

void SafeTensorsFile::parse() {
  const uint8_t* bytes = storage_->bytes;
  const size_t size = storage_->size;
  const Fail fail{path_};
  if (size < 8) {
    fail("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length",
         "HeaderTooSmall");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeader) {
    fail("header length " + std::to_string(n) + " exceeds the limit of " +
             std::to_string(kMaxHeader) + " bytes",
         "HeaderTooLarge");
  }
  if (n > size - 8) {
    fail("header length " + std::to_string(n) + " runs past the end of the " +
             std::to_string(size) + "-byte file (truncated?)",
         "InvalidHeaderLength");
  }
  const uint8_t* header = bytes + 8;
  if (!valid_utf8(header, n)) fail("header is not valid UTF-8", "InvalidHeader");

  const json root = parse_header(header, n, fail);
  std::vector<Entry> entries;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object())
        fail("__metadata__ must be an object of strings", "InvalidHeaderDeserialization");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          fail("__metadata__ value of '" + m.key() + "' is not a string",
               "InvalidHeaderDeserialization");
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(name, v, fail));
  }
  check_tiling(entries, size - 8 - n, fail);
  buffer_ = bytes + 8 + n;
  for (Entry& e : entries) {
    names_.push_back(e.name);
    infos_.emplace(e.name, std::move(e.info));
  }
}

const TensorInfo& SafeTensorsFile::info(const std::string& name) const {
  const auto it = infos_.find(name);
  if (it == infos_.end()) throw std::out_of_range(path_ + ": no tensor named '" + name + "'");
  return it->second;
}

const uint8_t* SafeTensorsFile::data(const std::string& name) const {
  return buffer_ + info(name).begin;
}

torch::Tensor SafeTensorsFile::tensor(const std::string& name) const {
  const TensorInfo& i = info(name);
  const DType* dtype = find_dtype(i.dtype);
  if (!dtype->torch_type) {
    throw InputError(path_ + ": tensor '" + name + "' has dtype " + i.dtype + ", which LibTorch " +
                     TORCH_VERSION + " cannot hold");
  }
  auto out = torch::empty(i.shape, torch::TensorOptions().dtype(*dtype->torch_type));
  if (i.end > i.begin) std::memcpy(out.data_ptr(), buffer_ + i.begin, i.end - i.begin);
  return out;
}

std::map<std::string, torch::Tensor> SafeTensorsFile::tensors() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : names_) out.emplace(name, tensor(name));
  return out;
}

std::string safetensors_dtype(torch::ScalarType type) {
  for (const auto& d : dtypes()) {
    if (d.torch_type && *d.torch_type == type) return d.name;
  }
  throw std::invalid_argument(std::string("safetensors has no dtype for LibTorch's ") +
                              c10::toString(type));
}

std::string serialize_safetensors(const std::map<std::string, torch::Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  struct Item {
    std::string name;
    torch::Tensor data;
    std::string dtype;
    int64_t bytes;
    size_t element_size;
  };
  std::vector<Item> items;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw std::invalid_argument("'__metadata__' is not a tensor name");
    TORCH_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
    auto cpu = t.detach().to(torch::kCPU).contiguous();
    items.push_back({name, cpu, safetensors_dtype(cpu.scalar_type()),
                     cpu.numel() * cpu.element_size(), static_cast<size_t>(cpu.element_size())});
  }
  // The reference serializer's order: larger dtypes first (keeps them aligned), then by name.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.element_size != b.element_size) return a.element_size > b.element_size;
    return a.name < b.name;
  });
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first_meta = true;
    for (const auto& [k, v] : metadata) {
      header += (first_meta ? "" : ",") + quote_json(k) + ":" + quote_json(v);
      first_meta = false;
    }
    header += "}";
    first = false;
  }
  int64_t offset = 0;
  for (const Item& item : items) {
    header += (first ? "" : ",") + quote_json(item.name) + ":{\"dtype\":\"" + item.dtype +
              "\",\"shape\":[";
    for (int64_t d = 0; d < item.data.dim(); ++d) {
      header += (d ? "," : "") + std::to_string(item.data.size(d));
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + item.bytes) + "]}";
    offset += item.bytes;
    first = false;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + header.size() + static_cast<size_t>(offset));
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  out += header;
  for (const Item& item : items) {
    out.append(static_cast<const char*>(item.data.data_ptr()), static_cast<size_t>(item.bytes));
  }
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path) {
  return SafeTensorsFile::open(path).tensors();
}

}  // namespace xmodal::io
