// safetensors: the weight format of fixtures, checkpoints and pretrained imports.
//
// Format (huggingface/safetensors): 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the byte buffer. Reading validates everything the reference implementation does and
// names the file, the tensor and the reference's error variant in each message, e.g.
//   w.safetensors: tensor 'test': I32 [2, 2] needs 16 bytes, data_offsets hold 4
//   (TensorInvalidInfo)
// Files are memory-mapped; tensor() copies one tensor out, so large files are not read whole.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace xmodal::io {

/// One tensor's entry in the header.
struct TensorInfo {
  std::string dtype;           ///< safetensors spelling: "F32", "BF16", "I64", "F4", ...
  std::vector<int64_t> shape;  ///< [] for a scalar
  uint64_t begin = 0;          ///< byte offset in the data buffer
  uint64_t end = 0;            ///< one past the last byte
};

/// A validated, memory-mapped (or in-memory) safetensors file.
class SafeTensorsFile {
 public:
  /// Maps and validates `path`. Throws std::runtime_error naming the file and the problem.
  static SafeTensorsFile open(const std::string& path);
  /// Validates an in-memory file; `name` is used in messages.
  static SafeTensorsFile from_bytes(std::string bytes, const std::string& name = "<memory>");

  /// Tensor names in buffer order.
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  /// Throws std::out_of_range naming the file and the tensor.
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Raw bytes of one tensor (valid as long as this object lives).
  const uint8_t* data(const std::string& name) const;

  /// A CPU tensor owning a copy of the data. Throws for dtypes LibTorch lacks (F4, F8_*, U16...).
  torch::Tensor tensor(const std::string& name) const;
  /// Every tensor, by name.
  std::map<std::string, torch::Tensor> tensors() const;

  const std::string& path() const { return path_; }

 private:
  struct Storage;
  SafeTensorsFile() = default;
  void parse();

  std::string path_;
  std::shared_ptr<Storage> storage_;
  const uint8_t* buffer_ = nullptr;  // start of the data buffer
  std::vector<std::string> names_;
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

/// The bytes of a safetensors file holding `tensors` (any device; contiguous copies are made),
/// laid out as the reference serializer does: compact JSON header, __metadata__ first, tensors
/// ordered by dtype size (largest first) then name, header padded with spaces to 8 bytes.
std::string serialize_safetensors(const std::map<std::string, torch::Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

/// Writes serialize_safetensors() to `path` atomically (temporary file, fsync, rename).
void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// Shorthand for SafeTensorsFile::open(path).tensors().
std::map<std::string, torch::Tensor> load_safetensors(const std::string& path);

/// safetensors dtype spelling of a LibTorch dtype ("F32"); throws for ones the format lacks.
std::string safetensors_dtype(torch::ScalarType type);

}  // namespace xmodal::io
