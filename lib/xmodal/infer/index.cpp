#include "xmodal/infer/index.h"

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/strings.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/infer/session.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/image.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/models/dual_encoder.h"
#include "xmodal/tasks/task.h"

namespace xmodal::infer {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "xmodal-index";
constexpr int kVersion = 2;  // 2: generations with checksums; 1: files in INDEX_DIR

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  static const std::set<std::string> kImages = {".jpg", ".jpeg", ".png", ".bmp", ".webp",
                                                ".tif", ".tiff", ".pgm", ".ppm", ".pnm"};
  return kImages.count(ext) > 0;
}

// The image files under `dir`, recursively, sorted, as absolute paths.
std::vector<std::string> list_images(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw OptionError("index", "{images} " + OptionError::literal(dir) + " is not a folder");
  std::vector<std::string> paths;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && is_image_file(it->path())) {
      paths.push_back(fs::absolute(it->path()).lexically_normal().string());
    }
  }
  if (ec) throw std::runtime_error("index: cannot list " + dir + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  return paths;
}

// Paths that are not UTF-8 cannot be written to paths.json (JSON holds Unicode text) nor in
// search results: they are left out with a warning naming them, bytes escaped.
void drop_non_utf8(std::vector<std::string>& paths, int64_t& skipped, std::string& first_bad) {
  const auto bad = std::stable_partition(paths.begin(), paths.end(),
                                         [](const std::string& p) { return is_valid_utf8(p); });
  const auto count = static_cast<int64_t>(paths.end() - bad);
  if (count == 0) return;
  std::vector<std::string> shown;
  for (auto it = bad; it != paths.end() && shown.size() < 3; ++it) {
    shown.push_back(escape_invalid_utf8(*it));
  }
  log::warn(
      "[index] skipped {} image(s) whose path is not UTF-8 (an index stores paths as JSON "
      "text; rename them to index them): {}{}",
      count, join(shown, ", "), count > 3 ? ", ..." : "");
  if (first_bad.empty()) first_bad = shown.front() + ": the path is not UTF-8";
  skipped += count;
  paths.erase(bad, paths.end());
}

// The distinct images of a split of the checkpoint's data set, in data order.
std::vector<std::string> split_images(const config::Config& c, const std::string& split) {
  const auto data = tasks::load_split(c, split);
  std::vector<std::string> paths;
  std::set<std::string> seen;
  for (const auto& e : data.examples) {
    const std::string p = fs::absolute(e.image_path).lexically_normal().string();
    if (seen.insert(p).second) paths.push_back(p);
  }
  return paths;
}

struct IndexFiles {
  json manifest;
  torch::Tensor embeddings;  // [N, E]
  std::vector<std::string> paths;
  std::string folder;  // the folder holding the files: the current generation, or INDEX_DIR
};

std::string file_in(const std::string& dir, const char* name) {
  return (fs::path(dir) / name).string();
}

// An index is written as checkpoints are: a new generation folder beside the old one (every
// file fsynced, its size and CRC32 in its manifest), then the link `current` switched to it
// in one rename, then the old generation removed. A kill or an error at any point leaves the
// previous index whole; what a killed writer left is swept by the next one and never read.
// Version 1 indexes (files directly in INDEX_DIR, no checksums) are still read; an --append
// to one writes a generation and removes the old files.
constexpr const char* kCurrent = "current";

// The folder of the index's files: INDEX_DIR/current's target, INDEX_DIR itself for a version
// 1 index, "" when INDEX_DIR holds no index.
std::string index_folder(const std::string& dir) {
  std::error_code ec;
  const fs::path link = fs::path(dir) / kCurrent;
  if (fs::is_symlink(fs::symlink_status(link, ec))) {
    const fs::path target = fs::read_symlink(link, ec);
    if (ec || target.has_parent_path() || target.string().rfind("gen-", 0) != 0) {
      throw std::runtime_error(link.string() + ": not a link to an index generation (gen-N)");
    }
    return (fs::path(dir) / target).string();
  }
  if (fs::exists(file_in(dir, "manifest.json"), ec)) return dir;
  return "";
}

IndexFiles read_index(const std::string& dir) {
  IndexFiles f;
  f.folder = index_folder(dir);
  if (f.folder.empty()) {
    throw std::runtime_error(dir +
                             " is not an xmodal index (no manifest.json; build one with "
                             "`xmodal index`)");
  }
  const std::string manifest_path = file_in(f.folder, "manifest.json");
  f.manifest = json::parse(io::read_file(manifest_path, 1 << 20), nullptr, false);
  if (!f.manifest.is_object() || f.manifest.value("format", "") != kFormat) {
    throw std::runtime_error(manifest_path + ": not an xmodal index manifest");
  }
  const json version = f.manifest.contains("version") ? f.manifest["version"] : json();
  if (!version.is_number_integer() || version.get<int64_t>() < 1 ||
      version.get<int64_t>() > kVersion) {
    throw std::runtime_error(manifest_path + ": index format version " + version.dump() +
                             ", this xmodal reads 1 to " + std::to_string(kVersion));
  }
  // every field read later, with its type: a wrong one is named here, not met as a raw error
  const auto require = [&](const char* key, bool ok, const char* what) {
    if (!ok) {
      throw std::runtime_error(manifest_path + ": \"" + key + "\" must be " + what +
                               (f.manifest.contains(key) ? ", got " + f.manifest[key].dump()
                                                         : std::string(", missing")));
    }
  };
  const auto is = [&](const char* key, bool (json::*type)() const noexcept) {
    return f.manifest.contains(key) && (f.manifest[key].*type)();
  };
  require("checkpoint", is("checkpoint", &json::is_string), "a string");
  require("model", is("model", &json::is_string), "a string");
  require("backend", is("backend", &json::is_string), "a string");
  require("count", is("count", &json::is_number_integer), "an integer");
  require("embed_dim",
          is("embed_dim", &json::is_number_integer) && f.manifest["embed_dim"].get<int64_t>() > 0,
          "a positive integer");
  if (f.manifest.contains("skipped")) {
    require("skipped", is("skipped", &json::is_number_integer), "an integer");
  }
  // version 2: each file's size and CRC32; the files read for the check are parsed from the
  // same bytes below (a version 1 index's are read then)
  std::map<std::string, std::string> checked;
  if (version.get<int64_t>() >= 2) {
    require("files", is("files", &json::is_object), "an object");
    for (const auto& [name, info] : f.manifest["files"].items()) {
      if (name.find('/') != std::string::npos || name.empty() || name[0] == '.' ||
          !info.is_object() || !info.contains("bytes") || !info["bytes"].is_number_unsigned() ||
          !info.contains("crc32") || !info["crc32"].is_string()) {
        throw std::runtime_error(manifest_path + ": a malformed \"files\" entry");
      }
      const std::string path = file_in(f.folder, name.c_str());
      std::string bytes = io::read_file(path, int64_t{1} << 40);
      if (bytes.size() != info["bytes"].get<uint64_t>()) {
        throw std::runtime_error(path + " has " + std::to_string(bytes.size()) +
                                 " bytes, the manifest says " + info["bytes"].dump() +
                                 ": the index is damaged; rebuild it with `xmodal index`");
      }
      const std::string crc = checkpoint::crc32_hex(bytes);
      if (crc != info["crc32"].get<std::string>()) {
        throw std::runtime_error(path + " checksum mismatch (crc32 " + crc +
                                 ", the manifest says " + info["crc32"].get<std::string>() +
                                 "): the index is damaged; rebuild it with `xmodal index`");
      }
      if (name != "faiss.index") checked[name] = std::move(bytes);  // FAISS reads its own
    }
  }
  const auto bytes_of = [&](const char* name, int64_t limit) {
    const auto it = checked.find(name);
    return it != checked.end() ? std::move(it->second)
                               : io::read_file(file_in(f.folder, name), limit);
  };
  const std::string embeddings_path = file_in(f.folder, "embeddings.safetensors");
  const auto tensors = io::SafeTensorsFile::from_bytes(
                           bytes_of("embeddings.safetensors", int64_t{1} << 40), embeddings_path)
                           .tensors();
  const auto it = tensors.find("embeddings");
  if (it == tensors.end() || it->second.dim() != 2) {
    throw std::runtime_error(embeddings_path + ": no \"embeddings\" [N, E] tensor");
  }
  if (it->second.scalar_type() != torch::kFloat32) {
    throw std::runtime_error(embeddings_path + ": \"embeddings\" is " +
                             io::safetensors_dtype(it->second.scalar_type()) +
                             "; an index holds float32 embeddings");
  }
  if (it->second.size(1) != f.manifest["embed_dim"].get<int64_t>()) {
    throw std::runtime_error(embeddings_path + ": embeddings of width " +
                             std::to_string(it->second.size(1)) + ", the manifest says embed_dim " +
                             f.manifest["embed_dim"].dump());
  }
  if (!torch::isfinite(it->second).all().item<bool>()) {
    throw std::runtime_error(embeddings_path +
                             ": embeddings that are not finite (NaN or infinite): the index is "
                             "damaged; rebuild it with `xmodal index`");
  }
  f.embeddings = it->second.contiguous();
  const auto paths = json::parse(bytes_of("paths.json", int64_t{1} << 32), nullptr, false);
  if (!paths.is_array())
    throw std::runtime_error(file_in(f.folder, "paths.json") + ": not a JSON array");
  for (const auto& p : paths) {
    if (!p.is_string())
      throw std::runtime_error(file_in(f.folder, "paths.json") + ": a non-string path");
    f.paths.push_back(p.get<std::string>());
  }
  const int64_t count = f.manifest["count"].get<int64_t>();
  if (f.embeddings.size(0) != static_cast<int64_t>(f.paths.size()) ||
      f.embeddings.size(0) != count) {
    throw std::runtime_error(
        dir + ": the index's files disagree (" + std::to_string(f.embeddings.size(0)) +
        " embeddings, " + std::to_string(f.paths.size()) + " paths, manifest count " +
        std::to_string(count) + "): an interrupted write? Rebuild it with `xmodal index`");
  }
  return f;
}

// What killed writers left in INDEX_DIR (temporary generations and links, generations that
// never became current) and, once a generation is current, a version 1 index's files.
void sweep_index(const std::string& dir, const std::string& keep) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool leftover = name.rfind(".gen-", 0) == 0 || name.rfind(".current.tmp-", 0) == 0 ||
                          (name.rfind("gen-", 0) == 0 && name != keep);
    if (leftover) fs::remove_all(entry.path(), ec);
  }
  if (!keep.empty()) {
    for (const char* legacy :
         {"embeddings.safetensors", "paths.json", "faiss.index", "manifest.json"}) {
      fs::remove(file_in(dir, legacy), ec);
    }
  }
}

// Writes the generation after `previous` ("" or "gen-N"): its files into a temporary folder,
// fsynced, manifest last, renamed to gen-(N+1), then `current` switched to it.
std::string commit_generation(const std::string& dir, const std::string& previous,
                              const std::map<std::string, std::string>& files, json manifest) {
  int64_t number = 0;
  for (size_t i = 4; i < previous.size() && number < (int64_t{1} << 40); ++i) {
    if (previous[i] < '0' || previous[i] > '9') break;
    number = number * 10 + (previous[i] - '0');
  }
  const std::string name = "gen-" + std::to_string(number + 1);
  const fs::path tmp = fs::path(dir) / ("." + name + ".tmp-" + std::to_string(::getpid()));
  const fs::path final_dir = fs::path(dir) / name;
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::remove_all(final_dir, ec);  // a killed writer's, never current
  fs::create_directories(tmp, ec);
  if (ec) throw std::runtime_error("index: cannot create " + tmp.string() + ": " + ec.message());
  try {
    json listed = json::object();
    for (const auto& [file, bytes] : files) {
      io::write_file_atomic((tmp / file).string(), bytes);
      listed[file] = {{"bytes", bytes.size()}, {"crc32", checkpoint::crc32_hex(bytes)}};
    }
    manifest["files"] = listed;
    io::write_file_atomic((tmp / "manifest.json").string(), manifest.dump(2) + "\n");
    io::fsync_dir(tmp);
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
      throw std::runtime_error("index: cannot rename " + tmp.string() + " to " +
                               final_dir.string() + ": " + std::strerror(errno));
    }
    io::fsync_dir(dir);
    const fs::path link_tmp = fs::path(dir) / (".current.tmp-" + std::to_string(::getpid()));
    ::unlink(link_tmp.c_str());
    if (::symlink(name.c_str(), link_tmp.c_str()) != 0 ||
        ::rename(link_tmp.c_str(), (fs::path(dir) / kCurrent).c_str()) != 0) {
      const int saved = errno;
      ::unlink(link_tmp.c_str());
      fs::remove_all(final_dir, ec);
      throw std::runtime_error("index: cannot switch " + (fs::path(dir) / kCurrent).string() +
                               " to " + name + ": " + std::strerror(saved));
    }
    io::fsync_dir(dir);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return name;
}

// Index and search open the model as predict, eval and embed do: the config validated after
// --set, and quantized as eval.quantize says. The image embeddings an index holds and the
// queries searched against them then come from the model that `embed` and `predict --labels`
// use for the same checkpoint and --set (both steps were once skipped here: a --set that eval
// refuses was taken, and eval.quantize int8 gave float embeddings here, int8 ones elsewhere).
Session open_model(const std::string& checkpoint, const std::vector<std::string>& overrides,
                   const char* what) {
  SessionOptions options(checkpoint, overrides, what);
  options.check = [what](const checkpoint::LoadedModel& m) { require_retrieval(m, what); };
  return Session::open(options);
}

// The embeddings of the image files `paths` (appended to `parts`, their paths to `added`)
// through the data loader: worker threads decode and transform; a bad image is skipped and
// counted (the first in `first_bad`), never fatal on its own. Returns the images skipped.
int64_t embed_image_files(checkpoint::LoadedModel& m, const c10::Device& device,
                          const std::vector<std::string>& paths, int batch_size,
                          std::chrono::steady_clock::time_point start,
                          std::vector<torch::Tensor>& parts, std::vector<std::string>& added,
                          std::string& first_bad) {
  auto set = std::make_shared<data::TaskData>();
  set->task = m.config.task;  // images alone: no annotations, no targets
  set->has_targets = false;
  for (size_t i = 0; i < paths.size(); ++i) {
    data::Example e;
    e.image_path = paths[i];
    e.id = static_cast<int64_t>(i);
    set->examples.push_back(std::move(e));
  }
  auto lo = data::loader_options(m.config, /*train=*/false);
  lo.batch_size = batch_size;
  lo.skip_bad = true;
  lo.max_bad_share = 1.0;
  lo.image_cache_bytes = 0;
  data::Loader loader(set, m.artifacts.tokenizer, lo);
  loader.start(0);
  torch::NoGradGuard no_grad;
  auto last_report = std::chrono::steady_clock::now();
  int64_t done = 0;
  while (auto batch = loader.next()) {
    done += batch->size() + batch->skipped;
    if (batch->skipped > 0 && first_bad.empty()) first_bad = batch->bad;
    if (batch->size() > 0) {
      const auto e = models::embed_images(*m.model, batch->images.to(device))
                         .index_select(0, batch->image_index.to(device))
                         .to(torch::kCPU);
      parts.push_back(e);
      for (const int64_t i : batch->indices) added.push_back(paths[static_cast<size_t>(i)]);
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report > std::chrono::seconds(2) || done == static_cast<int64_t>(paths.size())) {
      const double secs = std::chrono::duration<double>(now - start).count();
      const double rate = done / std::max(secs, 1e-9);
      log::info("[index] {}/{} images, {:.0f} images/s, ETA {:.0f} s", done, paths.size(), rate,
                (static_cast<double>(paths.size()) - done) / std::max(rate, 1e-9));
      last_report = now;
    }
  }
  return loader.skipped();
}

// The checks of build_index's options that need no model.
void check_index_options(const IndexOptions& o) {
  if (o.out.empty()) throw OptionError("index", "{out} (the index folder) is required");
  if (o.images.empty() == o.split.empty()) {
    throw OptionError("index", "give exactly one of {images} (a folder) and {split}");
  }
  const SearchBackend backend = parse_backend(o.backend);
  if (backend != SearchBackend::flat && !have_faiss()) {
    throw OptionError(
        "index",
        "{backend} " + OptionError::literal(o.backend) +
            " needs FAISS, which this build lacks (configured with -DXMODAL_WITH_FAISS=OFF; "
            "the default build has it: libfaiss-dev)");
  }
}

}  // namespace

IndexReport build_index(const IndexOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  check_index_options(o);
  Session session = open_model(o.checkpoint, o.overrides, "index");
  checkpoint::LoadedModel& m = session.loaded;
  const c10::Device device = session.device;
  const std::string identity = checkpoint_identity(m.checkpoint);
  if (!is_valid_utf8(fs::absolute(m.checkpoint).string())) {
    throw std::invalid_argument("index: the checkpoint's path " +
                                escape_invalid_utf8(fs::absolute(m.checkpoint).string()) +
                                " is not UTF-8, and the manifest stores it as JSON text; move "
                                "or link the checkpoint to a UTF-8 path");
  }

  IndexFiles old;
  std::error_code ec;
  const bool exists = !index_folder(o.out).empty();
  if (exists && !o.append) {
    throw OptionError("index", OptionError::literal(o.out) +
                                   " already holds an index; pass {append} to add images to it, "
                                   "or choose another {out}");
  }
  if (exists) {
    old = read_index(o.out);
    if (old.manifest.value("model", "") != identity) {
      throw std::invalid_argument("index: " + o.out + " was built with checkpoint " +
                                  old.manifest.value("checkpoint", "?") + " (" +
                                  old.manifest.value("model", "?") + "); " + m.checkpoint + " is " +
                                  identity + ": embeddings of two models cannot be compared");
    }
  }
  IndexReport r;
  std::vector<std::string> paths =
      o.images.empty() ? split_images(m.config, o.split) : list_images(o.images);
  drop_non_utf8(paths, r.skipped, r.first_bad);
  const int64_t non_utf8 = r.skipped;
  const std::set<std::string> known(old.paths.begin(), old.paths.end());
  paths.erase(std::remove_if(paths.begin(), paths.end(),
                             [&](const std::string& p) { return known.count(p) > 0; }),
              paths.end());
  const std::string source = o.images.empty() ? "split " + o.split : o.images;
  log::info("[index] {} new image(s) from {} ({} already indexed)", paths.size(), source,
            old.paths.size());

  std::vector<torch::Tensor> parts;
  std::vector<std::string> added;
  if (!paths.empty()) {
    r.skipped = non_utf8 +
                embed_image_files(m, device, paths, o.batch_size, start, parts, added, r.first_bad);
  }
  r.added = static_cast<int64_t>(added.size());
  if (r.added == 0 && !paths.empty()) {
    if (r.first_bad.empty()) {  // the loader hands out no batch whose every image was bad
      try {
        io::read_image_rgb(paths.front());
        r.first_bad = paths.front();
      } catch (const std::exception& e) {
        r.first_bad = e.what();
      }
    }
    throw std::runtime_error("index: none of the " + std::to_string(paths.size()) +
                             " images could be read; the first: " + r.first_bad);
  }
  if (r.added == 0 && old.paths.empty()) {
    throw std::runtime_error("index: no images found in " + source +
                             (r.first_bad.empty() ? "" : "; skipped: " + r.first_bad));
  }
  if (r.skipped > 0) {
    log::warn("[index] skipped {} unreadable image(s); the first: {}", r.skipped, r.first_bad);
  }
  std::vector<torch::Tensor> all;
  if (old.embeddings.defined()) all.push_back(old.embeddings);
  all.insert(all.end(), parts.begin(), parts.end());
  const auto embeddings = torch::cat(all).contiguous();
  std::vector<std::string> all_paths = old.paths;
  all_paths.insert(all_paths.end(), added.begin(), added.end());
  r.total = static_cast<int64_t>(all_paths.size());

  fs::create_directories(o.out, ec);
  if (ec) throw std::runtime_error("index: cannot create " + o.out + ": " + ec.message());
  std::map<std::string, std::string> files;
  files["embeddings.safetensors"] =
      io::serialize_safetensors({{"embeddings", embeddings}}, {{"producer", "xmodal index"}});
  files["paths.json"] = json(all_paths).dump() + "\n";
  const std::string backend_used =
      exists && o.backend == "flat" ? old.manifest.value("backend", "flat") : o.backend;
  const SearchBackend b = parse_backend(backend_used);
  if (b != SearchBackend::flat) {
    const auto t0 = std::chrono::steady_clock::now();
    files["faiss.index"] = AnnIndex::build(b, embeddings, o.ann).serialize();
    log::info("[index] {} index over {} vectors built in {:.1f} s", backend_used, r.total,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  json manifest = {
      {"format", kFormat},
      {"version", kVersion},
      {"checkpoint", fs::absolute(m.checkpoint).lexically_normal().string()},
      {"model", identity},
      {"embed_dim", embeddings.size(1)},
      {"count", r.total},
      {"backend", backend_used},
      {"nlist", o.ann.nlist},
      {"hnsw_m", o.ann.hnsw_m},
      {"skipped", (exists ? old.manifest.value("skipped", int64_t{0}) : 0) + r.skipped}};
  const std::string previous =
      exists && old.folder != o.out ? fs::path(old.folder).filename().string() : std::string();
  const std::string current = commit_generation(o.out, previous, files, manifest);
  sweep_index(o.out, current);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.images_per_second = r.seconds > 0 ? static_cast<double>(r.added + r.skipped) / r.seconds : 0;
  return r;
}

ImageIndex ImageIndex::open(const std::string& dir, const std::string& identity,
                            const std::string& backend, const AnnOptions& ann) {
  IndexFiles f = read_index(dir);
  ImageIndex index;
  index.dir_ = dir;
  index.checkpoint_ = f.manifest.value("checkpoint", std::string());
  if (!identity.empty() && identity != f.manifest.value("model", "")) {
    throw std::invalid_argument(dir + " was built with checkpoint " +
                                f.manifest.value("checkpoint", "?") + " (" +
                                f.manifest.value("model", "?") + "); this checkpoint is " +
                                identity + ": embeddings of two models cannot be compared");
  }
  const std::string built = f.manifest.value("backend", "flat");
  index.backend_ = backend.empty() ? built : backend;
  if (parse_backend(index.backend_) != SearchBackend::flat) {
    if (index.backend_ != built) {
      throw OptionError("", OptionError::literal(dir) + " has no " + index.backend_ +
                                " index (built with {backend} " + OptionError::literal(built) +
                                "); build it again with {backend} " + index.backend_ +
                                ", or search with {backend} flat");
    }
    index.ann_ = std::make_unique<AnnIndex>(AnnIndex::load(file_in(f.folder, "faiss.index"), ann));
    if (index.ann_->size() != f.embeddings.size(0)) {
      throw std::runtime_error(dir + ": faiss.index holds " + std::to_string(index.ann_->size()) +
                               " vectors, the index " + std::to_string(f.embeddings.size(0)) +
                               ": rebuild it with `xmodal index`");
    }
  }
  index.embeddings_ = std::move(f.embeddings);
  index.paths_ = std::move(f.paths);
  return index;
}

ImageIndex::ImageIndex(ImageIndex&&) noexcept = default;
ImageIndex& ImageIndex::operator=(ImageIndex&&) noexcept = default;
ImageIndex::~ImageIndex() = default;

int64_t ImageIndex::size() const { return embeddings_.size(0); }
int64_t ImageIndex::dim() const { return embeddings_.size(1); }

std::vector<std::vector<SearchHit>> ImageIndex::search(const torch::Tensor& queries,
                                                       int64_t top_k) const {
  if (queries.dim() != 2 || queries.size(1) != dim()) {
    throw std::invalid_argument("search: queries of width " +
                                std::to_string(queries.dim() == 2 ? queries.size(1) : -1) +
                                ", the index holds " + std::to_string(dim()));
  }
  const auto q = queries.to(torch::kCPU, torch::kFloat32).contiguous();
  const SearchHits hits = ann_ ? ann_->search(q, top_k) : exact_search(embeddings_, q, top_k);
  std::vector<std::vector<SearchHit>> out(static_cast<size_t>(q.size(0)));
  const auto ids = hits.ids.accessor<int64_t, 2>();
  const auto scores = hits.scores.to(torch::kFloat64).contiguous();
  const auto s = scores.accessor<double, 2>();
  for (int64_t r = 0; r < q.size(0); ++r) {
    for (int64_t j = 0; j < hits.ids.size(1); ++j) {
      if (ids[r][j] < 0) continue;
      out[static_cast<size_t>(r)].push_back(
          {static_cast<int64_t>(out[static_cast<size_t>(r)].size()) + 1,
           paths_.at(static_cast<size_t>(ids[r][j])), s[r][j]});
    }
  }
  return out;
}

std::vector<SearchHit> search_index(const SearchOptions& o) {
  if (o.index.empty()) throw OptionError("search", "{index} (the index folder) is required");
  if (o.text.empty() == o.image.empty()) {
    throw OptionError("search", "give exactly one of {text} and {image}");
  }
  if (o.top_k < 1) throw OptionError("search", "{top_k} must be >= 1");
  std::string checkpoint = o.checkpoint;
  if (checkpoint.empty()) checkpoint = read_index(o.index).manifest.value("checkpoint", "");
  Session session = open_model(checkpoint, o.overrides, "search");
  checkpoint::LoadedModel& m = session.loaded;
  const c10::Device device = session.device;
  ImageIndex index = [&] {
    try {
      return ImageIndex::open(o.index, checkpoint_identity(m.checkpoint), o.backend, o.ann);
    } catch (const std::invalid_argument&) {
      rethrow_in("search: ");
    }
  }();
  torch::Tensor query;
  {
    torch::NoGradGuard no_grad;
    if (!o.text.empty()) {
      query = embed_texts(m, {o.text}, device);
    } else {
      query = models::embed_images(*m.model, image_tensor(m, o.image).unsqueeze(0).to(device))
                  .to(torch::kCPU);
    }
  }
  return index.search(query, o.top_k).at(0);
}

}  // namespace xmodal::infer
