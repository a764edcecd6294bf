// Reading PyTorch's torch.save files (e.g. Hugging Face pytorch_model.bin) without Python.
//
// The format is a zip archive: ARCHIVE/data.pkl (a pickle) and ARCHIVE/data/KEY (the raw bytes
// of each storage). LibTorch 1.13's torch::pickle_load cannot read a state_dict() (an
// OrderedDict), and Python's pickle executes arbitrary code, so xmodal has its own restricted
// unpickler: the opcodes torch.save emits (protocols 2-4) and an allow-list of globals
// (collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter, the typed
// torch.*Storage classes). Any other global is refused with its name, so an untrusted file
// cannot run code. Every read is bounds-checked; a truncated or corrupt file is an error that
// names the file.
#pragma once

#include <torch/types.h>

#include <functional>
#include <map>
#include <string>

namespace xmodal::io {

/// The tensors of a torch.save'd dict of tensors (a state_dict, possibly nested under "state_dict"
/// or "model"), by name. Views that share a storage are returned as separate tensors. Throws
/// std::runtime_error naming `path` for a missing, truncated, legacy (pre-1.6, non-zip) or
/// unsafe file.
std::map<std::string, torch::Tensor> load_torch_state_dict(const std::string& path);

/// Same, from the bytes of data.pkl and a function that returns the bytes of record
/// "data/KEY" as a 1-D uint8 tensor (exposed for tests and fuzzing). `source` names the origin
/// in errors.
std::map<std::string, torch::Tensor> unpickle_state_dict(
    const std::string& pickle, const std::function<torch::Tensor(const std::string&)>& record,
    const std::string& source);

}  // namespace xmodal::io
