// The teacher of knowledge distillation (train.distill): a trained xmodal checkpoint of the
// student's task, classes and input pipeline, loaded once and run without gradients next to
// the student (train_step.cpp adds weight x Task::distill_loss to the loss). Its identity and
// config go into every checkpoint of the run (teacher.json), and a resumed run refuses another
// teacher: the losses would not continue as they were.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/config.h"
#include "xmodal/models/model.h"

namespace xmodal::train {

struct Teacher {
  models::Model model{nullptr};  ///< in eval mode, on the run's device
  std::string checkpoint;        ///< the checkpoint directory read
  std::string identity;          ///< CRC-32 and size of its model.safetensors
  std::string record;            ///< teacher.json: checkpoint, identity, task, step, config
};

/// The name of the teacher's record in each checkpoint of a distilled run.
inline constexpr const char* kTeacherFile = "teacher.json";

/// Loads config.train.distill.teacher and checks it against the student: the same task, the
/// same classes (answers or categories) in the same order, the same tokenizer files and the
/// same image pipeline (data.image_size, resize, mean, std). Throws std::invalid_argument
/// naming the key and the difference.
Teacher load_teacher(const config::Config& student, const checkpoint::Artifacts& artifacts,
                     const c10::Device& device);

/// A resumed run's checkpoint files against the teacher now configured: throws
/// std::invalid_argument when the checkpoint was distilled from another teacher (or from none,
/// or the run now has none).
void check_resumed_teacher(const std::map<std::string, std::string>& checkpoint_files,
                           const Teacher* teacher, const std::string& checkpoint);

}  // namespace xmodal::train
