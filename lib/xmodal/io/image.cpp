#include "xmodal/io/image.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "xmodal/core/error.h"
#include "xmodal/core/files.h"

namespace xmodal::io {
namespace {

// Reads bytes at absolute offsets of a file through one 64 KiB window, so the format check,
// the DICOM test and a header all come from a single read; short reads come back short.
class Header {
 public:
  explicit Header(const std::string& path) : in_(path, std::ios::binary) {}
  // Bytes already in memory: every offset is inside the window.
  static Header of_bytes(const std::string& bytes) {
    Header h;
    h.window_ = bytes;
    h.at_end_ = true;
    h.in_memory_ = true;
    return h;
  }
  std::string at(uint64_t offset, size_t n) {
    const bool inside = offset >= start_ && (offset - start_ + n <= window_.size() ||
                                             (at_end_ && offset - start_ <= window_.size()));
    if (!inside && !in_memory_) load(offset, std::max<size_t>(n, 1 << 16));
    return offset - start_ < window_.size() ? window_.substr(offset - start_, n) : std::string();
  }
  // The file's size in bytes.
  uint64_t size() {
    if (in_memory_) return window_.size();
    in_.clear();
    in_.seekg(0, std::ios::end);
    const std::streamoff end = in_.tellg();
    return end > 0 ? static_cast<uint64_t>(end) : 0;
  }
  // The byte at `offset`, or -1 past the end.
  int byte(uint64_t offset) {
    const std::string b = at(offset, 1);
    return b.empty() ? -1 : static_cast<unsigned char>(b[0]);
  }

 private:
  void load(uint64_t offset, size_t n) {
    window_.assign(n, '\0');
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(window_.data(), static_cast<std::streamsize>(n));
    at_end_ = !in_;
    window_.resize(in_ ? n : static_cast<size_t>(std::max<std::streamsize>(in_.gcount(), 0)));
    start_ = offset;
  }
  Header() = default;
  std::ifstream in_;
  std::string window_;
  uint64_t start_ = 0;
  bool at_end_ = false;
  bool in_memory_ = false;
};

uint64_t le(const std::string& b, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}
uint64_t be(const std::string& b, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

// JPEG: the frame header (SOFn) follows any number of segments (EXIF, ICC profiles, tables),
// and the first scan (SOS) follows it. Markers are found as libjpeg finds them, so a file
// cannot hide its frame from this check and still decode: bytes up to the next FF are skipped,
// then FF fill bytes, and FF 00 is data.
struct JpegLayout {
  std::optional<ImageSize> size;
  int frame = 0;           ///< the SOFn marker (0xC0 baseline, 0xC2 progressive, ...)
  int hmax = 1, vmax = 1;  ///< the largest sampling factors of the frame's components
  uint64_t scan = 0;       ///< offset of the first scan header (SOS), 0 = none
};

JpegLayout jpeg_layout(Header& file) {
  JpegLayout j;
  uint64_t pos = 2;  // after the start-of-image marker FF D8, which format_of checked
  for (;;) {
    int marker = 0;
    while (marker == 0) {
      while ((marker = file.byte(pos)) != 0xFF) {
        if (marker < 0) return j;
        ++pos;
      }
      while ((marker = file.byte(pos)) == 0xFF) ++pos;
      if (marker < 0) return j;
      ++pos;  // past the marker code
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;  // no length field
    if (marker == 0xD9) return j;                                        // end of image
    if (marker == 0xDA) {  // the first scan: the entropy-coded data follows its header
      if (j.size) j.scan = pos;
      return j;
    }
    const std::string segment = file.at(pos, 8);  // length, then a frame's precision, h, w, Nf
    if (segment.size() < 2) return j;
    const uint64_t length = be(segment, 0, 2);
    if (length < 2) return j;
    const bool frame =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (frame && !j.size) {
      if (segment.size() < 8) return j;
      j.size = ImageSize{be(segment, 5, 2), be(segment, 3, 2)};
      j.frame = marker;
      const int components = static_cast<unsigned char>(segment[7]);
      const std::string table = file.at(pos + 8, 3 * static_cast<size_t>(components));
      for (int c = 0; c < components && static_cast<size_t>(3 * c + 1) < table.size(); ++c) {
        const int factors = static_cast<unsigned char>(table[3 * c + 1]);
        j.hmax = std::max(j.hmax, factors >> 4);
        j.vmax = std::max(j.vmax, factors & 0xF);
      }
    }
    pos += length;
  }
}

std::optional<ImageSize> jpeg_size(Header& file) { return jpeg_layout(file).size; }

// PNM: "P1".."P6", then width and height in ASCII, each after whitespace or '#' comments, as
// OpenCV's reader takes them (numbers above INT_MAX are its error).
std::optional<ImageSize> pnm_size(Header& file) {
  uint64_t pos = 2;
  uint64_t dims[2] = {0, 0};
  for (uint64_t& value : dims) {
    int c = file.byte(pos);
    while (c < '0' || c > '9') {
      if (c == '#') {
        while (c >= 0 && c != '\n' && c != '\r') c = file.byte(++pos);
      } else if (c < 0 || !std::isspace(c)) {
        return std::nullopt;
      }
      c = file.byte(++pos);
    }
    for (; c >= '0' && c <= '9'; c = file.byte(++pos)) {
      value = value * 10 + static_cast<uint64_t>(c - '0');
      if (value > 0x7FFFFFFF) return std::nullopt;
    }
  }
  return ImageSize{dims[0], dims[1]};
}

// The formats xmodal hands to OpenCV, by their leading bytes. OpenCV would also try DICOM,
// JPEG 2000, OpenEXR, Radiance HDR, Sun raster, PAM, PFM and TIFF; their libraries are less
// hardened (GDCM, for DICOM, aborts the process on a malformed file: found by fuzz_image), and
// the size a TIFF declares is not checked here.
enum class Format { other, png, jpeg, bmp, webp, pnm };

// `h`: the file's first 32 bytes (fewer if it is shorter).
Format format_of(const std::string& h) {
  const auto starts = [&](const char* magic, size_t n) { return h.compare(0, n, magic, n) == 0; };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return Format::png;
  if (starts("\xFF\xD8\xFF", 3)) return Format::jpeg;
  if (starts("BM", 2)) return Format::bmp;
  if (starts("RIFF", 4) && h.size() >= 12 && h.compare(8, 4, "WEBP") == 0) return Format::webp;
  if (h.size() >= 3 && h[0] == 'P' && h[1] >= '1' && h[1] <= '6' &&
      std::isspace(static_cast<unsigned char>(h[2]))) {
    return Format::pnm;
  }
  return Format::other;
}

// The size the header of `file` (first bytes `h`, of format `format`) declares, where that is
// known without decoding (every format xmodal reads).
std::optional<ImageSize> header_size(Header& file, const std::string& h, Format format) {
  switch (format) {
    case Format::png:
      if (h.size() >= 24 && h.compare(12, 4, "IHDR") == 0) {
        return ImageSize{be(h, 16, 4), be(h, 20, 4)};
      }
      break;
    case Format::jpeg:
      return jpeg_size(file);
    case Format::bmp:
      if (h.size() < 26) break;
      if (le(h, 14, 4) == 12) return ImageSize{le(h, 18, 2), le(h, 20, 2)};  // BITMAPCOREHEADER
      return ImageSize{le(h, 18, 4),  // a negative height means top-down rows
                       static_cast<uint64_t>(
                           std::abs(static_cast<int64_t>(static_cast<int32_t>(le(h, 22, 4)))))};
    case Format::webp:
      if (h.size() < 30) break;
      if (h.compare(12, 4, "VP8 ") == 0) {
        return ImageSize{le(h, 26, 2) & 0x3FFF, le(h, 28, 2) & 0x3FFF};
      }
      if (h.compare(12, 4, "VP8L") == 0) {
        const uint64_t bits = le(h, 21, 4);
        return ImageSize{(bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
      }
      if (h.compare(12, 4, "VP8X") == 0) return ImageSize{le(h, 24, 3) + 1, le(h, 27, 3) + 1};
      break;
    case Format::pnm:
      return pnm_size(file);
    default:
      break;
  }
  return std::nullopt;
}

}  // namespace

std::optional<ImageSize> image_header_size(const std::string& path) {
  Header file(path);
  const std::string head = file.at(0, 32);
  return header_size(file, head, format_of(head));
}

uint64_t max_image_pixels() {
  static const uint64_t limit = [] {
    const char* env = std::getenv("XMODAL_MAX_IMAGE_PIXELS");
    if (env != nullptr && *env != '\0') {
      char* end = nullptr;
      errno = 0;
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (errno != 0 || end == env || *end != '\0' || v == 0 || env[0] == '-') {
        throw std::invalid_argument(std::string("XMODAL_MAX_IMAGE_PIXELS: expected a positive "
                                                "number of pixels, got '") +
                                    env + "'");
      }
      return static_cast<uint64_t>(v);
    }
    return kDefaultMaxImagePixels;
  }();
  return limit;
}

namespace {

// libjpeg decodes a JPEG whose data stops early with a warning only, filling the rest with
// grey (a file cut in half, or 4 KB that claims 11000 x 11000 pixels: 885 MB and 4 s for a
// grey picture). Refused here: a file without the end-of-image marker after its scan, and a
// baseline or extended Huffman JPEG (SOF0/SOF1) with fewer bytes of scan data than its blocks
// need, at least 2 bits each (a DC code and an end-of-block code, each >= 1 bit); progressive
// and arithmetic-coded files have no such floor and are bounded by the pixel limit alone.
void check_jpeg_data(Header& file, const std::string& name) {
  const JpegLayout j = jpeg_layout(file);
  if (!j.size) return;  // no frame: OpenCV says it cannot decode it
  const uint64_t total = file.size();
  if (j.scan == 0 || j.scan >= total) {
    throw InputError("cannot read image " + name +
                     ": a truncated JPEG (no image data after its header)");
  }
  bool end_found = false;  // the last FF D9 at or after the scan (FF in the data is FF 00)
  for (uint64_t end = total; end > j.scan && !end_found;) {
    const uint64_t begin = end - std::min<uint64_t>(end - j.scan, 1 << 16);
    const std::string window = file.at(begin, static_cast<size_t>(end + 1 - begin));
    end_found = window.find("\xFF\xD9") != std::string::npos;
    end = begin;
  }
  if (!end_found) {
    throw InputError("cannot read image " + name +
                     ": a truncated JPEG (no end-of-image marker after its data)");
  }
  if (j.frame == 0xC0 || j.frame == 0xC1) {
    const uint64_t mcus = ((j.size->width + 8 * j.hmax - 1) / (8 * j.hmax)) *
                          ((j.size->height + 8 * j.vmax - 1) / (8 * j.vmax));
    const uint64_t need = mcus / 4;  // >= 2 bits per MCU
    if (total - j.scan < need) {
      throw InputError("cannot read image " + name + ": a truncated JPEG (" +
                       std::to_string(total - j.scan) + " bytes of image data; " +
                       std::to_string(j.size->width) + " x " + std::to_string(j.size->height) +
                       " pixels need at least " + std::to_string(need) + ")");
    }
  }
}

// What read_image_rgb and decode_image_rgb check before decoding; `name` is the file (or what
// the bytes are) in the messages.
void check_before_decoding(Header& file, const std::string& name, uint64_t max_pixels) {
  const std::string head = file.at(0, 32);
  const Format format = format_of(head);
  if (format == Format::other) {
    throw InputError("cannot read image " + name +
                     ": not a decodable image (not a PNG, JPEG, BMP, WebP or PNM file)");
  }
  // OpenCV tries its decoders in turn and GDCM's test is "DICM" at byte 128: a file of another
  // format whose own decoder turns it down (a WebP that libwebp cannot parse) would reach GDCM.
  if (file.at(128, 4) == "DICM") {
    throw InputError("cannot read image " + name +
                     ": not a decodable image (a DICOM marker at byte 128)");
  }
  // A file of a few hundred bytes can claim a billion pixels; OpenCV would allocate for them
  // before finding out the data is not there (its own cap is 2^30 pixels, up to 8 GB).
  if (const auto size = header_size(file, head, format)) {
    if (size->height != 0 && size->width > max_pixels / size->height) {
      throw InputError(
          "cannot read image " + name + ": " + std::to_string(size->width) + " x " +
          std::to_string(size->height) + " pixels is more than " + std::to_string(max_pixels) +
          (max_pixels == max_image_pixels() ? " (XMODAL_MAX_IMAGE_PIXELS raises the limit)" : ""));
    }
  }
  if (format == Format::jpeg) check_jpeg_data(file, name);
}

// A decoded image (any depth, 1, 3 or 4 channels in OpenCV's BGR order) as 8-bit RGB.
cv::Mat to_rgb(cv::Mat image, const std::string& name) {
  if (image.empty()) {
    throw InputError("cannot read image " + name +
                     ": not a decodable image (corrupt or unknown format)");
  }
  if (image.depth() != CV_8U) {
    cv::Mat converted;
    const double scale = image.depth() == CV_16U ? 1.0 / 257.0 : 1.0;
    image.convertTo(converted, CV_8U, scale);
    image = converted;
  }
  cv::Mat rgb;
  switch (image.channels()) {
    case 1:
      cv::cvtColor(image, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 3:
      cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB);
      break;
    case 4:
      cv::cvtColor(image, rgb, cv::COLOR_BGRA2RGB);
      break;
    default:
      throw InputError("cannot read image " + name + ": " + std::to_string(image.channels()) +
                       " channels");
  }
  return rgb;
}

}  // namespace

cv::Mat read_image_rgb(const std::string& path) {
  try {
    check_regular_file(path);
  } catch (const FileError& e) {  // a folder, FIFO, device or symlink loop says what it is
    throw InputError("cannot read image " + path + ": " +
                     (e.reason() == "no such file" ? "file not found" : e.reason()));
  }
  Header file(path);
  check_before_decoding(file, path, max_image_pixels());
  return to_rgb(cv::imread(path, cv::IMREAD_UNCHANGED), path);
}

cv::Mat decode_image_rgb(const std::string& bytes, const std::string& name, uint64_t max_pixels) {
  if (bytes.empty()) throw InputError("cannot read image " + name + ": no bytes");
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    throw InputError("cannot read image " + name + ": over 2 GB");
  }
  Header file = Header::of_bytes(bytes);
  check_before_decoding(file, name, max_pixels == 0 ? max_image_pixels() : max_pixels);
  // imdecode reads the buffer in place (a 1 x N matrix over the bytes, no copy).
  const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
  return to_rgb(cv::imdecode(buffer, cv::IMREAD_UNCHANGED), name);
}

std::string encode_png(const cv::Mat& image) {
  cv::Mat bgr = image;
  if (image.channels() == 3) cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> bytes;
  if (!cv::imencode(".png", bgr, bytes)) throw std::runtime_error("PNG encoding failed");
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace xmodal::io
