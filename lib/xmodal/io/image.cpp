#include "xmodal/io/image.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <stdexcept>

namespace xmodal::io {

cv::Mat read_image_rgb(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error("cannot read image " + path + ": file not found");
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
