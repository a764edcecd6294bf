#include "xmodal/config/loader.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "xmodal/config/pretrained.h"
#include "xmodal/core/error.h"
#include "xmodal/core/files.h"
#include "xmodal/core/strings.h"

namespace xmodal::config {
namespace {

namespace fs = std::filesystem;

// Where the values of one layer (a file or one --set) come from.
struct Layer {
  std::string source;  // "configs/x.yaml" or "--set train.lr=fast"
  bool is_override = false;
  bool is_base = false;  // an included file: what it sets yields to a pretrained folder

  std::string where(const YAML::Node& node) const {
    if (is_override) return source;
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) return source;
    return source + ":" + std::to_string(mark.line + 1);
  }
};

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    default:
      return "an undefined value";
  }
}

std::string lower(std::string text) {
  for (auto& ch : text) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return text;
}

std::string format_bound(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return detail::scalar_text(v);
}

// Range text for messages: ">= 1", "> 0", "between 0 and 1".
std::string range_text(const Range& r) {
  const bool has_min = std::isfinite(r.min);
  const bool has_max = std::isfinite(r.max);
  if (has_min && has_max) return "between " + format_bound(r.min) + " and " + format_bound(r.max);
  if (has_min) return (r.min_exclusive ? "> " : ">= ") + format_bound(r.min);
  if (has_max) return "<= " + format_bound(r.max);
  return "any value";
}

bool in_range(double v, const Range& r) {
  if (r.min_exclusive ? !(v > r.min) : !(v >= r.min)) return false;
  return v <= r.max;
}

// Converts one scalar node to a field's type; returns an error text ("" on success).
std::string convert(const YAML::Node& node, std::string& out) {
  if (node.IsNull()) {
    out.clear();  // `pretrained:` with nothing after it means "no file"
    return "";
  }
  if (!node.IsScalar()) return "expected a string, got " + describe(node);
  out = node.Scalar();
  return "";
}

std::string convert(const YAML::Node& node, bool& out) {
  if (!node.IsScalar()) return "expected true or false, got " + describe(node);
  const std::string v = lower(node.Scalar());
  if (v == "true" || v == "yes" || v == "on") {
    out = true;
    return "";
  }
  if (v == "false" || v == "no" || v == "off") {
    out = false;
    return "";
  }
  return "expected true or false, got " + describe(node);
}

std::string parse_double(const YAML::Node& node, double& out, const char* what) {
  if (!node.IsScalar()) return std::string("expected ") + what + ", got " + describe(node);
  const std::string text = trim(node.Scalar());
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  if (text.empty() || end != begin + text.size() || errno == ERANGE || !std::isfinite(v)) {
    return std::string("expected ") + what + ", got " + describe(node);
  }
  out = v;
  return "";
}

std::string convert(const YAML::Node& node, double& out) {
  return parse_double(node, out, "a number");
}

template <class Int>
std::string convert_integer(const YAML::Node& node, Int& out) {
  double v = 0;
  // Accepts "500" and also "1e5" for step counts, as long as the value is whole.
  std::string problem = parse_double(node, v, "an integer");
  if (!problem.empty()) return problem;
  if (v != std::floor(v)) return "expected an integer, got " + describe(node);
  if (v < static_cast<double>(std::numeric_limits<Int>::min()) ||
      v > static_cast<double>(std::numeric_limits<Int>::max())) {
    return "value " + node.Scalar() + " does not fit the field";
  }
  // Integers beyond 2^53 would lose digits through double; parse them exactly.
  if (std::fabs(v) > 9.0e15) {
    out = static_cast<Int>(std::strtoll(trim(node.Scalar()).c_str(), nullptr, 10));
  } else {
    out = static_cast<Int>(v);
  }
  return "";
}

std::string convert(const YAML::Node& node, std::vector<double>& out) {
  if (!node.IsSequence()) return "expected a list of numbers, got " + describe(node);
  std::vector<double> values;
  for (const auto& item : node) {
    double v = 0;
    const std::string problem = parse_double(item, v, "a number in the list");
    if (!problem.empty()) return problem;
    values.push_back(v);
  }
  out = std::move(values);
  return "";
}

std::string convert(const YAML::Node& node, std::vector<std::string>& out) {
  if (!node.IsSequence()) return "expected a list of strings, got " + describe(node);
  std::vector<std::string> values;
  for (const auto& item : node) {
    if (!item.IsScalar()) return "expected a string in the list, got " + describe(item);
    values.push_back(item.Scalar());
  }
  out = std::move(values);
  return "";
}

std::string convert(const YAML::Node& node, int& out) { return convert_integer(node, out); }
std::string convert(const YAML::Node& node, int64_t& out) { return convert_integer(node, out); }

template <class E, class = std::enable_if_t<std::is_enum_v<E>>>
std::string convert(const YAML::Node& node, E& out) {
  const std::string allowed = join(enum_names<E>(), ", ");
  if (!node.IsScalar()) return "expected one of: " + allowed + "; got " + describe(node);
  const auto value = enum_from_string<E>(node.Scalar());
  if (!value) {
    std::string text = "unknown value '" + node.Scalar() + "' (expected one of: " + allowed + ")";
    const std::string guess = closest_match(node.Scalar(), enum_names<E>());
    if (!guess.empty()) text += "; did you mean " + guess + "?";
    return text;
  }
  out = *value;
  return "";
}

template <class T>
double as_number(const T& value) {
  if constexpr (std::is_arithmetic_v<T>) {
    return static_cast<double>(value);
  } else {
    return 0.0;
  }
}

// Applies one YAML mapping to one config struct (a visitor of the struct's fields).
class Applier {
 public:
  Applier(const YAML::Node& map, std::string prefix, const Layer& layer,
          std::vector<std::string>& problems, std::map<std::string, std::string>& origins,
          std::set<std::string>& base_keys, const std::vector<std::string>& all_keys)
      : prefix_(std::move(prefix)),
        layer_(layer),
        problems_(problems),
        origins_(origins),
        base_keys_(base_keys),
        all_keys_(all_keys) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      entries_.push_back({it->first, it->second, false});
    }
  }

  template <class T>
  void field(const char* name, T& value, const char* /*doc*/, Range range = {}) {
    const Entry* entry = take(name);
    if (!entry) return;
    const std::string key = prefix_ + name;
    const std::string problem = convert(entry->value, value);
    if (!problem.empty()) {
      problems_.push_back(layer_.where(entry->key) + ": " + key + ": " + problem);
      return;
    }
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      if (!in_range(as_number(value), range)) {
        problems_.push_back(layer_.where(entry->key) + ": " + key + ": must be " +
                            range_text(range) + ", got " + entry->value.Scalar());
        return;
      }
    }
    origins_[key] = layer_.where(entry->key);
    if (layer_.is_base) {
      base_keys_.insert(key);
    } else {
      base_keys_.erase(key);  // set again by the file itself or --set
    }
  }

  template <class S>
  void section(const char* name, S& sub, const char* /*doc*/) {
    const Entry* entry = take(name);
    if (!entry) return;
    const std::string key = prefix_ + name;
    if (entry->value.IsNull()) return;  // `eval:` with nothing under it: keep the defaults
    if (!entry->value.IsMap()) {
      problems_.push_back(layer_.where(entry->key) + ": " + key +
                          ": expected a mapping of keys, got " + describe(entry->value));
      return;
    }
    Applier child(entry->value, key + ".", layer_, problems_, origins_, base_keys_, all_keys_);
    sub.visit(child);
    child.finish();
  }

  // Reports the keys no field claimed, each with the closest known key.
  void finish() {
    for (const Entry& entry : entries_) {
      if (entry.used) continue;
      const std::string name = entry.key.IsScalar() ? entry.key.Scalar() : "<non-scalar key>";
      if (prefix_.empty() && name == "include" && !layer_.is_override) continue;
      std::string text = layer_.where(entry.key) + ": unknown key " + prefix_ + name;
      // The exact key in another section beats a near miss here ("train.patch_size").
      std::string guess = key_elsewhere(name);
      if (guess.empty()) guess = closest_match(name, known_);
      if (!guess.empty()) text += " (did you mean " + guess + "?)";
      problems_.push_back(text);
    }
  }

 private:
  struct Entry {
    YAML::Node key;
    YAML::Node value;
    bool used;
  };

  // The entry for `name`, marking it used; duplicates are reported.
  const Entry* take(const char* name) {
    known_.emplace_back(name);
    const Entry* found = nullptr;
    for (Entry& entry : entries_) {
      if (!entry.key.IsScalar() || entry.key.Scalar() != name) continue;
      if (found) {
        problems_.push_back(layer_.where(entry.key) + ": duplicate key " + prefix_ + name +
                            " (first set at " + layer_.where(found->key) + ")");
      } else {
        found = &entry;
      }
      entry.used = true;
    }
    return found;
  }

  // A key with the same last component in another section ("train.patch_size" ->
  // "model.vision.patch_size"), or "".
  std::string key_elsewhere(const std::string& name) const {
    for (const auto& key : all_keys_) {
      const size_t dot = key.rfind('.');
      const std::string leaf = dot == std::string::npos ? key : key.substr(dot + 1);
      if (leaf == name) return key;
    }
    return "";
  }

  std::string prefix_;
  const Layer& layer_;
  std::vector<std::string>& problems_;
  std::map<std::string, std::string>& origins_;
  std::set<std::string>& base_keys_;
  const std::vector<std::string>& all_keys_;
  std::vector<Entry> entries_;
  std::vector<std::string> known_;
};

void apply_layer(Config& config, const YAML::Node& root, const Layer& layer,
                 std::vector<std::string>& problems) {
  static const std::vector<std::string> keys = all_keys();
  Applier applier(root, "", layer, problems, config.origins, config.base_keys, keys);
  config.visit(applier);
  applier.finish();
}

// A config file: a regular file of at most 16 MiB (a FIFO, a folder or /dev/zero is refused).
std::string read_file(const fs::path& path) {
  try {
    return xmodal::read_file(path.string(), int64_t{16} << 20);
  } catch (const FileError& e) {
    throw std::runtime_error(e.reason());
  }
}

// The line (1-based) where a second YAML document starts, 0 if there is none: content after a
// document marker (`---` or `...` at column 0) that follows content. A lone trailing `---` or a
// leading one is harmless. Block scalars are indented, so a marker at column 0 is always one.
int second_document_line(const std::string& text) {
  bool content = false, marker = false;
  int number = 0;
  for (const auto& raw : split(text, '\n')) {
    ++number;
    const std::string line = trim(raw);
    if (line.empty() || line[0] == '#') continue;
    const bool is_marker = (raw.rfind("---", 0) == 0 || raw.rfind("...", 0) == 0) &&
                           (raw.size() == 3 || raw[3] == ' ' || raw[3] == '\t' || raw[3] == '\r');
    if (is_marker) {
      if (content) marker = true;
      const std::string rest = trim(raw.substr(3));
      if (rest.empty() || rest[0] == '#') continue;  // `--- text` starts a document with text
    }
    if (marker) return number;
    content = true;
  }
  return 0;
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    YAML::Node root = YAML::Load(text);
    // One document per file: Load() drops every document after a `---`. (YAML::LoadAll is no
    // way to find them: yaml-cpp 0.7 loops without end on some malformed input, found by the
    // config fuzz target.)
    if (const int line = second_document_line(text); line > 0) {
      throw ConfigError({source + ":" + std::to_string(line) +
                         ": a second YAML document (after '---'); a config file holds one "
                         "document (use include: to combine files)"});
    }
    if (root.IsNull()) return YAML::Node(YAML::NodeType::Map);  // an empty file sets nothing
    if (!root.IsMap()) {
      throw ConfigError(
          {source + ": expected a mapping of config keys at the top level, got " + describe(root)});
    }
    return root;
  } catch (const YAML::ParserException& e) {
    throw ConfigError({source + ":" + std::to_string(e.mark.line + 1) + ":" +
                       std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg});
  }
}

// Applies a file's includes (depth first), then the file itself.
void apply_source(Config& config, const YAML::Node& root, const std::string& source,
                  const fs::path& base_dir, std::vector<std::string>& chain,
                  std::vector<std::string>& problems) {
  for (auto it = root.begin(); it != root.end(); ++it) {
    // Copies: yaml-cpp's iterator-> returns a temporary proxy, so `it->second` must not be
    // the range of a for loop (AddressSanitizer: stack-use-after-scope).
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (!key.IsScalar() || key.Scalar() != "include") continue;
    const Layer layer{source, false};
    std::vector<YAML::Node> items;
    if (value.IsScalar()) {
      items.push_back(value);
    } else if (value.IsSequence()) {
      for (const auto& item : value) items.push_back(item);
    }
    if (items.empty() || !std::all_of(items.begin(), items.end(),
                                      [](const YAML::Node& n) { return n.IsScalar(); })) {
      problems.push_back(layer.where(key) +
                         ": include: expected a file name or a list of file names, got " +
                         describe(value));
      continue;
    }
    for (const auto& item : items) {
      const fs::path path = base_dir / item.Scalar();
      const std::string shown = path.lexically_normal().string();
      std::error_code ec;
      const fs::path canonical = fs::weakly_canonical(path, ec);
      const std::string id = ec ? shown : canonical.string();
      if (std::find(chain.begin(), chain.end(), id) != chain.end()) {
        problems.push_back(layer.where(item) + ": include: '" + item.Scalar() +
                           "' includes itself (cycle through " + shown + ")");
        continue;
      }
      std::string text;
      try {
        text = read_file(path);
      } catch (const std::runtime_error& e) {
        problems.push_back(layer.where(item) + ": include: cannot read '" + item.Scalar() +
                           "' (looked for " + shown + "): " + e.what());
        continue;
      }
      const YAML::Node child = parse_yaml(text, shown);
      chain.push_back(id);
      apply_source(config, child, shown, path.parent_path(), chain, problems);
      chain.pop_back();
    }
  }
  // What an included file sets is a base (Config::base_keys) unless set again later.
  apply_layer(config, root, Layer{source, false, /*is_base=*/chain.size() > 1}, problems);
}

Config load_text(const std::string& text, const std::string& source, const fs::path& base_dir,
                 const std::string& id, const std::vector<std::string>& overrides,
                 Folders folders) {
  Config config;
  std::vector<std::string> problems;
  std::vector<std::string> chain = {id};
  apply_source(config, parse_yaml(text, source), source, base_dir, chain, problems);
  if (!problems.empty()) throw ConfigError(problems);
  apply_overrides(config, overrides);
  if (folders == Folders::resolve) resolve_pretrained(config);
  // An early-stopping metric left at its default follows the task (retrieval and caption have
  // no accuracy).
  if (!config.origins.count("train.early_stopping.metric")) {
    if (config.task == Task::retrieval) config.train.early_stopping.metric = "rsum";
    if (config.task == Task::caption) config.train.early_stopping.metric = "cider_d";
  }
  validate(config);
  return config;
}

// Writes one section of the documented dump.
class Dumper {
 public:
  explicit Dumper(const Config& config) : config_(config) {}
  template <class T>
  void field(const char* name, T& value, const char* doc, Range /*range*/ = {}) {
    std::string line = indent_ + name + ": " + detail::scalar_text(value);
    if (line.size() < 40) line.resize(40, ' ');
    const std::string key = prefix_ + name;
    const std::string from =
        config_.pretrained_keys.count(key) ? "from " + config_.origin(key) + "; " : std::string();
    out += line + "  # " + from + doc + "\n";
  }
  template <class S>
  void section(const char* name, S& sub, const char* doc) {
    out += indent_ + name + ":  # " + doc + "\n";
    const std::string saved = indent_;
    const std::string saved_prefix = prefix_;
    indent_ += "  ";
    prefix_ += std::string(name) + ".";
    sub.visit(*this);
    indent_ = saved;
    prefix_ = saved_prefix;
  }
  std::string out;

 private:
  const Config& config_;
  std::string indent_;
  std::string prefix_;
};

}  // namespace

void apply_overrides(Config& config, const std::vector<std::string>& overrides) {
  std::vector<std::string> problems;
  for (const auto& assignment : overrides) {
    const std::string source = "--set " + assignment;
    const size_t eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0) {
      problems.push_back(source + ": expected KEY=VALUE, e.g. --set train.lr=1e-3");
      continue;
    }
    const std::string key = trim(assignment.substr(0, eq));
    const std::string value_text = assignment.substr(eq + 1);
    if (key == "include") {
      problems.push_back(source + ": include is only allowed inside a config file");
      continue;
    }
    const std::vector<std::string> parts = split(key, '.');
    if (std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
      problems.push_back(source + ": malformed key '" + key + "' (expected a.b.c)");
      continue;
    }
    YAML::Node value;
    if (trim(value_text).empty()) {
      value = YAML::Node(std::string());  // `--set model.text.pretrained=` clears a path
    } else {
      try {
        value = YAML::Load(value_text);
      } catch (const YAML::ParserException& e) {
        problems.push_back(source + ": cannot parse the value as YAML: " + e.msg);
        continue;
      }
    }
    // Nest the value under its key path, then apply it like a one-key file.
    YAML::Node root(YAML::NodeType::Map);
    YAML::Node node = root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      YAML::Node child(YAML::NodeType::Map);
      node[parts[i]] = child;
      node.reset(child);
    }
    node[parts.back()] = value;
    apply_layer(config, root, Layer{source, true}, problems);
  }
  if (!problems.empty()) throw ConfigError(problems);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides,
                   Folders folders) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const std::runtime_error& e) {
    throw ConfigError({"cannot read config file '" + path + "': " + e.what()});
  }
  // An empty file would silently train the defaults (e.g. into run.dir's default folder).
  if (parse_yaml(text, path).size() == 0) {
    throw ConfigError({path + ": the config file sets nothing (empty, or only comments)"});
  }
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(path, ec);
  return load_text(text, path, fs::path(path).parent_path(), ec ? path : canonical.string(),
                   overrides, folders);
}

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides, Folders folders) {
  return load_text(yaml_text, source, fs::current_path(), source, overrides, folders);
}

std::string dump_config(const Config& config) {
  Config copy = config;
  Dumper dumper(config);
  copy.visit(dumper);
  return "# xmodal resolved configuration (defaults < pretrained folders < file < --set)\n" +
         dumper.out;
}

}  // namespace xmodal::config
