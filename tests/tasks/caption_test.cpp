// Task caption: the decoder's cache against the teacher-forced pass, greedy against beam 1,
// the beam's constraints, and the text of generated ids.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <set>

#include "../support/tiny_model.h"
#include "xmodal/tasks/caption.h"
#include "xmodal/tasks/task.h"

namespace xmodal::tasks {
namespace {

constexpr int64_t kVocab = 12, kCls = 2, kSep = 3;

models::Model caption_model(int64_t text_layers) {
  auto c = testing::tiny_model_config();
  c.task = config::Task::caption;
  c.model.text.layers = static_cast<int>(text_layers);
  c.model.fusion.layers = 2;
  c.eval.caption.max_length = 6;  // + [CLS] within the tiny model's 8 positions
  torch::manual_seed(3);
  auto model = build_model(c, {kVocab, kVocab, 0});
  model->eval();
  return model;
}

torch::Tensor image_tokens(models::ModelImpl& m, int64_t batch) {
  torch::manual_seed(4);
  return m.vision(torch::randn({batch, 3, 16, 16}));
}

// Greedy decoding without any cache: the whole teacher-forced pass again for every token.
std::vector<std::vector<int64_t>> greedy_without_cache(models::ModelImpl& m,
                                                       const torch::Tensor& image, int max_len) {
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(image.size(0)));
  for (int64_t b = 0; b < image.size(0); ++b) {
    std::vector<int64_t> ids = {kCls};
    for (int t = 0; t <= max_len; ++t) {
      auto logits =
          caption_logits(m, image.narrow(0, b, 1), torch::tensor(ids, torch::kLong).view({1, -1}));
      auto last = logits[0][static_cast<int64_t>(ids.size()) - 1].clone();
      last[kCls] = -std::numeric_limits<float>::infinity();
      if (t == max_len) break;
      const int64_t next = last.argmax().item<int64_t>();
      if (next == kSep) break;
      ids.push_back(next);
    }
    out[static_cast<size_t>(b)] = std::vector<int64_t>(ids.begin() + 1, ids.end());
  }
  return out;
}

TEST(Caption, CausalLogitsAndCachedGreedyEqualAPassWithoutCaches) {
  for (int64_t text_layers : {0, 1}) {
    SCOPED_TRACE(text_layers);
    auto model = caption_model(text_layers);
    torch::NoGradGuard no_grad;
    const auto image = image_tokens(*model, 2);
    const auto ids =
        torch::tensor(std::vector<int64_t>{kCls, 5, 7, 9, 4, kCls, 6, 6, 8, 10}).view({2, 5});
    const auto full = caption_logits(*model, image, ids);  // [2, 5, V]
    // no token sees the ones after it: each prefix of the caption gives the same logits
    for (int64_t t = 0; t < ids.size(1); ++t) {
      const auto logits = caption_logits(*model, image, ids.narrow(1, 0, t + 1)).select(1, t);
      EXPECT_LT((logits - full.select(1, t)).abs().max().item<double>(), 1e-5) << t;
    }
    // and the generation (which only ever runs the cached steps) agrees with a pass without
    // caches
    config::CaptionGenerationConfig g;
    g.beam_size = 1;
    g.max_length = 6;
    g.min_length = 0;
    g.no_repeat_ngram = 0;
    const auto generated = generate_captions(*model, image, kCls, kSep, g);
    const auto reference = greedy_without_cache(*model, image, g.max_length);
    for (int64_t b = 0; b < 2; ++b) {
      const int64_t n = generated.lengths[b][0].item<int64_t>();
      std::vector<int64_t> got;
      for (int64_t i = 0; i < n; ++i) got.push_back(generated.ids[b][0][i].item<int64_t>());
      EXPECT_EQ(got, reference[static_cast<size_t>(b)]) << "image " << b;
    }
  }
}

Generated generate(models::ModelImpl& m, const torch::Tensor& image, int beam, int max_len,
                   int min_len, int no_repeat) {
  config::CaptionGenerationConfig g;
  g.beam_size = beam;
  g.max_length = max_len;
  g.min_length = min_len;
  g.no_repeat_ngram = no_repeat;
  return generate_captions(m, image, kCls, kSep, g);
}

TEST(Caption, BeamSearchKeepsItsConstraints) {
  auto model = caption_model(0);
  torch::NoGradGuard no_grad;
  const auto image = image_tokens(*model, 3);
  const auto g = generate(*model, image, 4, 5, 3, 2);
  ASSERT_EQ(g.ids.size(0), 3);
  ASSERT_EQ(g.ids.size(1), 4);
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t j = 0; j < 4; ++j) {
      const int64_t n = g.lengths[b][j].item<int64_t>();
      if (!std::isfinite(g.scores[b][j].item<double>())) continue;
      EXPECT_GE(n, 3);  // min_length
      EXPECT_LE(n, 5);  // max_length
      std::set<std::pair<int64_t, int64_t>> bigrams;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t id = g.ids[b][j][i].item<int64_t>();
        EXPECT_NE(id, kCls);
        EXPECT_NE(id, kSep);
        if (i > 0) {
          EXPECT_TRUE(bigrams.insert({g.ids[b][j][i - 1].item<int64_t>(), id}).second)
              << "a repeated bigram";
        }
      }
      if (j > 0) {  // best first
        EXPECT_GE(g.scores[b][j - 1].item<double>(), g.scores[b][j].item<double>());
      }
    }
  }
  // a wider beam never finds a worse best hypothesis by the search's own score than greedy
  // does here (both unconstrained but for the length)
  const auto greedy = generate(*model, image, 1, 5, 0, 0);
  const auto wide = generate(*model, image, 4, 5, 0, 0);
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_GE(wide.log_probs[b][0].item<double>() + 1e-6, greedy.log_probs[b][0].item<double>())
        << b;
  }
}

TEST(Caption, TheOutputsOfAnEvalForwardAreTheBeam) {
  auto model = caption_model(1);
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  const auto images = torch::randn({2, 3, 16, 16});
  // a caption as input (evaluation): the teacher-forced logits for the loss, and the beam
  const auto captions =
      torch::tensor(std::vector<int64_t>{kCls, 5, 6, kSep, 0, 0, kCls, 7, kSep, 0, 0, 0})
          .view({2, 6});
  auto out = model->forward(images, captions, captions.ne(0).to(torch::kLong));
  EXPECT_EQ(out.at(caption_outputs::logits).sizes(), torch::IntArrayRef({2, 6, kVocab}));
  EXPECT_EQ(out.at(caption_outputs::ids).size(0), 2);
  EXPECT_EQ(out.at(caption_outputs::ids).size(1), 3);  // config::CaptionGenerationConfig's beam
  // the empty prompt of predict and serve: the beam alone, the same captions
  const auto empty =
      torch::tensor(std::vector<int64_t>{kCls, kSep, 0, 0, 0, 0, kCls, kSep, 0, 0, 0, 0})
          .view({2, 6});
  const auto alone = model->forward(images, empty, empty.ne(0).to(torch::kLong));
  EXPECT_FALSE(alone.get(caption_outputs::logits).defined());
  EXPECT_TRUE(torch::equal(alone.at(caption_outputs::ids), out.at(caption_outputs::ids)));
}

TEST(Caption, TextOfIdsJoinsPiecesAndDropsSpecialTokens) {
  const std::vector<std::string> wordpiece = {"[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                              "a",     "dog",   "##s",   "run"};
  const int64_t ids[] = {4, 5, 6, 7, 3, 0};
  EXPECT_EQ(caption_text(wordpiece, ids, 6), "a dogs run");
  const std::vector<std::string> words = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "t", "-",
                                          "shirt", ",",     "(",     "b",     ")", "."};
  const int64_t word_ids[] = {4, 5, 6, 7, 8, 4, 9, 10, 11, 12};
  EXPECT_EQ(caption_text(words, word_ids, 10), "a t-shirt, a (b).");
  const std::vector<std::string> sp = {"<pad>", "<unk>", "\u2581a", "\u2581do", "g"};
  const int64_t sp_ids[] = {2, 3, 4, 0};
  EXPECT_EQ(caption_text(sp, sp_ids, 4), "a dog");
}

}  // namespace
}  // namespace xmodal::tasks
