#include "xmodal/io/image.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "../support/fixtures.h"
#include "../support/temp_dir.h"

namespace xmodal::io {
namespace {

class ImageFile : public ::testing::Test {
 protected:
  // A 5 x 3 image encoded by OpenCV as `ext` (with encoder `params`).
  static std::string encoded(const std::string& ext, const std::vector<int>& params = {}) {
    const cv::Mat image(3, 5, CV_8UC3, cv::Scalar(10, 20, 30));
    std::vector<uchar> bytes;
    if (!cv::imencode(ext, image, bytes, params)) return "";
    return std::string(bytes.begin(), bytes.end());
  }
  std::string write(const std::string& name, const std::string& bytes) {
    return dir_.write(name, bytes);
  }

  testing::TempDir dir_;
};

TEST_F(ImageFile, HeaderSizeOfPngJpegBmpLosslessAndLossyWebp) {
  // WebP: lossless (VP8L) by default, lossy (VP8) below quality 100.
  const std::vector<std::pair<std::string, std::string>> files = {
      {".png", encoded(".png")},
      {".jpg", encoded(".jpg")},
      {".bmp", encoded(".bmp")},
      {".webp", encoded(".webp")},
      {".webp", encoded(".webp", {cv::IMWRITE_WEBP_QUALITY, 80})}};
  for (const auto& [ext, bytes] : files) {
    SCOPED_TRACE(ext + ", " + std::to_string(bytes.size()) + " bytes");
    ASSERT_FALSE(bytes.empty()) << "OpenCV cannot write " << ext;
    const auto size = image_header_size(write("a" + ext, bytes));
    ASSERT_TRUE(size.has_value());
    EXPECT_EQ(size->width, 5u);
    EXPECT_EQ(size->height, 3u);
    const cv::Mat rgb = read_image_rgb(write("a" + ext, bytes));
    EXPECT_EQ(rgb.cols, 5);
    EXPECT_EQ(rgb.rows, 3);
  }
}

TEST_F(ImageFile, PnmHeaderSizeSkipsWhitespaceAndComments) {
  const std::vector<std::pair<std::string, std::string>> files = {
      {".ppm", encoded(".ppm")},
      {".pgm", "P5\n5 3\n255\n" + std::string(15, '\x40')},  // grey, binary
      {".pgm", "P5 # a comment\n\t5\r\n# another\n3 255\n" + std::string(15, '\x40')}};
  for (const auto& [ext, bytes] : files) {
    SCOPED_TRACE(bytes.substr(0, 12));
    ASSERT_FALSE(bytes.empty()) << "OpenCV cannot write " << ext;
    const auto size = image_header_size(write("a" + ext, bytes));
    ASSERT_TRUE(size.has_value());
    EXPECT_EQ(size->width, 5u);
    EXPECT_EQ(size->height, 3u);
    const cv::Mat rgb = read_image_rgb(write("a" + ext, bytes));
    EXPECT_EQ(rgb.cols, 5);
    EXPECT_EQ(rgb.rows, 3);
    EXPECT_EQ(rgb.channels(), 3);
  }
}

TEST_F(ImageFile, OtherFormatsOpenCvKnowsAreRefused) {
  // DICOM: "DICM" at byte 128. OpenCV hands such a file to GDCM, which aborts the process when
  // it is malformed (tests/fuzz/regressions/image/).
  std::string dicom(128, '\0');
  dicom += "DICM" + std::string(64, '\x01');
  const std::vector<std::pair<std::string, std::string>> files = {
      {"a.dcm", dicom},
      {"a.jp2", std::string("\0\0\0\x0cjP  \r\n\x87\n", 12) + std::string(40, '\0')},
      {"a.hdr", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 2\n"},
      {"a.pam", "P7\nWIDTH 1\nHEIGHT 1\nDEPTH 1\nMAXVAL 255\nENDHDR\n\x80"},
      // libtiff's size is not checked before decoding, and torchvision does not read TIFF either.
      {"a.tiff", encoded(".tiff")}};
  for (const auto& [name, bytes] : files) {
    const std::string path = write(name, bytes);
    const std::string error = testing::error_of([&] { read_image_rgb(path); });
    EXPECT_NE(error.find(name + ": not a decodable image (not a PNG, JPEG, BMP, WebP or PNM file)"),
              std::string::npos)
        << name << ": " << error;
  }
}

TEST_F(ImageFile, DicomMarkerInAnotherFormatIsRefused) {
  // A WebP that libwebp turns down makes OpenCV try its next decoders; GDCM's test is "DICM" at
  // byte 128, and it aborts on a malformed file (tests/fuzz/regressions/image/webp-with-dicm-*).
  std::string webp = encoded(".webp", {cv::IMWRITE_WEBP_QUALITY, 80});
  ASSERT_GT(webp.size(), 30u);
  webp.resize(132, '\0');
  webp.replace(16, 4, "\xff\xff\xff\x7f");  // the VP8 chunk's size: more than the file holds
  webp.replace(128, 4, "DICM");
  const auto path = write("dicm.webp", webp);
  const std::string error = testing::error_of([&] { read_image_rgb(path); });
  EXPECT_NE(error.find("dicm.webp: not a decodable image (a DICOM marker at byte 128)"),
            std::string::npos)
      << error;
}

TEST_F(ImageFile, JpegFrameAfterLargeSegmentsIsFound) {
  std::string bytes = encoded(".jpg");
  // Two 60 KB application segments (as EXIF thumbnails and ICC profiles are) before the frame.
  const std::string app = std::string("\xFF\xE2\xEA\x62", 4) + std::string(60000, 'x');
  bytes.insert(2, app + app);
  const auto size = image_header_size(write("big-exif.jpg", bytes));
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(size->width, 5u);
  EXPECT_EQ(size->height, 3u);
}

TEST_F(ImageFile, JpegFrameAfterJunkBytesIsFoundAsLibjpegFindsIt) {
  // libjpeg skips bytes that are not a marker ("Corrupt JPEG data: extraneous bytes") and
  // decodes the image: the size check must find the same frame, or a bomb could hide behind them.
  std::string bytes = encoded(".jpg");
  ASSERT_EQ(bytes.substr(2, 4), std::string("\xFF\xE0\x00\x10", 4));  // JFIF, 16 bytes
  bytes.insert(20, std::string("junk\xFF\x00\xFF\xFF", 8));           // junk, stuffed zero, fill
  const auto size = image_header_size(write("junk.jpg", bytes));
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(size->width, 5u);
  EXPECT_EQ(size->height, 3u);
  EXPECT_EQ(read_image_rgb(write("junk.jpg", bytes)).cols, 5);
  const size_t frame = bytes.find("\xFF\xC0");
  ASSERT_NE(frame, std::string::npos);
  bytes.replace(frame + 5, 4, std::string("\xF6\x10\x3A\x10", 4));  // 14864 x 62992
  const auto path = write("junk-bomb.jpg", bytes);
  const std::string error = testing::error_of([&] { read_image_rgb(path); });
  EXPECT_NE(error.find("junk-bomb.jpg: 14864 x 62992 pixels is more than"), std::string::npos)
      << error;
}

TEST_F(ImageFile, HugeClaimIsRefusedBeforeDecoding) {
  // PNG: width and height are big-endian at bytes 16 and 20 (IHDR).
  std::string png = encoded(".png");
  const std::string dims("\x00\x00\x9c\x40\x00\x00\x9c\x40", 8);  // 40000 x 40000
  png.replace(16, 8, dims);
  const auto path = write("bomb.png", png);
  const std::string error = testing::error_of([&] { read_image_rgb(path); });
  EXPECT_NE(error.find("bomb.png: 40000 x 40000 pixels is more than 134217728"), std::string::npos)
      << error;
  // BMP: a negative height (top-down rows) counts by its magnitude.
  std::string bmp = encoded(".bmp");
  bmp.replace(18, 8, std::string("\x40\x9c\x00\x00\xc0\x63\xff\xff", 8));  // 40000 x -40000
  const auto size = image_header_size(write("bomb.bmp", bmp));
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(size->height, 40000u);
  EXPECT_THROW(read_image_rgb(write("bomb.bmp", bmp)), std::runtime_error);
  // PNM: ASCII numbers; OpenCV would allocate 4.8 GB before finding the data missing.
  const auto pnm = write("bomb.ppm", "P6\n40000 40000\n255\n\x01");
  EXPECT_NE(testing::error_of([&] { read_image_rgb(pnm); }).find("40000 x 40000 pixels"),
            std::string::npos);
}

// libjpeg decodes a JPEG whose data stops early (a warning only) into a grey picture: a file
// cut short, or a few KB claiming 11000 x 11000 pixels (885 MB, 4 s), were accepted.
TEST_F(ImageFile, TruncatedOrLyingJpegsAreRefused) {
  const cv::Mat noise(64, 96, CV_8UC3);
  cv::randu(noise, 0, 255);
  std::vector<uchar> encoded_noise;
  ASSERT_TRUE(cv::imencode(".jpg", noise, encoded_noise));
  const std::string jpeg(encoded_noise.begin(), encoded_noise.end());
  EXPECT_EQ(read_image_rgb(write("whole.jpg", jpeg)).cols, 96);
  EXPECT_EQ(decode_image_rgb(jpeg + "trailing bytes", "trailing").cols, 96);
  const std::string half = jpeg.substr(0, jpeg.size() / 2);
  const std::string error = testing::error_of([&] { read_image_rgb(write("half.jpg", half)); });
  EXPECT_NE(error.find("half.jpg: a truncated JPEG (no end-of-image marker after its data)"),
            std::string::npos)
      << error;
  EXPECT_THROW(decode_image_rgb(half, "half"), std::runtime_error);
  // the header only, then the end marker
  const size_t scan = jpeg.find("\xFF\xDA");
  ASSERT_NE(scan, std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              decode_image_rgb(jpeg.substr(0, scan), "no-scan");
            }).find("no-scan: a truncated JPEG (no image data after its header)"),
            std::string::npos);
  // 11000 x 11000 claimed (under the pixel limit) by a baseline file of a few KB with its end
  // marker: far fewer bytes than 11000 x 11000 pixels' blocks need
  std::string liar = jpeg.substr(0, scan + 200) + "\xFF\xD9";
  const size_t frame = liar.find("\xFF\xC0");
  ASSERT_NE(frame, std::string::npos);
  liar.replace(frame + 5, 4, std::string("\x2A\xF8\x2A\xF8", 4));
  const std::string lie = testing::error_of([&] { decode_image_rgb(liar, "liar"); });
  EXPECT_NE(lie.find("liar: a truncated JPEG ("), std::string::npos) << lie;
  EXPECT_NE(lie.find("11000 x 11000 pixels need at least"), std::string::npos) << lie;
}

TEST_F(ImageFile, UnknownOrCutHeadersAreLeftToTheDecoder) {
  EXPECT_FALSE(image_header_size(write("empty.png", "")).has_value());
  EXPECT_FALSE(image_header_size(write("cut.png", encoded(".png").substr(0, 20))).has_value());
  EXPECT_FALSE(image_header_size(write("text.png", "hello, world; not an image")).has_value());
  EXPECT_FALSE(image_header_size(write("cut.jpg", encoded(".jpg").substr(0, 30))).has_value());
  EXPECT_FALSE(image_header_size(write("cut.ppm", "P6\n5")).has_value());
  EXPECT_FALSE(image_header_size(write("letters.ppm", "P6\nfive three\n")).has_value());
  EXPECT_THROW(read_image_rgb(write("text.png", "hello")), std::runtime_error);
}

}  // namespace
}  // namespace xmodal::io
