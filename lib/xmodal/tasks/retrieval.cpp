// Task retrieval: image-text embeddings from a dual encoder trained with the symmetric InfoNCE
// loss over the (global) batch, optionally with an image-text matching loss (docs/design.md
// section 3); recall at 1, 5, 10 both ways by the Karpathy-split protocol (an image is found at
// the best rank of its captions; a caption has one true image), and, where the split knows each
// image's content (the scenes), the same recalls with any image of the same content counted as
// found.
#include <fmt/format.h>

#include <filesystem>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "xmodal/data/karpathy.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/models/dual_encoder.h"
#include "xmodal/tasks/metrics.h"
#include "xmodal/tasks/retrieval.h"
#include "xmodal/tasks/task.h"

namespace xmodal::tasks {

namespace dual_outputs = models::dual_outputs;

namespace {

using nlohmann::json;

// A key per text of the batch: equal token rows, equal keys (64-bit FNV-1a of the ids).
torch::Tensor text_keys(const torch::Tensor& input_ids) {
  const auto ids = input_ids.to(torch::kCPU).contiguous();
  const int64_t b = ids.size(0), l = ids.size(1);
  const int64_t* p = ids.data_ptr<int64_t>();
  std::vector<int64_t> keys(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) {
    uint64_t h = 1469598103934665603ULL;
    for (int64_t j = 0; j < l; ++j) {
      h ^= static_cast<uint64_t>(p[i * l + j]);
      h *= 1099511628211ULL;
    }
    keys[static_cast<size_t>(i)] = static_cast<int64_t>(h);
  }
  return torch::tensor(keys, torch::kLong);
}

// retrieval: one example per (image, caption) pair, in file order; the annotation is the
// image's content (objects per category) where the split has COCO instances, for the "same
// content" recall (the scenes).
data::TaskData read_retrieval(const config::Config& c, const std::string& split,
                              data::BadInputPolicy& policy) {
  data::TaskData data;
  const std::string instances =
      (std::filesystem::path(c.data.root) / "annotations" / ("instances_" + split + ".json"))
          .string();
  std::error_code ec;
  data::CocoSet coco;
  const bool has_instances = std::filesystem::exists(instances, ec);
  if (has_instances)
    coco = data::read_coco(c.data.root, split, policy, c.data.dataset == config::Dataset::coco);
  std::vector<data::KarpathyImage> images;
  if (c.data.dataset == config::Dataset::coco) {
    if (!has_instances) coco = data::read_coco_captions(c.data.root, split, policy);
    for (auto& image : coco.images) images.push_back({image.id, image.path, image.captions});
  } else {
    const std::string file =
        c.data.dataset == config::Dataset::scenes ? "dataset_scenes.json" : c.data.split_file;
    const std::string path = (std::filesystem::path(c.data.root) / file).string();
    if (c.data.dataset == config::Dataset::scenes && !std::filesystem::exists(path, ec)) {
      throw std::runtime_error(path +
                               " is missing: this scenes set was made before retrieval captions; "
                               "rebuild it with `xmodal data scenes --out " +
                               c.data.root + " --overwrite`");
    }
    images = data::read_karpathy(c.data.root, path, split, policy);
  }
  for (const auto& category : coco.categories) data.class_names.push_back(category.name);
  for (const auto& image : images) {
    const auto content = coco.image_index.find(image.id);
    for (const auto& caption : image.captions) {
      data::Example e;
      e.image_path = image.path;
      e.texts = {caption};
      e.id = image.id;
      if (content != coco.image_index.end()) {
        auto a = std::make_shared<RetrievalAnnotation>();
        a->content = coco.images[content->second].counts;
        e.annotation = std::move(a);
      }
      data.examples.push_back(std::move(e));
    }
  }
  return data;
}

// The global batch's rows with this process's rows carrying their gradient.
torch::Tensor gathered_with_own(Collective& c, const torch::Tensor& own, int64_t& offset) {
  const auto sizes =
      c.all_gather(torch::tensor({own.size(0)}, torch::kLong)).to(torch::kCPU).contiguous();
  offset = 0;
  for (int r = 0; r < c.rank(); ++r) offset += sizes[r].item<int64_t>();
  const auto all = c.all_gather(own.detach());
  return torch::cat({all.narrow(0, 0, offset), own,
                     all.narrow(0, offset + own.size(0), all.size(0) - offset - own.size(0))});
}

constexpr int64_t kRecallAt[] = {1, 5, 10};

}  // namespace

namespace {

// R@1/5/10 both ways from the ranks of each direction, and their rsum, named PREFIX + key.
std::map<std::string, double> recalls(const torch::Tensor& i2t, const torch::Tensor& t2i,
                                      const std::string& prefix) {
  std::map<std::string, double> out;
  double rsum = 0;
  for (const int64_t k : kRecallAt) {
    const double a = recall_at(i2t, k), b = recall_at(t2i, k);
    out[fmt::format("{}i2t_r{}", prefix, k)] = a;
    out[fmt::format("{}t2i_r{}", prefix, k)] = b;
    rsum += a + b;
  }
  out[prefix + "rsum"] = rsum;
  return out;
}

}  // namespace

std::map<std::string, double> recall_metrics(const torch::Tensor& similarity,
                                             const std::vector<int64_t>& text_image,
                                             const std::string& prefix,
                                             const torch::Tensor& i2t_scores) {
  const int64_t m = similarity.size(0), n = similarity.size(1);
  TORCH_CHECK(static_cast<int64_t>(text_image.size()) == m, "recall_metrics: one image per text");
  const auto truth_t2i = torch::arange(n, torch::kLong).unsqueeze(0) ==
                         torch::tensor(text_image, torch::kLong).unsqueeze(1);  // [M, N]
  return recalls(retrieval_ranks(i2t_scores.defined() ? i2t_scores : similarity.t(), truth_t2i.t()),
                 retrieval_ranks(similarity, truth_t2i), prefix);
}

std::map<std::string, double> content_recall_metrics(const torch::Tensor& similarity,
                                                     const std::vector<int64_t>& text_image,
                                                     const std::vector<int64_t>& image_content) {
  const int64_t m = similarity.size(0), n = similarity.size(1);
  TORCH_CHECK(static_cast<int64_t>(image_content.size()) == n,
              "content_recall_metrics: one content per image");
  std::vector<int64_t> text_content(static_cast<size_t>(m));
  for (int64_t t = 0; t < m; ++t) text_content[t] = image_content.at(text_image.at(t));
  const auto truth = torch::tensor(text_content, torch::kLong).unsqueeze(1) ==
                     torch::tensor(image_content, torch::kLong).unsqueeze(0);  // [M, N]
  return recalls(retrieval_ranks(similarity.t(), truth.t()), retrieval_ranks(similarity, truth),
                 "content_");
}

std::string recall_table(const std::map<std::string, double>& m, const std::string& prefix,
                         const std::string& title) {
  const auto get = [&](const std::string& key) {
    const auto it = m.find(prefix + key);
    return it == m.end() ? std::nan("") : it->second;
  };
  std::string t =
      fmt::format("| {:<32} | {:>6} | {:>6} | {:>6} |\n|{:-<34}|{:->8}|{:->8}|{:->8}|\n", title,
                  "R@1", "R@5", "R@10", "", "", "", "");
  t += fmt::format("| {:<32} | {:>6.2f} | {:>6.2f} | {:>6.2f} |\n", "image -> text", get("i2t_r1"),
                   get("i2t_r5"), get("i2t_r10"));
  t += fmt::format("| {:<32} | {:>6.2f} | {:>6.2f} | {:>6.2f} |\n", "text -> image", get("t2i_r1"),
                   get("t2i_r5"), get("t2i_r10"));
  t += fmt::format("rsum {:.2f}\n", get("rsum"));
  return t;
}

namespace {

class RetrievalEvaluation : public Evaluation {
 public:
  explicit RetrievalEvaluation(const data::TaskData& data) : data_(data) {}

  void add(const models::ModelOutput& out, const data::Batch& batch) override {
    indices_.insert(indices_.end(), batch.indices.begin(), batch.indices.end());
    similarity_ = torch::Tensor();
    const auto index = batch.image_index.to(torch::kCPU).contiguous();
    const auto images = out.at(dual_outputs::image_embeds).to(torch::kCPU, torch::kFloat32);
    texts_.push_back(out.at(dual_outputs::text_embeds).to(torch::kCPU, torch::kFloat32));
    const auto text_tokens = out.get(dual_outputs::text_tokens);
    const auto image_tokens = out.get(dual_outputs::image_tokens);
    if (text_tokens.defined()) {  // an ITM model: kept for rerank()
      text_tokens_.push_back(text_tokens.to(torch::kCPU));
      text_padding_.push_back(batch.attention_mask.eq(0));
    }
    for (int64_t r = 0; r < batch.size(); ++r) {
      const int64_t id = batch.ids[r];
      auto [it, fresh] = image_row_.emplace(id, static_cast<int64_t>(image_ids_.size()));
      if (fresh) {
        image_ids_.push_back(id);
        images_.push_back(images[index[r].item<int64_t>()]);
        if (image_tokens.defined()) {
          image_tokens_.push_back(image_tokens[index[r].item<int64_t>()].to(torch::kCPU));
        }
        const auto* a = dynamic_cast<const RetrievalAnnotation*>(
            data_.examples.at(batch.indices[r]).annotation.get());
        const std::vector<int> none;
        const auto& counts = a ? a->content : none;
        image_content_.push_back(content_key(counts));
        has_content_ = has_content_ && !counts.empty();
      }
      text_image_.push_back(it->second);
    }
  }

  std::map<std::string, double> metrics() override {
    if (rows() == 0) return {};
    const auto sim = similarity();
    auto m = recall_metrics(sim, text_image_);
    if (has_content_) {
      for (const auto& [k, v] : content_recall_metrics(sim, text_image_, image_content_)) m[k] = v;
    }
    for (const auto& [k, v] : reranked_) m[k] = v;
    shared_texts_ = 0;
    std::unordered_map<std::string, std::set<int64_t>> images_of;
    for (size_t r = 0; r < indices_.size(); ++r) {
      images_of[data_.examples[indices_[r]].texts.at(0)].insert(text_image_[r]);
    }
    for (size_t r = 0; r < indices_.size(); ++r) {
      if (images_of[data_.examples[indices_[r]].texts.at(0)].size() > 1) ++shared_texts_;
    }
    return m;
  }

  void write(const std::string& out_dir, json& summary) const override {
    summary["images"] = image_ids_.size();
    summary["texts"] = indices_.size();
    summary["texts_shared_by_images"] = shared_texts_;
    if (rows() == 0) return;
    const auto sim = similarity();
    const int64_t k = std::min<int64_t>(5, sim.size(1));
    const auto top = std::get<1>(sim.topk(k, 1)).contiguous();
    std::string lines;
    for (size_t r = 0; r < indices_.size(); ++r) {
      const auto& e = data_.examples[indices_[r]];
      json ids = json::array();
      for (int64_t j = 0; j < k; ++j) ids.push_back(image_ids_[top[r][j].item<int64_t>()]);
      lines += json{{"text", e.texts.at(0)}, {"image_id", e.id}, {"top_images", ids}}.dump() + "\n";
    }
    io::write_file_atomic((std::filesystem::path(out_dir) / "predictions.jsonl").string(), lines);
  }

  // BLIP's protocol: each query's top k candidates by ITC get ITM logit (match) + ITC cosine,
  // the others fall behind them all.
  void rerank(models::ModelImpl& model, const c10::Device& device, int k) override {
    if (rows() == 0 || k <= 0) return;
    if (image_tokens_.empty() || models::dual_encoder(model) == nullptr ||
        !models::dual_encoder(model)->itm_head) {
      throw std::invalid_argument(
          "eval.rerank_k: this retrieval model has no ITM head (train.itm 0)");
    }
    torch::NoGradGuard no_grad;
    const auto sim = similarity();  // [M texts, N images]
    const auto image_tokens = torch::stack(image_tokens_);
    const auto text_tokens = torch::cat(text_tokens_);
    const auto padding = torch::cat(text_padding_);
    // scores [Q, C] of each query's top k candidates; `query_is_text` picks the direction
    const auto reranked = [&](const torch::Tensor& scores, bool query_is_text) {
      const int64_t kk = std::min<int64_t>(k, scores.size(1));
      const auto [top_sim, top] = scores.topk(kk, 1);
      const auto queries =
          torch::arange(scores.size(0), torch::kLong).unsqueeze(1).expand_as(top).reshape({-1});
      const auto candidates = top.reshape({-1});
      const auto texts = query_is_text ? queries : candidates;
      const auto images = query_is_text ? candidates : queries;
      std::vector<torch::Tensor> itm;
      constexpr int64_t kPairs = 256;
      for (int64_t start = 0; start < texts.size(0); start += kPairs) {
        const int64_t len = std::min(kPairs, texts.size(0) - start);
        const auto t = texts.narrow(0, start, len), i = images.narrow(0, start, len);
        itm.push_back(models::itm_logits(model, image_tokens.index_select(0, i).to(device),
                                         text_tokens.index_select(0, t).to(device),
                                         padding.index_select(0, t).to(device))
                          .select(1, 1)
                          .to(torch::kCPU, torch::kFloat32));
      }
      auto out = torch::full_like(scores, -100.0f);
      out.scatter_(1, top, torch::cat(itm).view({scores.size(0), kk}) + top_sim);
      return out;
    };
    const auto t2i = reranked(sim, true);
    const auto i2t = reranked(sim.t().contiguous(), false);
    reranked_ = recall_metrics(t2i, text_image_, "itm_", i2t);
    rerank_k_ = k;
  }

  std::string table(const std::map<std::string, double>& m) const override {
    if (rows() == 0) return "nothing to retrieve\n";
    std::string t = recall_table(m, "", "Recall (%)");
    if (m.count("itm_rsum")) {
      t += "\n" +
           recall_table(m, "itm_", fmt::format("Recall, ITM re-ranked top {} (%)", rerank_k_));
    }
    if (m.count("content_rsum")) {
      t += "\n" + recall_table(m, "content_", "Recall, same content (%)");
    }
    t +=
        fmt::format("({} images, {} texts; {} texts describe more than one image; loss {:.4f})\n",
                    image_ids_.size(), rows(), shared_texts_, m.count("loss") ? m.at("loss") : 0.0);
    return t;
  }

 private:
  // [texts, images], computed once after the last add() (metrics, rerank and write use it).
  const torch::Tensor& similarity() const {
    if (!similarity_.defined()) {
      similarity_ = torch::matmul(torch::cat(texts_), torch::stack(images_).t());
    }
    return similarity_;
  }

  // Objects per category, as one key (equal counts, equal key).
  int64_t content_key(const std::vector<int>& counts) {
    const auto [it, fresh] = contents_.emplace(counts, static_cast<int64_t>(contents_.size()));
    return it->second;
  }

  const data::TaskData& data_;
  std::vector<torch::Tensor> texts_, images_;
  std::vector<int64_t> image_ids_, text_image_, image_content_;
  std::unordered_map<int64_t, int64_t> image_row_;
  std::map<std::vector<int>, int64_t> contents_;
  std::vector<torch::Tensor> image_tokens_, text_tokens_, text_padding_;  // ITM models only
  std::map<std::string, double> reranked_;
  mutable torch::Tensor similarity_;
  int rerank_k_ = 0;
  bool has_content_ = true;
  int64_t shared_texts_ = 0;
};

class RetrievalTask : public Task {
 public:
  models::HeadChoice head(const config::Config& c,
                          const models::DataSizes& /*sizes*/) const override {
    models::HeadChoice h;
    const bool itm = c.train.itm > 0;
    h.make = [embed_dim = c.model.retrieval.embed_dim, itm](const auto& widths) {
      return std::make_shared<models::DualEncoderImpl>(widths, embed_dim, itm);
    };
    h.mode = config::FusionMode::concat;  // both encoders
    h.build_fusion = itm;                 // the ITM head reads the concat fusion
    h.needs_classes = false;
    return h;
  }

  config::Task id() const override { return config::Task::retrieval; }

  data::TaskData read_split(const config::Config& c, const std::string& split,
                            const std::vector<std::string>* /*classes*/,
                            data::BadInputPolicy& policy) const override {
    return read_retrieval(c, split, policy);  // no collate: the pairs are the targets
  }

  models::LossSums loss(const models::ModelOutput& out, const data::Batch& batch,
                        const c10::Device& device, const models::LossWeights& weights,
                        Collective* collective) const override {
    const auto index = batch.image_index.to(device);
    torch::Tensor images =
        out.at(dual_outputs::image_embeds).index_select(0, index);  // [B, E] per pair
    torch::Tensor texts = out.at(dual_outputs::text_embeds);
    torch::Tensor image_keys = torch::tensor(batch.ids, torch::kLong).to(device);
    torch::Tensor keys = text_keys(batch.input_ids).to(device);
    models::LossSums sums;
    if (collective && collective->world_size() > 1) {
      // The loss of the global batch on every process, with only this process's rows carrying
      // gradients; its value is this process's rows' share, so the sums over the processes
      // give the global loss and the global gradient.
      int64_t offset = 0;
      images = gathered_with_own(*collective, images, offset);
      texts = gathered_with_own(*collective, texts, offset);
      image_keys = collective->all_gather(image_keys);
      keys = collective->all_gather(keys);
      const auto rows = models::contrastive_loss_rows(
          images, texts, out.at(dual_outputs::logit_scale), image_keys, keys);
      const auto full = rows.sum();
      const auto own = rows.narrow(0, offset, batch.size()).sum();
      sums.total = full + (own - full).detach();
    } else {
      sums.total = models::contrastive_loss_rows(images, texts, out.at(dual_outputs::logit_scale),
                                                 image_keys, keys)
                       .sum();
    }
    if (out.get(dual_outputs::itm_logits).defined() && weights.itm > 0) {
      sums.total = sums.total +
                   models::itm_loss(out.at(dual_outputs::itm_logits), batch.size(), batch.size()) *
                       weights.itm;
    }
    return sums;
  }

  torch::Tensor distill_loss(const models::ModelOutput& student, const models::ModelOutput& teacher,
                             double temperature) const override {
    const auto logits = [](const models::ModelOutput& o) {  // [texts, distinct images]
      return torch::matmul(o.at(dual_outputs::text_embeds), o.at(dual_outputs::image_embeds).t()) *
             o.at(dual_outputs::logit_scale);
    };
    return models::distill_similarity(logits(student), logits(teacher), temperature);
  }

  std::unique_ptr<Evaluation> evaluation(const data::TaskData& data,
                                         const std::vector<std::string>& /*classes*/,
                                         config::VqaProtocol /*protocol*/) const override {
    return std::make_unique<RetrievalEvaluation>(data);
  }

  Answer answer(const models::ModelOutput& out, int64_t row,
                const std::vector<std::string>& /*classes*/, int /*top_k*/) const override {
    Answer a;
    a.similarity = similarity(out)[row].item<double>();
    return a;
  }

  // The cosine similarity of each pair [B, 1] (the image of row b: row b, or the one image).
  torch::Tensor scores(const models::ModelOutput& out) const override {
    return similarity(out).unsqueeze(1);
  }

 private:
  static torch::Tensor similarity(const models::ModelOutput& out) {
    const auto& image = out.at(dual_outputs::image_embeds);
    const auto& text = out.at(dual_outputs::text_embeds);
    const auto images =
        image.size(0) == text.size(0) ? image : image.narrow(0, 0, 1).expand_as(text);
    return (images * text).sum(1);
  }
};

}  // namespace

std::unique_ptr<Task> make_retrieval_task() { return std::make_unique<RetrievalTask>(); }

}  // namespace xmodal::tasks
