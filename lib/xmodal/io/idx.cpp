#include "xmodal/io/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "xmodal/core/error.h"

namespace xmodal::io {

int64_t IdxArray::item_size() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

IdxArray parse_idx(const std::string& bytes, const std::string& name) {
  auto fail = [&](const std::string& what) { throw InputError(name + ": " + what); };
  if (bytes.size() < 4) fail("not an IDX file (" + std::to_string(bytes.size()) + " bytes)");
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (p[0] != 0 || p[1] != 0) fail("not an IDX file (bad magic bytes)");
  if (p[2] != 0x08)
    fail("IDX element type 0x" + std::to_string(p[2]) +
         " is not supported (only 0x08, unsigned byte)");
  const int dims = p[3];
  if (dims < 1 || dims > 4)
    fail("IDX dimension count " + std::to_string(dims) + " is out of range 1..4");
  const size_t header = 4 + 4 * static_cast<size_t>(dims);
  if (bytes.size() < header) fail("truncated IDX header");
  IdxArray out;
  uint64_t total = 1;
  for (int d = 0; d < dims; ++d) {
    const uint8_t* q = p + 4 + 4 * d;
    const uint64_t size =
        (uint64_t(q[0]) << 24) | (uint64_t(q[1]) << 16) | (uint64_t(q[2]) << 8) | q[3];
    if (size != 0 && total > (uint64_t(1) << 40) / size) fail("IDX shape is implausibly large");
    total *= size;
    out.shape.push_back(static_cast<int64_t>(size));
  }
  const uint64_t available = bytes.size() - header;
  if (available < total) {
    fail("truncated: the header promises " + std::to_string(total) + " values, the file holds " +
         std::to_string(available));
  }
  if (available > total)
    fail(std::to_string(available - total) + " unexpected bytes after the data");
  out.data.assign(p + header, p + header + total);
  return out;
}

IdxArray read_idx(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");  // reads plain files as they are
  if (!file) throw InputError("cannot open " + path + ": " + std::strerror(errno));
  std::string bytes;
  char buffer[1 << 16];
  while (true) {
    const int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      throw InputError(path + ": cannot decompress: " + message);
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  // A gzip stream cut short reads as a short file; zlib reports it at close.
  const int closed = gzclose(file);
  if (closed != Z_OK) throw InputError(path + ": truncated or corrupt gzip data");
  return parse_idx(bytes, path);
}

}  // namespace xmodal::io
