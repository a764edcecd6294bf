#include "xmodal/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "xmodal/core/logging.h"
#include "xmodal/core/version.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/safetensors.h"

namespace xmodal::checkpoint {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "state.json";

[[noreturn]] void fail_errno(const std::string& what, const fs::path& path) {
  throw std::runtime_error("cannot " + what + " " + path.string() + ": " + std::strerror(errno));
}

std::optional<int64_t> step_of(const std::string& name) {
  if (name.rfind("step-", 0) != 0 || name.size() == 5) return std::nullopt;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || step > (INT64_MAX - 9) / 10) return std::nullopt;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

json metric_value(const std::optional<double>& v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return *v;
}

json state_to_json(const TrainState& s) {
  json metrics = json::object();
  for (const auto& [k, v] : s.last_metrics) metrics[k] = std::isfinite(v) ? json(v) : json(nullptr);
  return json{
      {"step", s.step},
      {"epoch", s.epoch},
      {"data_position", {{"epoch", s.epoch}, {"batch", s.batch}, {"world_size", s.world_size}}},
      {"samples_seen", s.samples_seen},
      {"elapsed_seconds", s.elapsed_seconds},
      {"scheduler",
       {{"schedule", s.schedule},
        {"total_steps", s.total_steps},
        {"warmup_steps", s.warmup_steps},
        {"base_lr", s.base_lr},
        {"last_lr", s.last_lr}}},
      {"rng", {{"torch_cpu", s.rng_cpu}}},
      {"early_stopping",
       {{"metric", s.metric},
        {"mode", s.metric_mode},
        {"best", metric_value(s.early_stopping.best)},
        {"best_step", s.early_stopping.best_step},
        {"bad_evals", s.early_stopping.bad_evals},
        {"stopped", s.early_stopping.stopped}}},
      {"best_metric", metric_value(s.early_stopping.best)},
      {"last_eval_step", s.last_eval_step},
      {"metrics", metrics},
  };
}

// A state.json that does not hold what xmodal wrote: the message names the key.
struct BadState : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An integer field within [lo, hi]. nlohmann's get<int64_t>() of 1e79 or of 2.5 converts a
// double to an integer, which is undefined behaviour (found by fuzz_checkpoint); checkpoints
// are untrusted input.
int64_t whole(const json& parent, const char* key, int64_t lo,
              int64_t hi = std::numeric_limits<int64_t>::max()) {
  const json& v = parent.at(key);
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(hi) && static_cast<int64_t>(u) >= lo) {
      return static_cast<int64_t>(u);
    }
  } else if (v.is_number_integer()) {
    const auto i = v.get<int64_t>();
    if (i >= lo && i <= hi) return i;
  }
  throw BadState(std::string(key) + " is " + v.dump() + ", not an integer in [" +
                 std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

TrainState state_from_json(const json& j) {
  TrainState s;
  const auto& position = j.at("data_position");
  s.step = whole(j, "step", 0);
  s.epoch = whole(position, "epoch", 0);
  s.batch = whole(position, "batch", 0);
  // absent before distributed runs
  s.world_size = position.contains("world_size")
                     ? static_cast<int>(whole(position, "world_size", 1, 1 << 20))
                     : 1;
  s.samples_seen = whole(j, "samples_seen", 0);
  s.elapsed_seconds = j.at("elapsed_seconds").get<double>();
  const auto& sched = j.at("scheduler");
  s.schedule = sched.at("schedule").get<std::string>();
  s.total_steps = whole(sched, "total_steps", 0);
  s.warmup_steps = whole(sched, "warmup_steps", 0);
  s.base_lr = sched.at("base_lr").get<double>();
  s.last_lr = sched.at("last_lr").get<double>();
  s.rng_cpu = j.at("rng").at("torch_cpu").get<std::string>();
  const auto& es = j.at("early_stopping");
  s.metric = es.at("metric").get<std::string>();
  s.metric_mode = es.at("mode").get<std::string>();
  if (!es.at("best").is_null()) s.early_stopping.best = es.at("best").get<double>();
  s.early_stopping.best_step = whole(es, "best_step", 0);
  s.early_stopping.bad_evals = whole(es, "bad_evals", 0);
  s.early_stopping.stopped = es.at("stopped").get<bool>();
  s.last_eval_step = whole(j, "last_eval_step", 0);
  for (const auto& [k, v] : j.at("metrics").items()) {
    s.last_metrics[k] = v.is_null() ? std::nan("") : v.get<double>();
  }
  return s;
}

// Writes `bytes` to dir/name (inside a temporary checkpoint directory) and records its checksum.
void put_file(const fs::path& dir, const std::string& name, const std::string& bytes, json& files) {
  io::write_file_atomic((dir / name).string(), bytes);
  files[name] = {{"bytes", bytes.size()}, {"crc32", crc32_hex(bytes)}};
}

}  // namespace

// ---- early stopping ---------------------------------------------------------------------------

// ---- helpers ----------------------------------------------------------------------------------

std::string crc32_hex(std::string_view bytes) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* data = reinterpret_cast<const Bytef*>(bytes.data());
  size_t left = bytes.size();
  while (left > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = ::crc32(crc, data, chunk);
    data += chunk;
    left -= chunk;
  }
  char text[9];
  std::snprintf(text, sizeof text, "%08lx", static_cast<unsigned long>(crc));
  return text;
}

std::string cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  torch::Tensor state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  static const char* digits = "0123456789abcdef";
  std::string hex;
  const auto* p = state.data_ptr<uint8_t>();
  hex.reserve(static_cast<size_t>(state.numel()) * 2);
  for (int64_t i = 0; i < state.numel(); ++i) {
    hex.push_back(digits[p[i] >> 4]);
    hex.push_back(digits[p[i] & 15]);
  }
  return hex;
}

namespace {

at::Tensor rng_bytes(const std::string& hex) {
  if (hex.size() % 2 != 0) throw std::runtime_error("rng state: odd number of hex digits");
  auto state = torch::empty({static_cast<int64_t>(hex.size() / 2)}, torch::kUInt8);
  auto* p = state.data_ptr<uint8_t>();
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw std::runtime_error("rng state: not a hex digit");
  };
  for (size_t i = 0; i < hex.size() / 2; ++i) {
    p[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return state;
}

}  // namespace

void check_cpu_rng_state(const std::string& hex) {
  const auto state = rng_bytes(hex);
  auto gen = at::make_generator<at::CPUGeneratorImpl>();  // a scratch generator
  try {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  } catch (const c10::Error&) {  // LibTorch's text names its internal structs
    throw std::runtime_error("rng state: " + std::to_string(state.numel()) +
                             " bytes is not a CPU generator state");
  }
}

void set_cpu_rng_state(const std::string& hex) {
  check_cpu_rng_state(hex);
  const auto state = rng_bytes(hex);
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// ---- writing ----------------------------------------------------------------------------------

namespace {

// Writes every file of `content` into the new directory `tmp` (fsynced, state.json last); on
// failure removes `tmp` and rethrows.
void write_into(const fs::path& tmp, const CheckpointContent& content) {
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (::mkdir(tmp.c_str(), 0755) != 0) fail_errno("create", tmp);
  try {
    json files = json::object();
    put_file(tmp, kModelFile, io::serialize_safetensors(content.model, {{"format", "pt"}}), files);
    if (!content.optimizer.empty()) {
      put_file(tmp, kOptimizerFile, io::serialize_safetensors(content.optimizer), files);
    }
    for (const auto& [file, bytes] : content.files) put_file(tmp, file, bytes, files);
    json state = json{{"format", "xmodal-checkpoint"},
                      {"format_version", kCheckpointFormatVersion},
                      {"xmodal_version", version()}};
    state.update(state_to_json(content.state));
    state["files"] = files;
    io::write_file_atomic((tmp / kStateFile).string(), state.dump(2) + "\n");
    io::fsync_dir(tmp);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

// Renames `tmp` to `final_dir`; removes `tmp` on failure.
void move_into_place(const fs::path& tmp, const fs::path& final_dir) {
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
    const int saved = errno;
    std::error_code ec;
    fs::remove_all(tmp, ec);
    errno = saved;
    fail_errno("rename into place", final_dir);
  }
}

}  // namespace

std::string write_checkpoint(const std::string& run_dir, const CheckpointContent& content) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) throw std::runtime_error("cannot create " + root.string() + ": " + ec.message());
  const std::string name = "step-" + std::to_string(content.state.step);
  const fs::path tmp = root / (".tmp-" + name + "-" + std::to_string(::getpid()));
  write_into(tmp, content);

  const fs::path final_dir = root / name;
  if (fs::exists(final_dir)) {
    const fs::path trash = root / (".trash-" + name + "-" + std::to_string(::getpid()));
    if (::rename(final_dir.c_str(), trash.c_str()) != 0) fail_errno("move aside", final_dir);
    fs::remove_all(trash, ec);
  }
  move_into_place(tmp, final_dir);
  io::fsync_dir(root);
  return final_dir.string();
}

std::string write_checkpoint_dir(const std::string& dir, const CheckpointContent& content) {
  const fs::path target = fs::path(dir).lexically_normal();
  if (target.filename().empty() || target.filename() == "." || target.filename() == "..") {
    throw std::invalid_argument("cannot write a checkpoint to " + dir + ": name a new directory");
  }
  std::error_code ec;
  const auto status = fs::symlink_status(target, ec);
  if (fs::exists(status)) {
    if (!fs::is_directory(status) || !fs::is_empty(target, ec)) {
      throw std::invalid_argument(dir + " already exists (give a new directory, or an empty one)");
    }
  }
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) throw std::runtime_error("cannot create " + parent.string() + ": " + ec.message());
  const fs::path tmp =
      parent / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()));
  write_into(tmp, content);
  if (fs::exists(status) && ::rmdir(target.c_str()) != 0) {
    const int saved = errno;
    fs::remove_all(tmp, ec);
    errno = saved;
    fail_errno("replace the empty directory", target);
  }
  move_into_place(tmp, target);
  io::fsync_dir(parent);
  return target.string();
}

void set_pointer(const std::string& run_dir, const std::string& name,
                 const std::string& checkpoint_dir) {
  const fs::path link = fs::path(run_dir) / name;
  const fs::path target = fs::path("checkpoints") / fs::path(checkpoint_dir).filename();
  const fs::path tmp = fs::path(run_dir) / ("." + name + ".tmp-" + std::to_string(::getpid()));
  ::unlink(tmp.c_str());
  if (::symlink(target.c_str(), tmp.c_str()) != 0) fail_errno("create link", tmp);
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail_errno("replace link", link);
  }
  io::fsync_dir(run_dir);
}

std::vector<int64_t> checkpoint_steps(const std::string& run_dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(root, ec)) return steps;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const auto step = step_of(entry.path().filename().string());
    if (step && entry.is_directory(ec)) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

void prune_checkpoints(const std::string& run_dir, int keep_last,
                       const std::vector<int64_t>& keep) {
  const auto steps = checkpoint_steps(run_dir);
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const int64_t n = static_cast<int64_t>(steps.size());
  for (int64_t i = 0; i + keep_last < n; ++i) {
    if (std::find(keep.begin(), keep.end(), steps[i]) != keep.end()) continue;
    const std::string name = "step-" + std::to_string(steps[i]);
    // Renamed first, so a kill during removal never leaves a partial step-N behind.
    const fs::path trash = root / (".trash-" + name + "-" + std::to_string(::getpid()));
    if (::rename((root / name).c_str(), trash.c_str()) != 0) {
      log::warn("[checkpoint] cannot remove old checkpoint {}: {}", (root / name).string(),
                std::strerror(errno));
      continue;
    }
    std::error_code ec;
    fs::remove_all(trash, ec);
  }
}

int remove_debris(const std::string& run_dir) {
  int removed = 0;
  std::error_code ec;
  const auto sweep = [&](const fs::path& dir, const std::vector<std::string>& prefixes,
                         const std::string& contains) {
    if (!fs::is_directory(dir, ec)) return;
    std::vector<fs::path> doomed;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      for (const auto& prefix : prefixes) {
        if (name.rfind(prefix, 0) == 0 && name.find(contains) != std::string::npos) {
          doomed.push_back(entry.path());
          break;
        }
      }
    }
    for (const auto& path : doomed) {
      fs::remove_all(path, ec);
      ++removed;
    }
  };
  sweep(fs::path(run_dir) / "checkpoints", {".tmp-step-", ".trash-step-"}, "");
  sweep(fs::path(run_dir), {".last.tmp-", ".best.tmp-", ".config.yaml.tmp-"}, "");
  return removed;
}

// ---- reading ----------------------------------------------------------------------------------

CheckpointContent load_checkpoint(const std::string& dir, LoadOptions options) {
  const auto fail = [&](const std::string& what) -> std::runtime_error {
    return std::runtime_error("checkpoint " + dir + ": " + what);
  };
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw fail("not a directory");
  const fs::path state_path = fs::path(dir) / kStateFile;
  if (!fs::exists(state_path, ec)) throw fail("no state.json (not a complete checkpoint)");
  json state;
  try {
    state = json::parse(io::read_file(state_path.string()));
  } catch (const json::exception& e) {
    throw fail(std::string("state.json is not valid JSON: ") + e.what());
  }
  CheckpointContent content;
  try {
    if (state.at("format").get<std::string>() != "xmodal-checkpoint") {
      throw fail("state.json: not an xmodal checkpoint");
    }
    const int64_t version = whole(state, "format_version", 0);
    if (version != kCheckpointFormatVersion) {
      throw fail("format version " + std::to_string(version) + ", this xmodal reads version " +
                 std::to_string(kCheckpointFormatVersion));
    }
    content.state = state_from_json(state);
  } catch (const json::exception& e) {
    throw fail(std::string("state.json: ") + e.what());
  } catch (const BadState& e) {
    throw fail(std::string("state.json: ") + e.what());
  }
  const json files = state.value("files", json::object());
  if (!files.contains(kModelFile)) throw fail("state.json lists no model.safetensors");
  for (const auto& [name, info] : files.items()) {
    const bool is_optimizer = name == kOptimizerFile;
    if (is_optimizer && !options.optimizer) continue;
    if (name.find('/') != std::string::npos || name.empty() || name[0] == '.') {
      throw fail("state.json lists a file outside the checkpoint: " + name);
    }
    const fs::path path = fs::path(dir) / name;
    if (!fs::exists(path, ec)) throw fail(name + " is missing");
    std::string bytes = io::read_file(path.string());
    uint64_t expected_size = 0;
    std::string expected_crc;
    try {
      expected_size = static_cast<uint64_t>(whole(info, "bytes", 0));
      expected_crc = info.at("crc32").get<std::string>();
    } catch (const json::exception& e) {
      throw fail("state.json entry for " + name + ": " + e.what());
    } catch (const BadState& e) {
      throw fail("state.json entry for " + name + ": " + e.what());
    }
    if (bytes.size() != expected_size) {
      throw fail(name + " has " + std::to_string(bytes.size()) + " bytes, state.json says " +
                 std::to_string(expected_size) + " (truncated or replaced)");
    }
    const std::string crc = crc32_hex(bytes);
    if (crc != expected_crc) {
      throw fail(name + " checksum mismatch (crc32 " + crc + ", state.json says " + expected_crc +
                 "): the file is corrupt");
    }
    if (name == kModelFile || is_optimizer) {
      if (!options.tensors) continue;
      auto file = io::SafeTensorsFile::from_bytes(std::move(bytes), path.string());
      (is_optimizer ? content.optimizer : content.model) = file.tensors();
    } else {
      content.files[name] = std::move(bytes);
    }
  }
  if (options.optimizer && !files.contains(kOptimizerFile)) {
    throw fail("no optimizer.safetensors (a weights-only checkpoint cannot resume training)");
  }
  return content;
}

std::string latest_checkpoint(const std::string& run_dir) {
  auto steps = checkpoint_steps(run_dir);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const std::string dir =
        (fs::path(run_dir) / "checkpoints" / ("step-" + std::to_string(*it))).string();
    try {
      // Everything a resume restores is checked, the RNG state included, so that a damaged
      // newest checkpoint gives way to the one before it.
      LoadOptions verify;
      verify.tensors = false;  // the chosen one is loaded once, by the caller
      const auto content = load_checkpoint(dir, verify);
      if (!content.state.rng_cpu.empty()) check_cpu_rng_state(content.state.rng_cpu);
      return dir;
    } catch (const std::exception& e) {
      const std::string what = e.what();
      log::warn("[checkpoint] skipping {}",
                what.find(dir) == std::string::npos ? dir + ": " + what : what);
    }
  }
  return "";
}

std::string resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw std::runtime_error("checkpoint " + path +
                             ": no such file or "
                             "directory");
  if (fs::exists(fs::path(path) / kStateFile, ec)) {
    return fs::canonical(path, ec).string();
  }
  if (fs::is_directory(fs::path(path) / "checkpoints", ec)) {
    const std::string dir = latest_checkpoint(path);
    if (dir.empty()) throw std::runtime_error("run " + path + " has no complete checkpoint");
    return dir;
  }
  throw std::runtime_error("checkpoint " + path +
                           ": neither a checkpoint (no state.json) nor a run directory (no "
                           "checkpoints/)");
}

}  // namespace xmodal::checkpoint
