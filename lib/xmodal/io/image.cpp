#include "xmodal/io/image.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace xmodal::io {
namespace {

// Reads bytes at absolute offsets of a file; short reads come back short.
class Header {
 public:
  explicit Header(const std::string& path) : in_(path, std::ios::binary) {}
  std::string at(uint64_t offset, size_t n) {
    std::string out(n, '\0');
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(out.data(), static_cast<std::streamsize>(n));
    out.resize(in_ ? n : static_cast<size_t>(std::max<std::streamsize>(in_.gcount(), 0)));
    return out;
  }

 private:
  std::ifstream in_;
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

// JPEG: the frame header (SOFn) follows any number of segments (EXIF, ICC profiles, tables).
std::optional<ImageSize> jpeg_size(Header& file) {
  uint64_t pos = 2;
  for (int segments = 0; segments < 4096; ++segments) {
    std::string m = file.at(pos, 4);
    if (m.size() < 4 || static_cast<unsigned char>(m[0]) != 0xFF) return std::nullopt;
    const auto marker = static_cast<unsigned char>(m[1]);
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length field
      pos += 2;
      continue;
    }
    const uint64_t length = be(m, 2, 2);
    if (length < 2) return std::nullopt;
    const bool frame =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (frame) {
      const std::string f = file.at(pos + 4, 5);  // precision, height, width
      if (f.size() < 5) return std::nullopt;
      return ImageSize{be(f, 3, 2), be(f, 1, 2)};
    }
    if (marker == 0xD9 || marker == 0xDA) return std::nullopt;  // end, or scan before a frame
    pos += 2 + length;
  }
  return std::nullopt;
}

// The formats xmodal hands to OpenCV, by their leading bytes. OpenCV would also try DICOM,
// JPEG 2000, OpenEXR, Radiance HDR, Sun raster, PAM and PFM; their libraries are less hardened,
// and GDCM (DICOM) aborts the process on a malformed file (found by fuzz_image).
enum class Format { other, png, jpeg, bmp, webp, tiff, pnm };

// `h`: the file's first 32 bytes (fewer if it is shorter).
Format format_of(const std::string& h) {
  const auto starts = [&](const char* magic, size_t n) { return h.compare(0, n, magic, n) == 0; };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return Format::png;
  if (starts("\xFF\xD8\xFF", 3)) return Format::jpeg;
  if (starts("BM", 2)) return Format::bmp;
  if (starts("RIFF", 4) && h.size() >= 12 && h.compare(8, 4, "WEBP") == 0) return Format::webp;
  if (starts("II*\0", 4) || starts("MM\0*", 4) || starts("II+\0", 4) || starts("MM\0+", 4)) {
    return Format::tiff;
  }
  if (h.size() >= 3 && h[0] == 'P' && h[1] >= '1' && h[1] <= '6' &&
      std::isspace(static_cast<unsigned char>(h[2]))) {
    return Format::pnm;
  }
  return Format::other;
}

// The size the header of `file` (first bytes `h`, of format `format`) declares, where that is
// known without decoding: PNG, JPEG, BMP and WebP.
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
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (end != nullptr && *end == '\0' && v > 0) return static_cast<uint64_t>(v);
    }
    return kDefaultMaxImagePixels;
  }();
  return limit;
}

cv::Mat read_image_rgb(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error("cannot read image " + path + ": file not found");
  }
  Header file(path);
  const std::string head = file.at(0, 32);
  const Format format = format_of(head);
  if (format == Format::other) {
    throw std::runtime_error("cannot read image " + path +
                             ": not a decodable image (not a PNG, JPEG, BMP, WebP, TIFF or PNM "
                             "file)");
  }
  // A file of a few hundred bytes can claim a billion pixels; OpenCV would allocate for them
  // before finding out the data is not there (its own cap is 2^30 pixels, up to 8 GB).
  if (const auto size = header_size(file, head, format)) {
    if (size->height != 0 && size->width > max_image_pixels() / size->height) {
      throw std::runtime_error("cannot read image " + path + ": " + std::to_string(size->width) +
                               " x " + std::to_string(size->height) + " pixels is more than " +
                               std::to_string(max_image_pixels()) +
                               " (XMODAL_MAX_IMAGE_PIXELS raises the limit)");
    }
  }
  cv::Mat image = cv::imread(path, cv::IMREAD_UNCHANGED);
  if (image.empty()) {
    throw std::runtime_error("cannot read image " + path +
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
      throw std::runtime_error("cannot read image " + path + ": " +
                               std::to_string(image.channels()) + " channels");
  }
  return rgb;
}

std::string encode_png(const cv::Mat& image) {
  cv::Mat bgr = image;
  if (image.channels() == 3) cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> bytes;
  if (!cv::imencode(".png", bgr, bytes)) throw std::runtime_error("PNG encoding failed");
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace xmodal::io
