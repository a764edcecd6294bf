#include "xmodal/config/pretrained.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "xmodal/core/error.h"
#include "xmodal/io/json.h"

namespace xmodal::config {
namespace fs = std::filesystem;

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A value as a message shows it.
template <class T>
std::string shown(const T& v) {
  if constexpr (std::is_floating_point_v<T>) {
    return num(v);
  } else if constexpr (std::is_integral_v<T>) {
    return std::to_string(v);
  } else {
    return detail::scalar_text(v);
  }
}

template <class A, class B>
bool agrees(const A& a, const B& b) {
  if constexpr (std::is_floating_point_v<A> || std::is_floating_point_v<B>) {
    return std::abs(static_cast<double>(a) - static_cast<double>(b)) <=
           1e-3 * std::abs(static_cast<double>(b));
  } else if constexpr (std::is_integral_v<A> && std::is_integral_v<B>) {
    return static_cast<int64_t>(a) == static_cast<int64_t>(b);
  } else {
    return a == b;
  }
}

// Completes one config from its folders: each key is taken from the folder unless the user set
// it, and a value the user set is compared.
class Resolver {
 public:
  explicit Resolver(Config& c) : c_(c) {}

  /// `key` (the field `field`) comes from `file`'s `json_key` (`value`) unless the user set it;
  /// with `zero_is_unset`, a 0 the user wrote is taken as unset too. With `check`, a value the
  /// user set must agree (doubles to 0.1%).
  template <class Field, class Value>
  void take(const std::string& key, Field& field, const Value& value, const std::string& file,
            const char* json_key, bool check = true, bool zero_is_unset = false) {
    const bool user_set = c_.origin(key) != "default" && !c_.pretrained_keys.count(key) &&
                          !c_.base_keys.count(key) && !(zero_is_unset && field == Field{});
    if (!user_set) {
      field = static_cast<Field>(value);
      c_.origins[key] = file + " (" + json_key + ")";
      c_.pretrained_keys.insert(key);
      c_.base_keys.erase(key);
      return;
    }
    if (!check || agrees(field, value)) return;
    problem_at(key, key + " is " + shown(field) + " in the config but " + shown(value) + " in " +
                        file + " (" + json_key + ")" +
                        (zero_is_unset ? "; 0 takes it from there" : ""));
  }

  void problem(const std::string& text) { problems_.push_back(text); }
  /// A problem with the value of a key the user set, reported where it was set.
  void problem_at(const std::string& key, const std::string& text) {
    const std::string where = c_.origin(key);
    problems_.push_back((where == "default" ? std::string() : where + ": ") + text);
  }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  Config& c_;
  std::vector<std::string> problems_;
};

// The encoder's sizes of every model type.
struct EncoderKeys {
  int& hidden;
  int& layers;
  int& heads;
  int& width;              // the feed-forward width
  const char* width_name;  // its xmodal key
  double& eps;
};

// What every pretrained encoder shares: the model type, the activation, the sizes and the
// LayerNorm epsilon.
void resolve_common(Resolver& r, const HfConfig& hf, const std::string& component, const char* type,
                    const EncoderKeys& k) {
  if (!hf.model_type.empty() && hf.model_type != type) {
    r.problem(hf.path + ": model_type is \"" + hf.model_type + "\"; model." + component +
              ".pretrained needs a \"" + type + "\" model");
  }
  if (hf.hidden_act != "gelu") {
    r.problem(hf.path + ": hidden_act \"" + hf.hidden_act +
              "\" is not supported (xmodal's encoders use exact GELU, \"gelu\")");
  }
  const std::string section = "model." + component + ".";
  const std::string& f = hf.path;
  r.take(section + "hidden", k.hidden, hf.hidden_size, f, "hidden_size");
  r.take(section + "layers", k.layers, hf.num_hidden_layers, f, "num_hidden_layers");
  r.take(section + "heads", k.heads, hf.num_attention_heads, f, "num_attention_heads");
  r.take(section + k.width_name, k.width, hf.intermediate_size, f, "intermediate_size");
  r.take(section + "layer_norm_eps", k.eps, hf.layer_norm_eps, f, "layer_norm_eps",
         /*check=*/true, /*zero_is_unset=*/true);
}

// DIR/NAME read as a JSON object; nothing when the folder has no such file.
std::optional<io::JsonFile> optional_json_object(const std::string& dir, const char* name) {
  const std::string path = (fs::path(dir) / name).string();
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  auto file = io::JsonFile::load(path);
  if (!file.root().is_object()) file.fail(io::Where(), "expected a JSON object");
  return file;
}

// DIR/preprocessor_config.json's image_mean / image_std (ViTImageProcessor), if it exists and
// normalises.
void resolve_preprocessor(Resolver& r, Config& c, const std::string& dir) {
  const auto json = optional_json_object(dir, "preprocessor_config.json");
  if (!json) return;
  const io::JsonFile& file = *json;
  const std::string& path = file.path();
  const auto root = file.root();
  const io::Where top;
  if (file.has(root, "do_normalize") && !file.boolean(root, "do_normalize", top)) return;
  const auto three = [&](const char* key) {
    std::vector<double> values;
    for (const auto v : file.array(root, key, top)) {
      double d = 0;
      if (v.get(d) != simdjson::SUCCESS) file.fail(top, key, "expected numbers");
      values.push_back(d);
    }
    if (values.size() != 3) file.fail(top, key, "expected 3 numbers (R, G, B)");
    return values;
  };
  if (file.has(root, "image_mean")) {
    r.take("data.mean", c.data.mean, three("image_mean"), path, "image_mean", /*check=*/false);
  }
  if (file.has(root, "image_std")) {
    r.take("data.std", c.data.stddev, three("image_std"), path, "image_std", /*check=*/false);
  }
}

// DIR/tokenizer_config.json's BertTokenizer settings, if the file exists (without it,
// BertTokenizer's defaults are xmodal's: lower-case, accents follow, CJK split).
void resolve_tokenizer_settings(Resolver& r, Config& c, const std::string& dir) {
  const auto json = optional_json_object(dir, "tokenizer_config.json");
  if (!json) return;
  const io::JsonFile& file = *json;
  const std::string& path = file.path();
  const auto root = file.root();
  const io::Where top;
  auto& tk = c.tokenizer;
  if (file.has(root, "do_lower_case")) {
    r.take("tokenizer.lower_case", tk.lower_case, file.boolean(root, "do_lower_case", top), path,
           "do_lower_case", /*check=*/false);
  }
  if (file.has(root, "strip_accents") && !root["strip_accents"].is_null()) {
    const Accents accents =
        file.boolean(root, "strip_accents", top) ? Accents::strip : Accents::keep;
    r.take("tokenizer.accents", tk.accents, accents, path, "strip_accents", /*check=*/false);
  }
  if (file.has(root, "tokenize_chinese_chars")) {
    r.take("tokenizer.chinese_chars", tk.chinese_chars,
           file.boolean(root, "tokenize_chinese_chars", top), path, "tokenize_chinese_chars",
           /*check=*/false);
  }
}

void resolve_vision(Resolver& r, Config& c) {
  auto& v = c.model.vision;
  const auto hf = read_hf_config(v.pretrained);
  resolve_common(r, hf, "vision", "vit",
                 {v.hidden, v.layers, v.heads, v.mlp_dim, "mlp_dim", v.layer_norm_eps});
  const std::string& f = hf.path;
  r.take("model.vision.patch_size", v.patch_size, hf.patch_size, f, "patch_size");
  r.take("data.image_size", c.data.image_size, hf.image_size, f, "image_size", /*check=*/false);
  if (v.stem != Stem::patch) {
    r.problem_at("model.vision.stem",
                 "model.vision.stem must be patch with model.vision.pretrained (" + f +
                     " has a linear patch embedding)");
  }
  if (hf.num_channels != 3) {
    r.problem(f + ": num_channels is " + std::to_string(hf.num_channels) +
              "; xmodal's images are RGB (3)");
  }
  if (!hf.qkv_bias) r.problem(f + ": qkv_bias false is not supported");
  resolve_preprocessor(r, c, v.pretrained);
}

void resolve_text(Resolver& r, Config& c) {
  auto& t = c.model.text;
  const auto hf = read_hf_config(t.pretrained);
  resolve_common(r, hf, "text", "bert",
                 {t.hidden, t.layers, t.heads, t.intermediate, "intermediate", t.layer_norm_eps});
  const std::string& f = hf.path;
  r.take("model.text.max_position", t.max_position, hf.max_position_embeddings, f,
         "max_position_embeddings");
  r.take("model.text.vocab_size", t.vocab_size, hf.vocab_size, f, "vocab_size", /*check=*/true,
         /*zero_is_unset=*/true);
  if (hf.type_vocab_size != 2) {
    r.problem(f + ": type_vocab_size is " + std::to_string(hf.type_vocab_size) +
              "; xmodal's BERT has 2 token types");
  }
  // The folder's WordPiece vocabulary, as BertTokenizer.from_pretrained(DIR) reads it.
  const std::string vocab = (fs::path(t.pretrained) / "vocab.txt").string();
  std::error_code ec;
  if (fs::exists(vocab, ec)) {
    auto& tk = c.tokenizer;
    r.take("tokenizer.type", tk.type, TokenizerType::wordpiece, t.pretrained, "vocab.txt",
           /*check=*/false);
    if (tk.type == TokenizerType::wordpiece) {
      r.take("tokenizer.path", tk.path, vocab, t.pretrained, "vocab.txt", /*check=*/false);
      resolve_tokenizer_settings(r, c, t.pretrained);
    }
  }
}

}  // namespace

HfConfig read_hf_config(const std::string& dir) {
  HfConfig c;
  c.path = (fs::path(dir) / "config.json").string();
  std::error_code ec;
  if (!fs::exists(c.path, ec)) {
    throw std::runtime_error(c.path +
                             ": not found (a Hugging Face model folder has config.json "
                             "next to model.safetensors or pytorch_model.bin)");
  }
  const auto file = io::JsonFile::load(c.path);
  const auto root = file.root();
  const io::Where top;
  if (!root.is_object()) file.fail(top, "expected a JSON object");
  const auto get_int = [&](const char* key, int64_t& out, bool required) {
    if (file.has(root, key)) {
      out = file.integer(root, key, top);
      if (out < 1 && std::string(key) != "type_vocab_size") {
        file.fail(top, key, "must be at least 1, got " + std::to_string(out));
      }
    } else if (required) {
      file.fail(top, key, "missing (needed to build the encoder)");
    }
  };
  if (file.has(root, "model_type")) c.model_type = file.string(root, "model_type", top);
  get_int("hidden_size", c.hidden_size, true);
  get_int("num_hidden_layers", c.num_hidden_layers, true);
  get_int("num_attention_heads", c.num_attention_heads, true);
  get_int("intermediate_size", c.intermediate_size, true);
  const bool vit = c.model_type == "vit";
  get_int("image_size", c.image_size, vit);
  get_int("patch_size", c.patch_size, vit);
  get_int("num_channels", c.num_channels, false);
  get_int("vocab_size", c.vocab_size, c.model_type == "bert");
  get_int("max_position_embeddings", c.max_position_embeddings, c.model_type == "bert");
  get_int("type_vocab_size", c.type_vocab_size, false);
  if (file.has(root, "layer_norm_eps")) {
    c.layer_norm_eps = file.number(root, "layer_norm_eps", top);
    if (!(c.layer_norm_eps > 0)) file.fail(top, "layer_norm_eps", "must be > 0");
  }
  if (file.has(root, "hidden_act")) c.hidden_act = file.string(root, "hidden_act", top);
  if (file.has(root, "qkv_bias")) c.qkv_bias = file.boolean(root, "qkv_bias", top);
  return c;
}

void resolve_pretrained(Config& c) {
  Resolver r(c);
  // A folder that is not there is a config error; one that cannot be read is bad data. Both
  // are named with the key that points at them.
  const auto guarded = [&](const std::string& key, const std::string& dir,
                           void (*resolve)(Resolver&, Config&)) {
    const std::string where = c.origin(key);
    const std::string at = (where == "default" ? std::string() : where + ": ") + key + ": ";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      throw ConfigError({at + dir + ": no such folder (a Hugging Face model folder holds " +
                         "config.json and model.safetensors or pytorch_model.bin)"});
    }
    try {
      resolve(r, c);
    } catch (const std::runtime_error&) {
      rethrow_in(at);
    }
  };
  if (!c.model.vision.pretrained.empty()) {
    guarded("model.vision.pretrained", c.model.vision.pretrained, resolve_vision);
  }
  if (!c.model.text.pretrained.empty()) {
    guarded("model.text.pretrained", c.model.text.pretrained, resolve_text);
  }
  if (!r.problems().empty()) {
    throw ConfigError(r.problems());
  }
}

}  // namespace xmodal::config
