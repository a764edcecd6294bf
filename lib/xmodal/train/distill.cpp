#include "xmodal/train/distill.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <stdexcept>

#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/infer/retrieval.h"

namespace xmodal::train {
namespace {

using nlohmann::json;

std::string first_difference(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i] != b[i]) return "at " + std::to_string(i) + ": '" + b[i] + "' vs '" + a[i] + "'";
  }
  return "after " + std::to_string(std::min(a.size(), b.size()));
}

}  // namespace

Teacher load_teacher(const config::Config& student, const checkpoint::Artifacts& artifacts,
                     const c10::Device& device) {
  const std::string& path = student.train.distill.teacher;
  const std::string key = "train.distill.teacher: " + path;
  // Not infer::Session: a training use. The teacher runs inside the student's training step, on
  // the student's device and threads, with its config as stored (no --set, no quantization, no
  // eval.* settings); Session would configure threads and a device of the teacher's own.
  checkpoint::LoadedModel m;
  // Building the teacher initialises weights from the global generator before its checkpoint
  // replaces them: the student's run must not see that (weight 0 trains exactly as no teacher).
  const std::string rng = checkpoint::cpu_rng_state();
  try {
    // A run directory: its best checkpoint, as init_from takes it.
    std::error_code ec;
    const auto best = std::filesystem::path(path) / "best";
    m = checkpoint::load_trained_model(std::filesystem::exists(best, ec) ? best.string() : path);
  } catch (const std::runtime_error&) {
    checkpoint::set_cpu_rng_state(rng);
    rethrow_in(key + ": ", ErrorKind::usage);  // the config names a teacher that cannot be used
  }
  checkpoint::set_cpu_rng_state(rng);
  const auto& t = m.config;
  if (t.task != student.task) {
    throw std::invalid_argument(key + " is a " + config::to_string(t.task) +
                                " model; this run trains " + config::to_string(student.task));
  }
  const auto& ours = artifacts.class_names;
  const auto& theirs = m.artifacts.class_names;
  if (theirs != ours) {
    throw std::invalid_argument(key + " has another label set: " + std::to_string(theirs.size()) +
                                " classes against this run's " + std::to_string(ours.size()) +
                                " (first difference " + first_difference(ours, theirs) +
                                "); a teacher must be trained on the same classes");
  }
  if (m.artifacts.tokenizer->files() != artifacts.tokenizer->files()) {
    throw std::invalid_argument(key +
                                " has another tokenizer vocabulary than this run; the "
                                "teacher reads the student's token ids, so they must be equal");
  }
  const auto& a = t.data;
  const auto& b = student.data;
  if (a.image_size != b.image_size || a.resize != b.resize || a.mean != b.mean ||
      a.stddev != b.stddev || a.max_text_len != b.max_text_len) {
    throw std::invalid_argument(
        key + " was trained on other inputs (data.image_size " + std::to_string(a.image_size) +
        " vs " + std::to_string(b.image_size) + ", data.max_text_len " +
        std::to_string(a.max_text_len) + " vs " + std::to_string(b.max_text_len) +
        ", or data.resize / mean / std); the teacher sees the student's batches");
  }
  if (student.train.distill.features > 0) {
    const auto& tv = t.model.vision;
    const auto& sv = student.model.vision;
    if (student.task == config::Task::retrieval || tv.hidden != sv.hidden ||
        tv.patch_size != sv.patch_size) {
      throw std::invalid_argument(
          key +
          ": train.distill.features compares the image encoders' tokens, so they need "
          "the same width and grid (teacher model.vision.hidden " +
          std::to_string(tv.hidden) + ", patch_size " + std::to_string(tv.patch_size) +
          "; student " + std::to_string(sv.hidden) + ", " + std::to_string(sv.patch_size) +
          "; task vqa or counting)");
    }
  }
  Teacher teacher;
  teacher.checkpoint = m.checkpoint;
  teacher.identity = infer::checkpoint_identity(m.checkpoint);
  teacher.model = m.model;
  if (m.quantization == config::Quantize::int8 && !device.is_cpu()) {
    throw std::invalid_argument(key + " is an int8 checkpoint, which runs on the CPU only");
  }
  teacher.model->to(device);
  teacher.model->eval();
  for (auto& p : teacher.model->parameters()) p.set_requires_grad(false);
  const int64_t parameters = models::count_parameters(*teacher.model);
  teacher.record =
      json{{"checkpoint", m.checkpoint},        {"model", teacher.identity},
           {"task", config::to_string(t.task)}, {"step", m.step},
           {"parameters", parameters},          {"quantization", config::to_string(m.quantization)},
           {"config", config::dump_config(t)}}
          .dump(2) +
      "\n";
  log::info("[distill] teacher {} ({} parameters, step {}), weight {}, temperature {}",
            m.checkpoint, parameters, m.step, student.train.distill.weight,
            student.train.distill.temperature);
  return teacher;
}

void check_resumed_teacher(const std::map<std::string, std::string>& checkpoint_files,
                           const Teacher* teacher, const std::string& checkpoint) {
  const auto it = checkpoint_files.find(kTeacherFile);
  if (it == checkpoint_files.end() && !teacher) return;
  if (it == checkpoint_files.end()) {
    throw std::invalid_argument("train.distill.teacher: " + checkpoint +
                                " was trained without a teacher; resuming it with one would not "
                                "continue the same run");
  }
  if (!teacher) {
    throw std::invalid_argument(checkpoint +
                                " was distilled from a teacher (teacher.json), but "
                                "train.distill.teacher is empty now");
  }
  const auto saved = json::parse(it->second, nullptr, false);
  const std::string model = saved.is_object() ? saved.value("model", "") : "";
  if (model != teacher->identity) {
    throw std::invalid_argument("train.distill.teacher: " + teacher->checkpoint + " (" +
                                teacher->identity + ") is not the teacher " + checkpoint +
                                " was distilled from (" + model + ")");
  }
}

}  // namespace xmodal::train
