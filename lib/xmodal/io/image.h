// Image files -> RGB pixels (OpenCV), with errors that name the file.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace xmodal::io {

struct ImageSize {
  uint64_t width = 0;
  uint64_t height = 0;
};

/// The size a PNG, JPEG, BMP, WebP or PNM file declares in its header, read without decoding
/// (JPEG markers found as libjpeg finds them); nothing for other formats or a header cut short.
std::optional<ImageSize> image_header_size(const std::string& path);

/// The most pixels read_image_rgb decodes: 2^27 (134M, e.g. 11585 x 11585), or the environment
/// variable XMODAL_MAX_IMAGE_PIXELS.
constexpr uint64_t kDefaultMaxImagePixels = uint64_t{1} << 27;
uint64_t max_image_pixels();

/// Decodes a PNG, JPEG, BMP, WebP or PNM file (OpenCV) into an 8-bit RGB image (grey and alpha
/// are converted). Other formats OpenCV knows (TIFF, DICOM, JPEG 2000, EXR, ...) are refused,
/// and so is any file with DICOM's marker at byte 128 (OpenCV could hand it to GDCM).
/// Throws std::runtime_error: "cannot read image a.png: file not found" / "... not a decodable
/// image" / "... 40000 x 40000 pixels is more than 134217728" (checked before decoding).
cv::Mat read_image_rgb(const std::string& path);

/// read_image_rgb for an image already in memory (an upload): the same formats, checks and
/// limits (`max_pixels` 0 = max_image_pixels()); `name` stands for the file in the messages
/// ("cannot read image NAME: ...").
cv::Mat decode_image_rgb(const std::string& bytes, const std::string& name,
                         uint64_t max_pixels = 0);

/// Encodes `image` (8-bit, 1 or 3 channels, RGB order for 3) as PNG bytes.
std::string encode_png(const cv::Mat& image);

}  // namespace xmodal::io
