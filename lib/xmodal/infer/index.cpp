#include "xmodal/infer/index.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/runtime.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/image.h"
#include "xmodal/io/safetensors.h"

namespace xmodal::infer {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "xmodal-index";
constexpr int kVersion = 1;

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
    throw std::invalid_argument("index: --images " + dir + " is not a folder");
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

// The distinct images of a split of the checkpoint's data set, in data order.
std::vector<std::string> split_images(const config::Config& c, const std::string& split) {
  const auto data = data::load_split(c, split);
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
};

std::string file_in(const std::string& dir, const char* name) {
  return (fs::path(dir) / name).string();
}

IndexFiles read_index(const std::string& dir) {
  IndexFiles f;
  const std::string manifest_path = file_in(dir, "manifest.json");
  std::error_code ec;
  if (!fs::exists(manifest_path, ec)) {
    throw std::runtime_error(dir +
                             " is not an xmodal index (no manifest.json; build one with "
                             "`xmodal index`)");
  }
  f.manifest = json::parse(io::read_file(manifest_path, 1 << 20), nullptr, false);
  if (!f.manifest.is_object() || f.manifest.value("format", "") != kFormat) {
    throw std::runtime_error(manifest_path + ": not an xmodal index manifest");
  }
  if (f.manifest.value("version", 0) != kVersion) {
    throw std::runtime_error(manifest_path + ": index format version " +
                             f.manifest.value("version", json()).dump() + ", this xmodal reads " +
                             std::to_string(kVersion));
  }
  const auto tensors = io::load_safetensors(file_in(dir, "embeddings.safetensors"));
  const auto it = tensors.find("embeddings");
  if (it == tensors.end() || it->second.dim() != 2) {
    throw std::runtime_error(file_in(dir, "embeddings.safetensors") +
                             ": no \"embeddings\" [N, E] tensor");
  }
  f.embeddings = it->second.to(torch::kFloat32).contiguous();
  const auto paths =
      json::parse(io::read_file(file_in(dir, "paths.json"), int64_t{1} << 32), nullptr, false);
  if (!paths.is_array())
    throw std::runtime_error(file_in(dir, "paths.json") + ": not a JSON array");
  for (const auto& p : paths) {
    if (!p.is_string())
      throw std::runtime_error(file_in(dir, "paths.json") + ": a non-string path");
    f.paths.push_back(p.get<std::string>());
  }
  const int64_t count = f.manifest.value("count", int64_t{-1});
  if (f.embeddings.size(0) != static_cast<int64_t>(f.paths.size()) ||
      f.embeddings.size(0) != count) {
    throw std::runtime_error(
        dir + ": the index's files disagree (" + std::to_string(f.embeddings.size(0)) +
        " embeddings, " + std::to_string(f.paths.size()) + " paths, manifest count " +
        std::to_string(count) + "): an interrupted write? Rebuild it with `xmodal index`");
  }
  return f;
}

checkpoint::LoadedModel load_model(const std::string& checkpoint,
                                   const std::vector<std::string>& overrides, c10::Device& device,
                                   const char* what) {
  auto m = checkpoint::load_trained_model(checkpoint);
  require_retrieval(m, what);
  config::apply_overrides(m.config, overrides);
  configure_threads(m.config.run.threads);
  device = resolve_device(m.config.run.device);
  m.model->to(device);
  m.model->eval();
  return m;
}

}  // namespace

IndexReport build_index(const IndexOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (o.out.empty()) throw std::invalid_argument("index: --out INDEX_DIR is required");
  if (o.images.empty() == o.split.empty()) {
    throw std::invalid_argument("index: give exactly one of --images DIR and --split SPLIT");
  }
  const SearchBackend backend = parse_backend(o.backend);
  if (backend != SearchBackend::flat && !have_faiss()) {
    throw std::invalid_argument("index: --backend " + o.backend +
                                " needs FAISS, which this build lacks (Debian: libfaiss-dev)");
  }
  c10::Device device(torch::kCPU);
  auto m = load_model(o.checkpoint, o.overrides, device, "index");
  const std::string identity = checkpoint_identity(m.checkpoint);

  IndexFiles old;
  std::error_code ec;
  const bool exists = fs::exists(file_in(o.out, "manifest.json"), ec);
  if (exists && !o.append) {
    throw std::invalid_argument("index: " + o.out +
                                " already holds an index; pass --append to add images to it, or "
                                "choose another --out");
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
  std::vector<std::string> paths =
      o.images.empty() ? split_images(m.config, o.split) : list_images(o.images);
  const std::set<std::string> known(old.paths.begin(), old.paths.end());
  paths.erase(std::remove_if(paths.begin(), paths.end(),
                             [&](const std::string& p) { return known.count(p) > 0; }),
              paths.end());
  const std::string source = o.images.empty() ? "split " + o.split : o.images;
  log::info("[index] {} new image(s) from {} ({} already indexed)", paths.size(), source,
            old.paths.size());

  // The images through the data loader (worker threads decode and transform; a bad image is
  // skipped and counted, never fatal on its own).
  auto set = std::make_shared<data::TaskData>();
  set->task = config::Task::classify;
  set->class_names = {"image"};
  for (size_t i = 0; i < paths.size(); ++i) {
    data::Example e;
    e.image_path = paths[i];
    e.id = static_cast<int64_t>(i);
    e.label = 0;
    set->examples.push_back(std::move(e));
  }
  auto lo = data::loader_options(m.config, /*train=*/false);
  lo.batch_size = o.batch_size;
  lo.skip_bad = true;
  lo.max_bad_share = 1.0;
  lo.image_cache_bytes = 0;
  IndexReport r;
  std::vector<torch::Tensor> parts;
  std::vector<std::string> added;
  if (!paths.empty()) {
    data::Loader loader(set, m.artifacts.tokenizer, lo);
    loader.start(0);
    torch::NoGradGuard no_grad;
    auto last_report = std::chrono::steady_clock::now();
    int64_t done = 0;
    while (auto batch = loader.next()) {
      done += batch->size() + batch->skipped;
      if (batch->skipped > 0 && r.first_bad.empty()) r.first_bad = batch->bad;
      if (batch->size() > 0) {
        const auto e = m.model->embed_images(batch->images.to(device))
                           .index_select(0, batch->image_index.to(device))
                           .to(torch::kCPU);
        parts.push_back(e);
        for (const int64_t i : batch->indices) added.push_back(paths[static_cast<size_t>(i)]);
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last_report > std::chrono::seconds(2) ||
          done == static_cast<int64_t>(paths.size())) {
        const double secs = std::chrono::duration<double>(now - start).count();
        const double rate = done / std::max(secs, 1e-9);
        log::info("[index] {}/{} images, {:.0f} images/s, ETA {:.0f} s", done, paths.size(), rate,
                  (static_cast<double>(paths.size()) - done) / std::max(rate, 1e-9));
        last_report = now;
      }
    }
    r.skipped = loader.skipped();
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
    throw std::runtime_error("index: no images found in " + source);
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
  // The manifest goes last: until it is replaced, a reader sees the old count and refuses the
  // mixture (read_index); after it, everything agrees.
  io::save_safetensors(file_in(o.out, "embeddings.safetensors"), {{"embeddings", embeddings}},
                       {{"producer", "xmodal index"}});
  io::write_file_atomic(file_in(o.out, "paths.json"), json(all_paths).dump() + "\n");
  const std::string backend_used =
      exists && o.backend == "flat" ? old.manifest.value("backend", "flat") : o.backend;
  const SearchBackend b = parse_backend(backend_used);
  if (b != SearchBackend::flat) {
    const auto t0 = std::chrono::steady_clock::now();
    AnnIndex::build(b, embeddings, o.ann).save(file_in(o.out, "faiss.index"));
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
  io::write_file_atomic(file_in(o.out, "manifest.json"), manifest.dump(2) + "\n");
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
      throw std::invalid_argument(dir + " has no " + index.backend_ +
                                  " index (built with --backend " + built +
                                  "); rebuild it with `xmodal index --backend " + index.backend_ +
                                  "`, or search with --backend flat");
    }
    index.ann_ = std::make_unique<AnnIndex>(AnnIndex::load(file_in(dir, "faiss.index"), ann));
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
  if (o.index.empty()) throw std::invalid_argument("search: --index INDEX_DIR is required");
  if (o.text.empty() == o.image.empty()) {
    throw std::invalid_argument("search: give exactly one of --text and --image");
  }
  if (o.top_k < 1) throw std::invalid_argument("search: --top-k must be >= 1");
  std::string checkpoint = o.checkpoint;
  if (checkpoint.empty()) checkpoint = read_index(o.index).manifest.value("checkpoint", "");
  c10::Device device(torch::kCPU);
  auto m = load_model(checkpoint, o.overrides, device, "search");
  ImageIndex index = [&] {
    try {
      return ImageIndex::open(o.index, checkpoint_identity(m.checkpoint), o.backend, o.ann);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("search: ") + e.what());
    }
  }();
  torch::Tensor query;
  {
    torch::NoGradGuard no_grad;
    if (!o.text.empty()) {
      query = embed_texts(m, {o.text}, device);
    } else {
      query =
          m.model->embed_images(image_tensor(m, o.image).unsqueeze(0).to(device)).to(torch::kCPU);
    }
  }
  return index.search(query, o.top_k).at(0);
}

}  // namespace xmodal::infer
