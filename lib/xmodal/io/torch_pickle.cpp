#include "xmodal/io/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "xmodal/core/error.h"

namespace xmodal::io {
namespace {

struct Value;
using Ref = std::shared_ptr<Value>;

/// A Python object as far as a state dict needs one.
struct Value {
  enum class Kind { none, boolean, integer, floating, string, tuple, list, dict, global, tensor };
  Kind kind = Kind::none;
  int64_t integer = 0;
  double floating = 0.0;
  std::string string;                        // string; global: "module.name"
  std::vector<Ref> items;                    // tuple, list
  std::vector<std::pair<Ref, Ref>> entries;  // dict, in insertion order
  torch::Tensor tensor;                      // tensor (or a storage: 1-D, its dtype)
  int depth = 1;                             // nesting, bounded so destruction cannot overflow
};

constexpr int kMaxDepth = 256;
constexpr size_t kMaxStack = 1 << 20;

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::none:
      return "None";
    case Value::Kind::boolean:
      return "bool";
    case Value::Kind::integer:
      return "int";
    case Value::Kind::floating:
      return "float";
    case Value::Kind::string:
      return "str";
    case Value::Kind::tuple:
      return "tuple";
    case Value::Kind::list:
      return "list";
    case Value::Kind::dict:
      return "dict";
    case Value::Kind::global:
      return "global";
    case Value::Kind::tensor:
      return "tensor";
  }
  return "?";
}

/// The storage classes torch.save names, with their element types.
const std::map<std::string, torch::Dtype>& storage_types() {
  static const std::map<std::string, torch::Dtype> types = {
      {"torch.FloatStorage", torch::kFloat32},
      {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},
      {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},
      {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},
      {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},
      {"torch.BoolStorage", torch::kBool},
      {"torch.ComplexFloatStorage", torch::kComplexFloat},
      {"torch.ComplexDoubleStorage", torch::kComplexDouble},
  };
  return types;
}

bool allowed_global(const std::string& name) {
  static const std::set<std::string> functions = {
      "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
      "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"};
  return functions.count(name) > 0 || storage_types().count(name) > 0;
}

class Unpickler {
 public:
  Unpickler(const std::string& data, const std::function<torch::Tensor(const std::string&)>& record,
            std::string source)
      : data_(data), record_(record), source_(std::move(source)) {}
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;
  /// A pickle can put a list or dict inside itself (DUP, then APPEND or SETITEM); shared_ptr
  /// would leak such a cycle, so every container is emptied here (found by fuzz_torch_pickle).
  ~Unpickler() {
    for (const auto& c : containers_) {
      c->items.clear();
      c->entries.clear();
    }
  }

  Ref run() {
    while (true) {
      const size_t at = pos_;
      const auto op = static_cast<unsigned char>(byte());
      if (op == '.') {  // STOP
        if (stack_.size() != 1)
          fail(at, "STOP with " + std::to_string(stack_.size()) + " values on the stack");
        return stack_.back();
      }
      if (!literal(at, op) && !container(at, op) && !memo_op(at, op) && !control(at, op)) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(at, std::string("unsupported pickle opcode ") + hex +
                     " (xmodal reads the dicts of tensors torch.save writes)");
      }
    }
  }

  // None, booleans, integers, floats, strings and bytes.
  bool literal(size_t at, unsigned char op) {
    switch (op) {
      case 'N':
        push(make(Value::Kind::none));
        return true;
      case 0x88:
        push(make_int(Value::Kind::boolean, 1));
        return true;  // NEWTRUE
      case 0x89:
        push(make_int(Value::Kind::boolean, 0));
        return true;  // NEWFALSE
      case 'K':
        push(make_int(Value::Kind::integer, uint_le(1)));
        return true;  // BININT1
      case 'M':
        push(make_int(Value::Kind::integer, uint_le(2)));
        return true;  // BININT2
      case 'J':       // BININT
        push(make_int(Value::Kind::integer, static_cast<int32_t>(uint_le(4))));
        return true;
      case 0x8a:
        push(make_int(Value::Kind::integer, long1(at)));
        return true;  // LONG1
      case 'G': {     // BINFLOAT
        uint64_t bits = 0;
        for (const char c : take(8)) bits = (bits << 8) | static_cast<unsigned char>(c);
        auto v = make(Value::Kind::floating);
        std::memcpy(&v->floating, &bits, sizeof bits);
        push(v);
        return true;
      }
      case 'X':
        push(make_string(take(uint_le(4))));
        return true;  // BINUNICODE
      case 0x8c:
        push(make_string(take(uint_le(1))));
        return true;  // SHORT_BINUNICODE
      case 0x8d:
        push(make_string(take(uint_le(8))));
        return true;  // BINUNICODE8
      case 'T':
        push(make_string(take(uint_le(4))));
        return true;  // BINSTRING
      case 'U':
        push(make_string(take(uint_le(1))));
        return true;  // SHORT_BINSTRING
      case 'B':
        push(make_string(take(uint_le(4))));
        return true;  // BINBYTES
      case 'C':
        push(make_string(take(uint_le(1))));
        return true;  // SHORT_BINBYTES
      default:
        return false;
    }
  }

  // Tuples, lists and dicts: built, appended to, filled.
  bool container(size_t at, unsigned char op) {
    switch (op) {
      case ')':
        push(make(Value::Kind::tuple));
        return true;  // EMPTY_TUPLE
      case ']':
        push(make(Value::Kind::list));
        return true;  // EMPTY_LIST
      case '}':
        push(make(Value::Kind::dict));
        return true;  // EMPTY_DICT
      case 't':
        push(make_seq(Value::Kind::tuple, pop_mark(at)));
        return true;  // TUPLE
      case 0x85:
        push(make_seq(Value::Kind::tuple, pop_n(at, 1)));
        return true;
      case 0x86:
        push(make_seq(Value::Kind::tuple, pop_n(at, 2)));
        return true;
      case 0x87:
        push(make_seq(Value::Kind::tuple, pop_n(at, 3)));
        return true;
      case 'l':
        push(make_seq(Value::Kind::list, pop_mark(at)));
        return true;  // LIST
      case 'a': {     // APPEND
        auto item = pop(at);
        append(at, top(at), {item});
        return true;
      }
      case 'e': {  // APPENDS
        auto items = pop_mark(at);
        append(at, top(at), items);
        return true;
      }
      case 'd': {  // DICT
        auto dict = make(Value::Kind::dict);
        set_items(at, dict, pop_mark(at));
        push(dict);
        return true;
      }
      case 's': {  // SETITEM
        auto kv = pop_n(at, 2);
        set_items(at, top(at), kv);
        return true;
      }
      case 'u': {  // SETITEMS
        auto kv = pop_mark(at);
        set_items(at, top(at), kv);
        return true;
      }
      default:
        return false;
    }
  }

  // The memo: BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET.
  bool memo_op(size_t at, unsigned char op) {
    switch (op) {
      case 'q':
        memo_[uint_le(1)] = top(at);
        return true;  // BINPUT
      case 'r':
        memo_[uint_le(4)] = top(at);
        return true;  // LONG_BINPUT
      case 0x94:
        memo_[memo_.size()] = top(at);
        return true;  // MEMOIZE
      case 'h':
        push(memo(at, uint_le(1)));
        return true;  // BINGET
      case 'j':
        push(memo(at, uint_le(4)));
        return true;  // LONG_BINGET
      default:
        return false;
    }
  }

  // Protocol, framing, marks, the stack, globals, REDUCE, BUILD, persistent ids.
  bool control(size_t at, unsigned char op) {
    switch (op) {
      case 0x80:
        byte();
        return true;  // PROTO
      case 0x95:
        take(8);
        return true;  // FRAME (protocol 4): length, ignored
      case '(':
        marks_.push_back(stack_.size());
        return true;  // MARK
      case '0':
        pop(at);
        return true;  // POP
      case '1':
        pop_mark(at);
        return true;  // POP_MARK
      case '2':
        push(top(at));
        return true;  // DUP
      case 'c': {     // GLOBAL
        const std::string module = line(at);
        push(global(at, module + "." + line(at)));
        return true;
      }
      case 0x93: {  // STACK_GLOBAL
        auto names = pop_n(at, 2);
        for (const auto& n : names) {
          if (n->kind != Value::Kind::string) fail(at, "STACK_GLOBAL needs two strings");
        }
        push(global(at, names[0]->string + "." + names[1]->string));
        return true;
      }
      case 'R': {  // REDUCE
        auto args = pop(at);
        auto callable = pop(at);
        push(reduce(at, callable, args));
        return true;
      }
      case 'b': {  // BUILD: the state of an OrderedDict (_metadata) or a tensor is not needed
        pop(at);
        top(at);
        return true;
      }
      case 'Q':
        push(persistent_load(at, pop(at)));
        return true;  // BINPERSID
      default:
        return false;
    }
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw InputError(source_ + ": data.pkl byte " + std::to_string(at) + ": " + what);
  }

  char byte() {
    if (pos_ >= data_.size()) fail(pos_, "ends before its STOP opcode (truncated file?)");
    return data_[pos_++];
  }
  std::string take(uint64_t n) {
    if (n > data_.size() - pos_) {
      fail(pos_, "a " + std::to_string(n) + "-byte field runs past the end (" +
                     std::to_string(data_.size() - pos_) + " bytes left)");
    }
    std::string out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  uint64_t uint_le(int n) {
    uint64_t v = 0;
    const std::string b = take(n);
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[i]);
    return v;
  }
  int64_t long1(size_t at) {
    const auto n = uint_le(1);
    if (n > 8) fail(at, "integer of " + std::to_string(n) + " bytes is too large");
    if (n == 0) return 0;
    const std::string b = take(n);
    uint64_t v = 0;
    for (int i = static_cast<int>(n) - 1; i >= 0; --i)
      v = (v << 8) | static_cast<unsigned char>(b[i]);
    if (n < 8 && (static_cast<unsigned char>(b[n - 1]) & 0x80)) v |= ~uint64_t{0} << (8 * n);
    return static_cast<int64_t>(v);
  }
  std::string line(size_t at) {
    const auto end = data_.find('\n', pos_);
    if (end == std::string::npos || end - pos_ > 256) fail(at, "GLOBAL name is not terminated");
    std::string out = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }

  Ref make(Value::Kind kind) const {
    auto v = std::make_shared<Value>();
    v->kind = kind;
    if (kind == Value::Kind::tuple || kind == Value::Kind::list || kind == Value::Kind::dict) {
      containers_.push_back(v);
    }
    return v;
  }
  Ref make_int(Value::Kind kind, int64_t i) {
    auto v = make(kind);
    v->integer = i;
    return v;
  }
  Ref make_string(std::string s) {
    auto v = make(Value::Kind::string);
    v->string = std::move(s);
    return v;
  }
  Ref make_seq(Value::Kind kind, std::vector<Ref> items) {
    auto v = make(kind);
    for (const auto& item : items) v->depth = std::max(v->depth, item->depth + 1);
    if (v->depth > kMaxDepth) fail(pos_, "values nested more than 256 deep");
    v->items = std::move(items);
    return v;
  }

  void push(Ref v) {
    if (stack_.size() >= kMaxStack) fail(pos_, "more than 2^20 values on the stack");
    stack_.push_back(std::move(v));
  }
  Ref top(size_t at) const {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      fail(at, "needs a value but the stack is empty");
    }
    return stack_.back();
  }
  Ref pop(size_t at) {
    auto v = top(at);
    stack_.pop_back();
    return v;
  }
  std::vector<Ref> pop_n(size_t at, size_t n) {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n) fail(at, "needs " + std::to_string(n) + " values on the stack");
    std::vector<Ref> out(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return out;
  }
  std::vector<Ref> pop_mark(size_t at) {
    if (marks_.empty()) fail(at, "needs a MARK that was never set");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Ref> out(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return out;
  }
  Ref memo(size_t at, uint64_t key) const {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail(at, "refers to memo entry " + std::to_string(key) + ", never set");
    return it->second;
  }

  void append(size_t at, const Ref& list, const std::vector<Ref>& items) {
    if (list->kind != Value::Kind::list)
      fail(at, std::string("APPEND to a ") + kind_name(list->kind));
    for (const auto& item : items) {
      if (item->depth + 1 > kMaxDepth) fail(at, "values nested more than 256 deep");
      list->depth = std::max(list->depth, item->depth + 1);
      list->items.push_back(item);
    }
  }
  void set_items(size_t at, const Ref& dict, const std::vector<Ref>& kv) {
    if (dict->kind != Value::Kind::dict)
      fail(at, std::string("SETITEM on a ") + kind_name(dict->kind));
    if (kv.size() % 2 != 0) fail(at, "SETITEMS with an odd number of values");
    for (size_t i = 0; i < kv.size(); i += 2) {
      if (kv[i + 1]->depth + 1 > kMaxDepth) fail(at, "values nested more than 256 deep");
      dict->depth = std::max(dict->depth, kv[i + 1]->depth + 1);
      dict->entries.emplace_back(kv[i], kv[i + 1]);
    }
  }

  Ref global(size_t at, const std::string& name) const {
    if (!allowed_global(name)) {
      fail(at, "refers to the Python global '" + name +
                   "', which xmodal does not load: only dicts of tensors are read, so an "
                   "untrusted file cannot run code");
    }
    auto v = make(Value::Kind::global);
    v->string = name;
    return v;
  }

  int64_t integer(size_t at, const Ref& v, const char* what) const {
    if (v->kind != Value::Kind::integer) {
      fail(at, std::string(what) + " is a " + kind_name(v->kind) + ", not an int");
    }
    return v->integer;
  }
  std::vector<int64_t> ints(size_t at, const Ref& v, const char* what) const {
    if (v->kind != Value::Kind::tuple && v->kind != Value::Kind::list) {
      fail(at, std::string(what) + " is a " + kind_name(v->kind) + ", not a tuple");
    }
    std::vector<int64_t> out;
    for (const auto& item : v->items) out.push_back(integer(at, item, what));
    return out;
  }

  Ref reduce(size_t at, const Ref& callable, const Ref& args) {
    if (callable->kind != Value::Kind::global) {
      fail(at, std::string("REDUCE calls a ") + kind_name(callable->kind));
    }
    if (args->kind != Value::Kind::tuple) fail(at, "REDUCE arguments are not a tuple");
    const auto& name = callable->string;
    const auto& a = args->items;
    if (name == "collections.OrderedDict") {
      auto dict = make(Value::Kind::dict);
      if (!a.empty()) {  // OrderedDict([(k, v), ...])
        if (a.size() != 1 || a[0]->kind != Value::Kind::list)
          fail(at, "OrderedDict(...) arguments");
        for (const auto& pair : a[0]->items) {
          if (pair->items.size() != 2) fail(at, "OrderedDict item is not a pair");
          set_items(at, dict, pair->items);
        }
      }
      return dict;
    }
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != Value::Kind::tensor) fail(at, name + " without a tensor");
      return a[0];
    }
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (a.size() < 4) fail(at, name + " with " + std::to_string(a.size()) + " arguments");
      if (a[0]->kind != Value::Kind::tensor) fail(at, name + " without a storage");
      const auto& storage = a[0]->tensor;
      const int64_t offset = integer(at, a[1], "storage offset");
      const auto size = ints(at, a[2], "tensor size");
      const auto stride = ints(at, a[3], "tensor stride");
      if (size.size() != stride.size()) fail(at, "tensor size and stride differ in length");
      int64_t last = offset, numel = 1;
      for (size_t d = 0; d < size.size(); ++d) {
        if (size[d] < 0 || stride[d] < 0 || size[d] > (int64_t{1} << 40) ||
            stride[d] > (int64_t{1} << 40)) {
          fail(at, "tensor size/stride out of range");
        }
        numel *= size[d];
        if (numel > (int64_t{1} << 40)) fail(at, "tensor has too many elements");
        if (size[d] > 0) last += (size[d] - 1) * stride[d];
      }
      if (offset < 0 || (numel > 0 && last >= storage.numel())) {
        fail(at, "tensor of size " + c10::str(c10::IntArrayRef(size)) + " at offset " +
                     std::to_string(offset) + " overruns its storage of " +
                     std::to_string(storage.numel()) + " elements");
      }
      auto v = make(Value::Kind::tensor);
      v->tensor = numel == 0 ? torch::empty(size, storage.options())
                             : storage.as_strided(size, stride, offset).contiguous();
      return v;
    }
    fail(at, "cannot call " + name);
  }

  /// ('storage', torch.XStorage, key, location, numel) -> a 1-D tensor over record data/key.
  Ref persistent_load(size_t at, const Ref& pid) {
    const auto& p = pid->items;
    if (pid->kind != Value::Kind::tuple || p.size() < 5 || p[0]->kind != Value::Kind::string ||
        p[0]->string != "storage" || p[1]->kind != Value::Kind::global ||
        p[2]->kind != Value::Kind::string) {
      fail(at, "persistent id is not ('storage', type, key, location, numel)");
    }
    const auto type = storage_types().find(p[1]->string);
    if (type == storage_types().end()) fail(at, p[1]->string + " is not a storage type");
    const int64_t numel = integer(at, p[4], "storage size");
    const std::string& key = p[2]->string;
    auto cached = storages_.find(key);
    if (cached == storages_.end()) {
      torch::Tensor bytes = record_(key);
      const auto itemsize = static_cast<int64_t>(c10::elementSize(type->second));
      if (numel < 0 || bytes.numel() != numel * itemsize) {
        fail(at, "record data/" + key + " has " + std::to_string(bytes.numel()) +
                     " bytes, but the pickle says " + std::to_string(numel) + " x " +
                     std::to_string(itemsize) + " (truncated or corrupt file?)");
      }
      cached = storages_.emplace(key, bytes.view(type->second)).first;
    } else if (cached->second.scalar_type() != type->second) {
      fail(at, "storage " + key + " is read as two different types");
    }
    auto v = make(Value::Kind::tensor);
    v->tensor = cached->second;
    return v;
  }

  const std::string& data_;
  const std::function<torch::Tensor(const std::string&)>& record_;
  std::string source_;
  size_t pos_ = 0;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Ref> memo_;
  std::map<std::string, torch::Tensor> storages_;
  mutable std::vector<Ref> containers_;  // every tuple, list and dict made (see ~Unpickler)
};

void collect(const Value& dict, std::map<std::string, torch::Tensor>& out) {
  for (const auto& [key, value] : dict.entries) {
    if (key->kind == Value::Kind::string && value->kind == Value::Kind::tensor) {
      out[key->string] = value->tensor;
    }
  }
}

}  // namespace

std::map<std::string, torch::Tensor> unpickle_state_dict(
    const std::string& pickle, const std::function<torch::Tensor(const std::string&)>& record,
    const std::string& source) {
  Unpickler unpickler(pickle, record, source);
  const Ref root = unpickler.run();
  if (root->kind != Value::Kind::dict) {
    throw InputError(source + ": holds a " + std::string(kind_name(root->kind)) +
                     ", not a dict of tensors (a state_dict)");
  }
  std::map<std::string, torch::Tensor> out;
  collect(*root, out);
  if (out.empty()) {  // {"state_dict": {...}} or {"model": {...}}, as training scripts save
    for (const auto& [key, value] : root->entries) {
      if (key->kind == Value::Kind::string && value->kind == Value::Kind::dict &&
          (key->string == "state_dict" || key->string == "model")) {
        collect(*value, out);
        break;
      }
    }
  }
  if (out.empty()) throw InputError(source + ": holds no tensors");
  return out;
}

std::map<std::string, torch::Tensor> load_torch_state_dict(const std::string& path) {
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path + ": cannot open (does it exist?)");
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() < 4 || std::memcmp(magic, "PK\x03\x04", 4) != 0) {
      throw InputError(path +
                       ": not a zip archive; xmodal reads the zip format torch.save writes since "
                       "PyTorch 1.6 (re-save it with torch.save, or convert it to safetensors)");
    }
  }
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (reader.hasRecord("byteorder")) {
      auto [ptr, size] = reader.getRecord("byteorder");
      if (std::string(static_cast<const char*>(ptr.get()), size) != "little") {
        throw InputError(path + ": big-endian tensors are not supported");
      }
    }
    if (!reader.hasRecord("data.pkl")) throw InputError(path + ": has no data.pkl");
    auto [pkl_ptr, pkl_size] = reader.getRecord("data.pkl");
    const std::string pickle(static_cast<const char*>(pkl_ptr.get()), pkl_size);
    auto record = [&reader, &path](const std::string& key) {
      const std::string name = "data/" + key;
      if (!reader.hasRecord(name)) throw InputError(path + ": has no record " + name);
      auto [ptr, size] = reader.getRecord(name);
      auto owner = std::make_shared<at::DataPtr>(std::move(ptr));
      return torch::from_blob(
          owner->get(), {static_cast<int64_t>(size)}, [owner](void*) {}, torch::kUInt8);
    };
    return unpickle_state_dict(pickle, record, path);
  } catch (const c10::Error& e) {
    throw InputError(path + ": not a readable torch.save archive (" + e.what_without_backtrace() +
                     ")");
  }
}

}  // namespace xmodal::io
