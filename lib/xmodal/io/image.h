// Image files -> RGB pixels (OpenCV), with errors that name the file.
#pragma once

#include <opencv2/core.hpp>

#include <string>

namespace xmodal::io {

/// Decodes any format OpenCV reads into an 8-bit RGB image (grey and alpha are converted).
/// Throws std::runtime_error: "cannot read image a.png: file not found" / "... not a decodable
/// image".
cv::Mat read_image_rgb(const std::string& path);

/// Encodes `image` (8-bit, 1 or 3 channels, RGB order for 3) as PNG bytes.
std::string encode_png(const cv::Mat& image);

}  // namespace xmodal::io
