// Config -> tokenizer: the one place that names the concrete tokenizers (word, wordpiece,
// sentencepiece). A tokenizer made here is stored into a checkpoint through Tokenizer::files()
// and read back from those files by tokenizer_from_files().
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/text/tokenizer.h"

namespace xmodal::text {

/// The tokenizer `config.tokenizer` describes: word (its vocabulary built from `texts`),
/// wordpiece (tokenizer.path, else model.text.pretrained/vocab.txt) or sentencepiece
/// (tokenizer.path). Ids at or beyond model.text.vocab_size (a vocabulary file longer than the
/// pretrained embedding table) are read as [UNK], with a warning. Throws std::runtime_error
/// naming an unreadable file.
std::shared_ptr<Tokenizer> make_tokenizer(const config::Config& config,
                                          const std::vector<std::string>& texts);

/// The tokenizer of `config.tokenizer.type` from the files its files() gave (a checkpoint's);
/// `source` names them in errors. Throws std::runtime_error for a missing or malformed file.
std::shared_ptr<Tokenizer> tokenizer_from_files(const config::Config& config,
                                                const std::map<std::string, std::string>& files,
                                                const std::string& source);

/// The file `name` of a checkpoint's `files`; throws std::runtime_error "checkpoint SOURCE: no
/// NAME" when it is missing.
const std::string& required_file(const std::map<std::string, std::string>& files,
                                 const std::string& name, const std::string& source);

/// Splits a file's text into lines ("\n"; a last line without one counts).
std::vector<std::string> split_lines(const std::string& text);

}  // namespace xmodal::text
