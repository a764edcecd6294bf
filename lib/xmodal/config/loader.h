// Strict YAML loading of Config: defaults < file (and the files it includes) < --set overrides.
//
// Every problem is collected and reported at once, one line each, naming the file and line,
// the full key and what was expected:
//   configs/x.yaml:12: unknown key model.vision.pach_size (did you mean patch_size?)
//   configs/x.yaml:30: train.lr: expected a number, got 'fast'
#pragma once

#include <string>
#include <vector>

#include "xmodal/config/config.h"

namespace xmodal::config {

/// What loading does with the folders of model.{vision,text}.pretrained.
enum class Folders {
  resolve,  ///< take the architecture keys left unset from their config.json (a user's config)
  keep,     ///< read nothing (a run's or a checkpoint's saved config.yaml: complete already,
            ///< and it must not need the folders any more)
};

/// Loads `path` (following `include:` keys, relative to the including file), applies the
/// `overrides` ("a.b.c=value", value parsed as YAML), resolves the pretrained folders
/// (config/pretrained.h) and validates. Throws ConfigError (std::runtime_error for an
/// unreadable pretrained folder).
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {},
                   Folders folders = Folders::resolve);

/// Same as load_config for YAML text; `source` names it in messages, includes are relative to
/// the current directory.
Config parse_config(const std::string& yaml_text, const std::string& source = "<string>",
                    const std::vector<std::string>& overrides = {},
                    Folders folders = Folders::resolve);

/// Applies "a.b.c=value" assignments in order (later ones win). Throws ConfigError listing
/// every bad assignment. Does not validate: call validate() after the last change.
void apply_overrides(Config& config, const std::vector<std::string>& overrides);

/// The resolved configuration as documented YAML (every key, a comment per field; a key taken
/// from a pretrained folder says so: `# from DIR/config.json (hidden_size); ViT width`).
/// Loading the text back yields an equal Config.
std::string dump_config(const Config& config);

}  // namespace xmodal::config
