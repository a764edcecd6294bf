// The data of a training run: its training and validation splits, the tokenizer and the class
// names, and the artifact files every checkpoint carries. A resumed run takes the tokenizer and
// classes from its checkpoint, so that ids and answer classes mean what they meant.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/config.h"
#include "xmodal/data/dataset.h"

namespace xmodal::train {

struct RunData {
  checkpoint::Artifacts artifacts;
  std::shared_ptr<data::TaskData> train, val;
  std::map<std::string, std::string> files;  ///< checkpoint::artifact_files()
};

/// Reads config.data's training and validation splits. `checkpoint_files` (of the checkpoint
/// `resume_from`) is null for a fresh run, which builds its tokenizer (the word tokenizer from
/// the training texts) and takes the training split's classes. Throws std::runtime_error for an
/// empty training split or auxiliary categories that differ from the checkpoint's.
RunData load_run_data(const config::Config& config,
                      const std::map<std::string, std::string>* checkpoint_files,
                      const std::string& resume_from);

}  // namespace xmodal::train
