// Task caption (tasks/caption.h): reading the captions of a split, the decoder over the model's
// encoders and fusion, beam search, the loss, the evaluation with COCO's caption metrics and the
// answer of `xmodal predict`.
#include "xmodal/tasks/caption.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "xmodal/data/karpathy.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/caption_metrics.h"
#include "xmodal/tasks/ptb_tokenizer.h"
#include "xmodal/tasks/task.h"

namespace xmodal::tasks {
namespace {

using nlohmann::json;
namespace out_names = caption_outputs;

// One example per image: its captions are the texts the loader draws from (one per epoch in
// training) and the references of its evaluation.
data::TaskData read_caption_split(const config::Config& c, const std::string& split,
                                  data::BadInputPolicy& policy) {
  std::vector<data::KarpathyImage> images;
  if (c.data.dataset == config::Dataset::coco) {
    for (auto& image : data::read_coco_captions(c.data.root, split, policy).images) {
      images.push_back({image.id, image.path, image.captions});
    }
  } else if (c.data.dataset == config::Dataset::scenes ||
             c.data.dataset == config::Dataset::karpathy) {
    const std::string file =
        c.data.dataset == config::Dataset::scenes ? "dataset_scenes.json" : c.data.split_file;
    const std::string path = (std::filesystem::path(c.data.root) / file).string();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      throw std::runtime_error(path + " is missing: task caption reads the captions from it" +
                               (c.data.dataset == config::Dataset::scenes
                                    ? " (rebuild the scenes with `xmodal data scenes --out " +
                                          c.data.root + " --overwrite`)"
                                    : std::string()));
    }
    images = data::read_karpathy(c.data.root, path, split, policy);
  } else {
    throw std::invalid_argument("task caption needs data.dataset coco, scenes or karpathy");
  }
  data::TaskData data;
  for (auto& image : images) {
    data::Example e;
    e.image_path = image.path;
    e.id = image.id;
    auto a = std::make_shared<CaptionAnnotation>();
    a->references = image.captions;
    e.texts = std::move(image.captions);
    e.annotation = std::move(a);
    data.examples.push_back(std::move(e));
  }
  return data;
}

// transform (dense + GELU + LayerNorm) then decoder to the vocabulary, as BERT's LM head.
struct LmHeadImpl : torch::nn::Cloneable<LmHeadImpl> {
  LmHeadImpl(int64_t hidden, int64_t vocab) : hidden(hidden), vocab(vocab) { reset(); }
  void reset() override {
    transform = register_module("transform", models::Linear(hidden, hidden));
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden})));
    decoder = register_module("decoder", models::Linear(hidden, vocab));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return decoder(norm(models::exact_gelu(transform(x))));
  }
  int64_t hidden, vocab;
  models::Linear transform = nullptr, decoder = nullptr;
  torch::nn::LayerNorm norm = nullptr;
};
TORCH_MODULE(LmHead);

class CaptionModelHead : public models::TaskHead {
 public:
  CaptionModelHead(const models::HeadSizes& sizes, int64_t vocab,
                   config::CaptionGenerationConfig generation)
      : hidden_(sizes.fusion), vocab_(vocab), generation_(generation) {}

  void attach(models::ModelImpl& model) override {
    model.encode_text = false;  // the decoder runs the text encoder left to right itself
    lm_ = model.add_module("head", LmHead(hidden_, vocab_));
  }

  void forward(models::ModelImpl& model, const models::Encoded& in,
               models::ModelOutput& out) override {
    const auto image = in.sample_image_tokens();
    if (model.is_training()) {
      out.outputs[out_names::logits] = caption_logits(model, image, in.input_ids);
      return;
    }
    // [CLS] starts every encoded text and [SEP] ends its real tokens (text::Tokenizer::encode)
    const auto ids = in.input_ids.to(torch::kCPU);
    const int64_t length =
        in.attention_mask.defined() ? in.attention_mask[0].sum().item<int64_t>() : ids.size(1);
    // teacher-forced logits (the validation loss) where the input is a caption, not the empty
    // prompt of predict and serve
    if (length > 2) out.outputs[out_names::logits] = caption_logits(model, image, in.input_ids);
    const Generated g = generate_captions(model, image, ids[0][0].item<int64_t>(),
                                          ids[0][length - 1].item<int64_t>(), generation_);
    out.outputs[out_names::ids] = g.ids;
    out.outputs[out_names::lengths] = g.lengths;
    out.outputs[out_names::scores] = g.scores;
    out.outputs[out_names::log_probs] = g.log_probs;
  }

  LmHead& lm() { return lm_; }

 private:
  int64_t hidden_, vocab_;
  config::CaptionGenerationConfig generation_;
  LmHead lm_ = nullptr;
};

CaptionModelHead& caption_head(models::ModelImpl& model) {
  auto* head = dynamic_cast<CaptionModelHead*>(&model.head());
  if (head == nullptr) throw std::logic_error("this model has no caption head");
  return *head;
}

// [fusion CLS ; image tokens] at the fusion's width, the part every caption token attends to.
torch::Tensor decoder_prefix(models::ModelImpl& model, const torch::Tensor& image_tokens) {
  auto& f = *model.fusion;
  const int64_t batch = image_tokens.size(0);
  return torch::cat({f.cls_token.expand({batch, 1, f.options.hidden()}),
                     f.image_proj(image_tokens) + f.type_embedding->weight[1]},
                    1);
}

// Caption tokens [B, n] at positions first.. through the text encoder (left to right) and
// into the fusion's width.
torch::Tensor decoder_tokens(models::ModelImpl& model, const torch::Tensor& ids, int64_t first,
                             std::vector<models::KvCache>& text_caches) {
  auto& f = *model.fusion;
  return f.text_proj(model.text->forward_causal(ids, first, text_caches)) +
         f.type_embedding->weight[0];
}

torch::Tensor run_layers(models::ModelImpl& model, torch::Tensor x,
                         std::vector<models::KvCache>& caches, const torch::Tensor& allowed) {
  auto& layers = *model.fusion->layers;
  caches.resize(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    x = layers[i]->as<models::EncoderLayer>()->forward_cached(x, caches[i], allowed);
  }
  return x;
}

// Which tokens no_repeat_ngram bans after `history`: those that would complete an n-gram the
// history already holds.
void ban_repeats(const std::vector<int64_t>& history, int n, float* logp) {
  if (n <= 0 || static_cast<int64_t>(history.size()) < n - 1) return;
  const size_t key = history.size() - static_cast<size_t>(n - 1);
  for (size_t i = 0; i + static_cast<size_t>(n) <= history.size(); ++i) {
    if (std::equal(history.begin() + static_cast<std::ptrdiff_t>(i),
                   history.begin() + static_cast<std::ptrdiff_t>(i + n - 1),
                   history.begin() + static_cast<std::ptrdiff_t>(key))) {
      logp[history[i + n - 1]] = -std::numeric_limits<float>::infinity();
    }
  }
}

struct Hypothesis {
  std::vector<int64_t> ids;
  double score = 0;     // normalised by length
  double log_prob = 0;  // of the whole caption, [SEP] included
};

}  // namespace

torch::Tensor caption_logits(models::ModelImpl& model, const torch::Tensor& image_tokens,
                             const torch::Tensor& input_ids) {
  const auto prefix = decoder_prefix(model, image_tokens);
  std::vector<models::KvCache> text_caches, caches;
  const auto tokens = decoder_tokens(model, input_ids, 0, text_caches);
  const int64_t s = prefix.size(1), l = tokens.size(1);
  auto x = run_layers(model, torch::cat({prefix, tokens}, 1), caches, models::seq2seq_mask(s, l));
  return caption_head(model).lm()(model.fusion->norm(x.narrow(1, s, l)));
}

Generated generate_captions(models::ModelImpl& model, const torch::Tensor& image_tokens,
                            int64_t cls_id, int64_t sep_id,
                            const config::CaptionGenerationConfig& o) {
  const int64_t batch = image_tokens.size(0), k = o.beam_size;
  if (k < 1 || o.max_length < 1 || o.min_length > o.max_length ||
      o.max_length + 1 > model.text->options.max_position()) {
    throw std::invalid_argument(
        fmt::format("caption generation: beam_size {} (>= 1), min_length {} <= max_length {}, and "
                    "max_length + 1 <= the text encoder's {} positions",
                    k, o.min_length, o.max_length, model.text->options.max_position()));
  }
  const auto device = image_tokens.device();
  LmHead& lm = caption_head(model).lm();
  // The prefix once per image, then its keys and values copied to each beam.
  std::vector<models::KvCache> caches, text_caches;
  run_layers(model, decoder_prefix(model, image_tokens), caches, {});
  const auto rows = torch::arange(batch, torch::kLong).repeat_interleave(k).to(device);
  for (auto& c : caches) c.select(rows);

  const float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<std::vector<int64_t>> history(static_cast<size_t>(batch * k));
  std::vector<double> beam_score(static_cast<size_t>(batch * k), 0.0);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 1; j < k; ++j) beam_score[b * k + j] = neg_inf;  // one live beam at first
  }
  std::vector<std::vector<Hypothesis>> finished(static_cast<size_t>(batch));
  std::vector<bool> done(static_cast<size_t>(batch), false);
  auto last = torch::full({batch * k, 1}, cls_id, torch::kLong);
  for (int64_t t = 0; t <= o.max_length; ++t) {
    auto h = decoder_tokens(model, last.to(device), t, text_caches);
    h = run_layers(model, h, caches, {});
    auto logp = torch::log_softmax(lm(model.fusion->norm(h)).squeeze(1).to(torch::kFloat), -1)
                    .to(torch::kCPU)
                    .contiguous();  // [B*K, V]
    const int64_t vocab = logp.size(1);
    float* lp = logp.data_ptr<float>();
    for (int64_t r = 0; r < batch * k; ++r) {
      float* row = lp + r * vocab;
      row[cls_id] = neg_inf;
      if (t < o.min_length) row[sep_id] = neg_inf;
      if (t == o.max_length) {  // the last step can only end the caption
        const float keep = row[sep_id];
        std::fill(row, row + vocab, neg_inf);
        row[sep_id] = std::isfinite(keep) ? keep : 0.0f;
      }
      ban_repeats(history[r], o.no_repeat_ngram, row);
      for (int64_t v = 0; v < vocab; ++v) row[v] += static_cast<float>(beam_score[r]);
    }
    const auto [top_scores, top_index] = logp.view({batch, k * vocab}).topk(2 * k, 1);
    const auto top_score = top_scores.accessor<float, 2>();
    const auto top_at = top_index.accessor<int64_t, 2>();
    std::vector<int64_t> next_rows, next_tokens;
    std::vector<double> next_scores;
    for (int64_t b = 0; b < batch; ++b) {
      int64_t live = 0;
      for (int64_t c = 0; c < 2 * k && live < k; ++c) {
        const double score = top_score[b][c];
        const int64_t index = top_at[b][c];
        const int64_t from = b * k + index / vocab, token = index % vocab;
        if (done[b] || !std::isfinite(score)) break;
        if (token == sep_id) {
          if (static_cast<int64_t>(finished[b].size()) < k) {
            const double length = static_cast<double>(history[from].size() + 1);
            finished[b].push_back(
                {history[from], score / std::pow(length, o.length_penalty), score});
          }
          continue;
        }
        next_rows.push_back(from);
        next_tokens.push_back(token);
        next_scores.push_back(score);
        ++live;
      }
      if (static_cast<int64_t>(finished[b].size()) >= k) done[b] = true;
      // rows of a finished image (or with fewer live beams) repeat its first row, scored -inf
      while (live < k) {
        next_rows.push_back(b * k);
        next_tokens.push_back(sep_id);
        next_scores.push_back(neg_inf);
        ++live;
      }
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    std::vector<std::vector<int64_t>> next_history;
    for (size_t r = 0; r < next_rows.size(); ++r) {
      next_history.push_back(history[next_rows[r]]);
      next_history.back().push_back(next_tokens[r]);
    }
    history = std::move(next_history);
    beam_score = std::move(next_scores);
    // the caches follow the surviving hypotheses (greedy, and beams that kept their rows, need
    // no copy)
    bool same_rows = true;
    for (size_t r = 0; r < next_rows.size(); ++r) same_rows &= next_rows[r] == int64_t(r);
    if (!same_rows) {
      const auto index = torch::tensor(next_rows, torch::kLong).to(device);
      for (auto& c : caches) c.select(index);
      for (auto& c : text_caches) c.select(index);
    }
    last = torch::tensor(next_tokens, torch::kLong).view({batch * k, 1});
  }

  int64_t longest = 1;
  for (auto& f : finished) {
    std::stable_sort(f.begin(), f.end(),
                     [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
    for (const auto& h : f)
      longest = std::max<int64_t>(longest, static_cast<int64_t>(h.ids.size()));
  }
  Generated g{torch::full({batch, k, longest}, -1, torch::kLong),
              torch::zeros({batch, k}, torch::kLong),
              torch::full({batch, k}, static_cast<double>(neg_inf), torch::kFloat),
              torch::full({batch, k}, static_cast<double>(neg_inf), torch::kFloat)};
  auto ids = g.ids.accessor<int64_t, 3>();
  for (int64_t b = 0; b < batch; ++b) {
    for (size_t j = 0; j < finished[b].size(); ++j) {
      const auto& h = finished[b][j];
      for (size_t i = 0; i < h.ids.size(); ++i) ids[b][static_cast<int64_t>(j)][i] = h.ids[i];
      g.lengths[b][static_cast<int64_t>(j)] = static_cast<int64_t>(h.ids.size());
      g.scores[b][static_cast<int64_t>(j)] = h.score;
      g.log_probs[b][static_cast<int64_t>(j)] = h.log_prob;
    }
  }
  return g;
}

std::string caption_text(const std::vector<std::string>& vocabulary, const int64_t* ids,
                         int64_t length) {
  static const std::string kSpace = "\u2581";
  std::string text;
  bool glue_next = false;  // the last piece joins the next one ("-", "(")
  // a SentencePiece vocabulary marks word starts; its pieces without the mark continue a word
  const bool sentencepiece =
      std::any_of(vocabulary.begin(), vocabulary.end(),
                  [&](const std::string& v) { return v.rfind(kSpace, 0) == 0; });
  for (int64_t i = 0; i < length; ++i) {
    if (ids[i] < 0 || ids[i] >= static_cast<int64_t>(vocabulary.size())) continue;
    std::string piece = vocabulary[static_cast<size_t>(ids[i])];
    if (piece.size() >= 2 && piece.front() == '[' && piece.back() == ']') continue;  // [PAD] ...
    if (piece.size() >= 3 && piece.front() == '<' && piece.back() == '>') continue;  // <s> <unk>
    if (piece.rfind("##", 0) == 0) {
      text += piece.substr(2);
      continue;
    }
    bool space = !text.empty();
    if (piece.rfind(kSpace, 0) == 0) {
      piece = piece.substr(kSpace.size());
    } else if (sentencepiece && piece.find(kSpace) == std::string::npos) {
      space = false;
    }
    // punctuation as written: "t - shirt ," -> "t-shirt,", "( a )" -> "(a)", "man ' s" -> "man's"
    if (piece == "." || piece == "," || piece == ":" || piece == ";" || piece == "!" ||
        piece == "?" || piece == ")" || piece == "]" || piece == "-" || piece == "'" || glue_next) {
      space = false;
    }
    glue_next = piece == "(" || piece == "[" || piece == "-" || piece == "'";
    if (space) text += ' ';
    text += piece;
  }
  return text;
}

namespace {

class CaptionSplitEvaluation : public Evaluation {
 public:
  CaptionSplitEvaluation(const data::TaskData& data, const std::vector<std::string>& vocabulary)
      : data_(data), vocabulary_(vocabulary) {}

  void add(const models::ModelOutput& out, const data::Batch& batch) override {
    indices_.insert(indices_.end(), batch.indices.begin(), batch.indices.end());
    const auto ids = out.at(out_names::ids).select(1, 0).to(torch::kCPU).contiguous();
    const auto lengths = out.at(out_names::lengths).select(1, 0).to(torch::kCPU);
    for (int64_t i = 0; i < ids.size(0); ++i) {
      captions_.push_back(
          caption_text(vocabulary_, ids[i].data_ptr<int64_t>(), lengths[i].item<int64_t>()));
    }
  }

  std::map<std::string, double> metrics() override {
    if (!data_.has_targets || rows() == 0) return {};
    std::vector<int64_t> ids;
    std::vector<std::string> candidates;
    std::vector<std::vector<std::string>> references;
    for (size_t i = 0; i < captions_.size(); ++i) {
      const auto& e = data_.examples[static_cast<size_t>(indices_[i])];
      ids.push_back(e.id);
      candidates.push_back(coco_caption_tokenize(captions_[i]));
      std::vector<std::string> refs;
      for (const auto& r : data::annotation_of<CaptionAnnotation>(e).references) {
        refs.push_back(coco_caption_tokenize(r));
      }
      references.push_back(std::move(refs));
    }
    const auto s = score_captions(ids, candidates, references).overall;
    return {{"bleu_1", s.bleu[0]}, {"bleu_2", s.bleu[1]},  {"bleu_3", s.bleu[2]},
            {"bleu_4", s.bleu[3]}, {"rouge_l", s.rouge_l}, {"cider_d", s.cider_d}};
  }

  void write(const std::string& out_dir, json& summary) const override {
    // COCO's results format, which `xmodal score --task caption` and the official code read
    json results = json::array();
    for (size_t i = 0; i < captions_.size(); ++i) {
      results.push_back({{"image_id", data_.examples[static_cast<size_t>(indices_[i])].id},
                         {"caption", captions_[i]}});
    }
    io::write_file_atomic((std::filesystem::path(out_dir) / "results.json").string(),
                          results.dump(1) + "\n");
    summary["captions"] = static_cast<int64_t>(captions_.size());
  }

  std::string table(const std::map<std::string, double>& m) const override {
    if (!m.count("cider_d")) return fmt::format("{} images captioned (no references)\n", rows());
    return fmt::format(
        "{} images: BLEU-1 {:.1f}  BLEU-2 {:.1f}  BLEU-3 {:.1f}  BLEU-4 {:.1f}  ROUGE-L {:.1f}  "
        "CIDEr-D {:.1f}  (x100; METEOR and SPICE not computed)\n",
        rows(), 100 * m.at("bleu_1"), 100 * m.at("bleu_2"), 100 * m.at("bleu_3"),
        100 * m.at("bleu_4"), 100 * m.at("rouge_l"), 100 * m.at("cider_d"));
  }

 private:
  const data::TaskData& data_;
  std::vector<std::string> vocabulary_;
  std::vector<std::string> captions_;  // the best hypothesis of each row
};

class CaptionTask : public Task {
 public:
  config::Task id() const override { return config::Task::caption; }
  bool reads_text() const override { return false; }
  bool classes_are_vocabulary() const override { return true; }

  data::TaskData read_split(const config::Config& c, const std::string& split,
                            const std::vector<std::string>* /*classes*/,
                            data::BadInputPolicy& policy) const override {
    return read_caption_split(c, split, policy);  // no collate: the captions are the targets
  }

  models::HeadChoice head(const config::Config& c, const models::DataSizes& sizes) const override {
    models::HeadChoice h;
    h.make = [vocab = sizes.vocab_size, g = c.eval.caption](const auto& widths) {
      return std::make_shared<CaptionModelHead>(widths, vocab, g);
    };
    h.mode = config::FusionMode::concat;
    h.needs_classes = false;
    return h;
  }

  models::LossSums loss(const models::ModelOutput& out, const data::Batch& batch,
                        const c10::Device& device, const models::LossWeights& weights,
                        Collective* /*collective*/) const override {
    // row t of the logits predicts token t + 1; a sample's loss is its tokens' mean
    const auto logits = out.get(out_names::logits);
    models::LossSums sums;
    if (!logits.defined()) {  // inputs without captions (the empty prompt): nothing to score
      sums.total = torch::zeros({}, torch::TensorOptions().device(device));
      return sums;
    }
    const int64_t l = logits.size(1);
    const auto targets = batch.input_ids.to(device).narrow(1, 1, l - 1);
    const auto mask = batch.attention_mask.to(device).narrow(1, 1, l - 1).to(torch::kFloat);
    const auto per_token =
        torch::nn::functional::cross_entropy(
            logits.narrow(1, 0, l - 1).reshape({-1, logits.size(2)}).to(torch::kFloat),
            targets.reshape({-1}),
            torch::nn::functional::CrossEntropyFuncOptions()
                .reduction(torch::kNone)
                .label_smoothing(weights.label_smoothing))
            .view({targets.size(0), l - 1});
    sums.total = ((per_token * mask).sum(1) / mask.sum(1).clamp_min(1)).sum();
    return sums;
  }

  torch::Tensor distill_loss(const models::ModelOutput& /*student*/,
                             const models::ModelOutput& /*teacher*/,
                             double /*temperature*/) const override {
    throw std::invalid_argument("train.distill: task caption has no distillation");
  }

  std::unique_ptr<Evaluation> evaluation(const data::TaskData& data,
                                         const std::vector<std::string>& classes,
                                         config::VqaProtocol /*protocol*/) const override {
    return std::make_unique<CaptionSplitEvaluation>(data, classes);
  }

  Answer answer(const models::ModelOutput& out, int64_t row,
                const std::vector<std::string>& classes, int top_k) const override {
    Answer a;
    a.kind = Answer::Kind::captions;
    const auto ids = out.at(out_names::ids)[row].to(torch::kCPU).contiguous();
    const auto lengths = out.at(out_names::lengths)[row].to(torch::kCPU);
    const auto scores = out.at(out_names::scores)[row].to(torch::kCPU);
    const auto log_probs = out.at(out_names::log_probs)[row].to(torch::kCPU);
    for (int64_t j = 0; j < ids.size(0) && j < std::max(1, top_k); ++j) {
      if (!std::isfinite(scores[j].item<double>())) break;
      ClassScore c;
      c.name = caption_text(classes, ids[j].data_ptr<int64_t>(), lengths[j].item<int64_t>());
      c.probability = std::exp(log_probs[j].item<double>());
      c.score = scores[j].item<double>();
      a.classes.push_back(std::move(c));
    }
    return a;
  }

  // The best hypothesis's score [B, 1] (predict checks it for non-finite values).
  torch::Tensor scores(const models::ModelOutput& out) const override {
    return out.at(out_names::scores).narrow(1, 0, 1);
  }
};

}  // namespace

std::unique_ptr<Task> make_caption_task() { return std::make_unique<CaptionTask>(); }

}  // namespace xmodal::tasks
