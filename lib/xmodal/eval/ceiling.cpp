#include "xmodal/eval/ceiling.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <random>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/strings.h"
#include "xmodal/data/loader.h"
#include "xmodal/data/scenes.h"
#include "xmodal/data/transforms.h"
#include "xmodal/data/vqa_answers.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/infer/prepared_input.h"
#include "xmodal/infer/session.h"
#include "xmodal/io/image.h"
#include "xmodal/tasks/metrics.h"
#include "xmodal/tasks/task.h"

namespace xmodal::eval {

namespace {

int index_of(const std::vector<std::string>& names, const std::string& name) {
  const auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : static_cast<int>(it - names.begin());
}

// The middle of "PREFIX middle SUFFIX", or "" when `s` is not of that form.
std::string middle(const std::string& s, const std::string& prefix, const std::string& suffix) {
  if (s.size() <= prefix.size() + suffix.size() || !starts_with(s, prefix) ||
      !ends_with(s, suffix)) {
    return "";
  }
  return s.substr(prefix.size(), s.size() - prefix.size() - suffix.size());
}

}  // namespace

std::string scenes_answer(const std::string& question, const std::vector<Article>& articles) {
  const auto& names = data::fashion_class_names();
  const auto& plurals = data::fashion_class_plurals();
  const auto count = [&](int category) {
    return std::count_if(articles.begin(), articles.end(),
                         [&](const Article& a) { return a.category == category; });
  };
  if (const int c = index_of(plurals, middle(question, "how many ", " are there?")); c >= 0) {
    return std::to_string(count(c));
  }
  for (const char* article : {"is there a ", "is there an "}) {
    if (const int c = index_of(names, middle(question, article, "?")); c >= 0) {
      return count(c) > 0 ? "yes" : "no";
    }
  }
  const std::string side = middle(question, "what is the ", " item?");
  if ((side == "leftmost" || side == "rightmost") && !articles.empty()) {
    const Article* pick = &articles[0];
    for (const Article& a : articles) {
      if (side == "leftmost" ? a.cx < pick->cx : a.cx > pick->cx) pick = &a;
    }
    if (pick->category < 0 || pick->category >= static_cast<int>(names.size())) return "";
    return data::normalize_answer(names[pick->category]);
  }
  return "";
}

CeilingResult ceiling_from_labels(const data::CocoSet& coco, const data::VqaSet& vqa,
                                  const std::vector<std::vector<int>>& predicted) {
  if (predicted.size() != coco.images.size()) {
    throw std::invalid_argument("ceiling: " + std::to_string(predicted.size()) +
                                " label lists for " + std::to_string(coco.images.size()) +
                                " images");
  }
  CeilingResult r;
  for (const auto& c : coco.categories) r.categories.push_back(c.name);
  const size_t k = r.categories.size();
  r.confusion.assign(k, std::vector<int64_t>(k, 0));
  std::vector<std::vector<Article>> scenes(coco.images.size());
  int64_t right = 0;
  for (size_t i = 0; i < coco.images.size(); ++i) {
    const auto& objects = coco.images[i].objects;
    if (predicted[i].size() != objects.size()) {
      throw std::invalid_argument("ceiling: image " + std::to_string(coco.images[i].id) + " has " +
                                  std::to_string(objects.size()) + " objects but " +
                                  std::to_string(predicted[i].size()) + " labels");
    }
    for (size_t j = 0; j < objects.size(); ++j) {
      const int truth = objects[j].category, label = predicted[i][j];
      scenes[i].push_back({label, objects[j].cx, objects[j].cy});
      if (label >= 0 && label < static_cast<int>(k)) ++r.confusion[truth][label];
      right += label == truth;
      ++r.articles;
    }
  }
  r.article_accuracy = r.articles > 0 ? static_cast<double>(right) / r.articles : 0.0;
  std::vector<double> accuracies;
  std::vector<std::string> types;
  for (const auto& q : vqa.questions) {
    const auto it = coco.image_index.find(q.image_id);
    if (it == coco.image_index.end()) {
      throw std::invalid_argument("ceiling: question " + std::to_string(q.question_id) +
                                  " is about image " + std::to_string(q.image_id) +
                                  ", which the instances file does not have");
    }
    const std::string answer = scenes_answer(q.question, scenes[it->second]);
    if (answer.empty()) ++r.unanswerable;
    accuracies.push_back(answer.empty() ? 0.0 : tasks::vqa_accuracy(answer, q.answers));
    types.push_back(q.answer_type);
  }
  r.questions = static_cast<int64_t>(accuracies.size());
  r.metrics = tasks::vqa_metrics(accuracies, types);
  return r;
}

std::map<std::string, double> text_prior(const data::VqaSet& train, const data::VqaSet& vqa) {
  std::map<std::string, std::map<std::string, int64_t>> by_question, by_type;
  for (const auto& q : train.questions) {
    ++by_question[q.question][q.multiple_choice_answer];
    ++by_type[q.answer_type][q.multiple_choice_answer];
  }
  const auto most_frequent = [](const std::map<std::string, int64_t>& counts) {
    std::string best;
    int64_t n = -1;
    for (const auto& [answer, count] : counts) {  // ties: the first in order
      if (count > n) {
        best = answer;
        n = count;
      }
    }
    return best;
  };
  std::vector<double> accuracies;
  std::vector<std::string> types;
  for (const auto& q : vqa.questions) {
    std::string answer;
    if (const auto it = by_question.find(q.question); it != by_question.end()) {
      answer = most_frequent(it->second);
    } else if (const auto t = by_type.find(q.answer_type); t != by_type.end()) {
      answer = most_frequent(t->second);
    }
    accuracies.push_back(answer.empty() ? 0.0 : tasks::vqa_accuracy(answer, q.answers));
    types.push_back(q.answer_type);
  }
  return tasks::vqa_metrics(accuracies, types);
}

PerceptionScores score_perception(const data::CocoSet& coco,
                                  const std::vector<std::vector<int>>& present,
                                  const std::vector<std::vector<int>>& counts) {
  const size_t categories = coco.categories.size();
  if (present.size() != coco.images.size() || counts.size() != coco.images.size()) {
    throw std::invalid_argument("score_perception: one row of answers per image");
  }
  PerceptionScores s;
  int64_t right = 0, counted = 0, there = 0, said_there = 0, absent = 0, said_absent = 0;
  for (size_t i = 0; i < coco.images.size(); ++i) {
    if (present[i].size() != categories || counts[i].size() != categories) {
      throw std::invalid_argument("score_perception: one answer per category");
    }
    for (size_t c = 0; c < categories; ++c) {
      const int truth = coco.images[i].counts.at(c);
      ++s.pairs;
      right += (present[i][c] == 1) == (truth > 0) && present[i][c] >= 0;
      counted += counts[i][c] == truth;
      if (truth > 0) {
        ++there;
        said_there += present[i][c] == 1;
      } else {
        ++absent;
        said_absent += present[i][c] == 0;
      }
    }
  }
  const auto share = [](int64_t a, int64_t b) { return b > 0 ? static_cast<double>(a) / b : 0.0; };
  s.presence = share(right, s.pairs);
  s.count = share(counted, s.pairs);
  s.recall = share(said_there, there);
  s.specificity = share(said_absent, absent);
  return s;
}

PerceptionScores model_perception(const std::string& checkpoint, const data::CocoSet& coco,
                                  int batch_size) {
  const auto& names = data::fashion_class_names();
  std::vector<std::string> categories;
  for (const auto& c : coco.categories) categories.push_back(c.name);
  if (categories != names) {
    throw std::invalid_argument(
        "the model's perception is asked in the scenes' questions; this split's categories are "
        "not the scenes' (Fashion-MNIST's ten classes)");
  }
  infer::PredictorOptions po;
  po.checkpoint = checkpoint;
  po.top_k = 1;
  infer::Predictor predictor(po);
  if (predictor.loaded().config.task != config::Task::vqa) {
    throw OptionError("ceiling", "{model} " + OptionError::literal(checkpoint) + ": a " +
                                     config::to_string(predictor.loaded().config.task) +
                                     " checkpoint; its perception is read from the answers of "
                                     "a vqa model of the scenes");
  }
  const int k = static_cast<int>(names.size());
  std::vector<std::vector<int>> present(coco.images.size(), std::vector<int>(k, -1));
  std::vector<std::vector<int>> counts = present;
  std::vector<std::unique_ptr<infer::PreparedInput>> batch;
  std::vector<int*> slots;        // where each item's answer goes
  std::vector<bool> is_presence;  // which question each item asks
  const auto flush = [&] {
    if (batch.empty()) return;
    std::vector<const infer::PreparedInput*> items;
    for (const auto& b : batch) items.push_back(b.get());
    const auto answers = predictor.run(items, std::vector<int>(items.size(), 1));
    for (size_t r = 0; r < answers.size(); ++r) {
      const std::string top = answers[r].classes.empty() ? "" : answers[r].classes[0].name;
      if (is_presence[r]) {
        *slots[r] = top == "yes" ? 1 : top == "no" ? 0 : -1;
      } else {
        const bool number = !top.empty() && top.size() <= 3 &&
                            top.find_first_not_of("0123456789") == std::string::npos;
        *slots[r] = number ? std::stoi(top) : -1;
      }
    }
    batch.clear();
    slots.clear();
    is_presence.clear();
  };
  for (size_t i = 0; i < coco.images.size(); ++i) {
    const cv::Mat rgb = io::read_image_rgb(coco.images[i].path);
    for (int c = 0; c < k; ++c) {
      for (const bool presence : {true, false}) {
        batch.push_back(predictor.prepare(
            rgb, presence ? data::presence_question(c) : data::count_question(c)));
        slots.push_back(presence ? &present[i][c] : &counts[i][c]);
        is_presence.push_back(presence);
        if (static_cast<int>(batch.size()) >= batch_size) flush();
      }
    }
  }
  flush();
  return score_perception(coco, present, counts);
}

namespace {

// The classifier's label (a scene category) of every article of `coco`, cut out at its box.
std::vector<std::vector<int>> classifier_labels(const CeilingOptions& o,
                                                const data::CocoSet& coco) {
  infer::SessionOptions opening(o.classifier, {}, "ceiling");
  opening.check = [&](const checkpoint::LoadedModel& m) {
    if (m.config.task != config::Task::classify) {
      throw OptionError("ceiling", "{classifier} " + OptionError::literal(o.classifier) + ": a " +
                                       config::to_string(m.config.task) +
                                       " checkpoint; the ceiling needs an image classifier (task: "
                                       "classify, e.g. runs/pretrain_fashion)");
    }
  };
  opening.device = c10::Device(c10::kCPU);  // the crops are cut and labelled on the CPU
  infer::Session session = infer::Session::open(opening);
  checkpoint::LoadedModel& m = session.loaded;
  // The classifier's class of each scene category, by name.
  const auto& classes = m.artifacts.class_names;
  std::vector<int> scene_category_of_class(classes.size(), -1);
  for (size_t c = 0; c < coco.categories.size(); ++c) {
    const int k = index_of(classes, coco.categories[c].name);
    if (k < 0) {
      throw OptionError("ceiling", "{classifier} " + OptionError::literal(o.classifier) +
                                       ": its classes have no '" +
                                       OptionError::literal(coco.categories[c].name) +
                                       "' (a category of " + OptionError::literal(o.root) + ")");
    }
    scene_category_of_class[k] = static_cast<int>(c);
  }
  const auto options = data::loader_options(m.config, /*train=*/false).transform;
  std::vector<std::vector<int>> predicted(coco.images.size());
  std::vector<torch::Tensor> crops;
  std::vector<std::pair<size_t, size_t>> owners;  // (image, object) of each crop
  const auto flush = [&] {
    if (crops.empty()) return;
    torch::NoGradGuard no_grad;
    const auto out = m.model->forward(torch::stack(crops), torch::Tensor());
    const auto labels =
        tasks::task(m.config.task).scores(out).argmax(1).to(torch::kCPU).contiguous();
    const auto* l = labels.data_ptr<int64_t>();
    for (size_t i = 0; i < owners.size(); ++i) {
      predicted[owners[i].first][owners[i].second] = scene_category_of_class[l[i]];
    }
    crops.clear();
    owners.clear();
  };
  std::mt19937_64 rng(0);
  for (size_t i = 0; i < coco.images.size(); ++i) {
    const auto& image = coco.images[i];
    predicted[i].assign(image.objects.size(), -1);
    if (image.objects.empty()) continue;
    const cv::Mat rgb = io::read_image_rgb(image.path);
    const cv::Rect bounds(0, 0, rgb.cols, rgb.rows);
    for (size_t j = 0; j < image.objects.size(); ++j) {
      const auto& b = image.objects[j];
      const cv::Rect box = cv::Rect(static_cast<int>(std::lround(b.cx - b.w / 2)),
                                    static_cast<int>(std::lround(b.cy - b.h / 2)),
                                    std::max(1, static_cast<int>(std::lround(b.w))),
                                    std::max(1, static_cast<int>(std::lround(b.h)))) &
                           bounds;
      if (box.empty()) continue;  // a box outside the image: left unlabelled (wrong)
      crops.push_back(data::transform_image(rgb(box).clone(), options, rng).pixels);
      owners.emplace_back(i, j);
      if (static_cast<int>(crops.size()) >= o.batch_size) flush();
    }
  }
  flush();
  return predicted;
}

}  // namespace

CeilingResult measure_ceiling(const CeilingOptions& o) {
  if (o.classifier.empty() && o.model.empty()) {
    throw OptionError("ceiling", "give {classifier}, {model} or both");
  }
  data::BadInputPolicy policy;
  const data::CocoSet coco = data::read_coco(o.root, o.split, policy, /*with_captions=*/false);
  CeilingResult r;
  if (!o.classifier.empty()) {
    const data::VqaSet vqa = data::read_vqa(o.root, o.split, policy);
    if (!vqa.has_annotations) {
      throw std::invalid_argument(o.root + " split " + o.split + " has no answers to score");
    }
    const auto predicted = classifier_labels(o, coco);
    r = ceiling_from_labels(coco, vqa, predicted);
    // The classifier's counts: its labels at the true boxes, counted per category.
    const size_t k = coco.categories.size();
    std::vector<std::vector<int>> counts(coco.images.size(), std::vector<int>(k, 0));
    for (size_t i = 0; i < predicted.size(); ++i) {
      for (const int label : predicted[i]) {
        if (label >= 0) ++counts[i][static_cast<size_t>(label)];
      }
    }
    std::vector<std::vector<int>> present = counts;
    for (auto& row : present) {
      for (int& v : row) v = v > 0 ? 1 : 0;
    }
    r.classifier_perception = score_perception(coco, present, counts);
    if (!o.prior_split.empty())
      r.prior = text_prior(data::read_vqa(o.root, o.prior_split, policy), vqa);
  }
  if (!o.model.empty()) r.model_perception = model_perception(o.model, coco, o.batch_size);
  return r;
}

namespace {

// The perception table: one row per recogniser measured.
std::string perception_table(const CeilingResult& r) {
  if (!r.classifier_perception && !r.model_perception) return "";
  std::string out =
      "\n| perception (every scene x category) | presence | there: yes | absent: no | count |\n"
      "|---|---|---|---|---|\n";
  const auto row = [&out](const std::string& who, const PerceptionScores& s) {
    out += fmt::format("| {} | {:.2f}% | {:.2f}% | {:.2f}% | {:.2f}% |\n", who, 100 * s.presence,
                       100 * s.recall, 100 * s.specificity, 100 * s.count);
  };
  if (r.classifier_perception) {
    row("classifier (its labels at the true boxes)", *r.classifier_perception);
  }
  if (r.model_perception) row("model (its own answers)", *r.model_perception);
  const auto& any = r.model_perception ? *r.model_perception : *r.classifier_perception;
  out += fmt::format("({} pairs)\n", any.pairs);
  return out;
}

}  // namespace

std::string format_ceiling(const CeilingResult& r) {
  if (r.metrics.empty()) return perception_table(r);
  const bool prior = !r.prior.empty();
  std::string out = prior ? "| answer type | ceiling | text-only prior |\n|---|---|---|\n"
                          : "| answer type | ceiling |\n|---|---|\n";
  const auto row = [&](const std::string& name, const std::string& key) {
    const auto it = r.metrics.find(key);
    if (it == r.metrics.end()) return;
    out += fmt::format("| {} | {:.2f}% |", name, 100 * it->second);
    const auto p = r.prior.find(key);
    if (prior) out += p == r.prior.end() ? " - |" : fmt::format(" {:.2f}% |", 100 * p->second);
    out += "\n";
  };
  row("overall", "accuracy");
  row("yes/no", "accuracy_yes_no");
  row("number", "accuracy_number");
  row("other", "accuracy_other");
  out += fmt::format(
      "\n{} questions ({} outside the templates), {} articles: {:.2f}% labelled right\n",
      r.questions, r.unanswerable, r.articles, 100 * r.article_accuracy);
  out += "\n| category | articles | recall | most often taken for |\n|---|---|---|---|\n";
  for (size_t c = 0; c < r.categories.size(); ++c) {
    int64_t total = 0;
    size_t worst = c;
    for (size_t p = 0; p < r.categories.size(); ++p) {
      total += r.confusion[c][p];
      if (p != c && (worst == c || r.confusion[c][p] > r.confusion[c][worst])) worst = p;
    }
    if (total == 0) continue;
    const int64_t missed = worst == c ? 0 : r.confusion[c][worst];
    out += fmt::format(
        "| {} | {} | {:.1f}% | {} |\n", r.categories[c], total, 100.0 * r.confusion[c][c] / total,
        missed > 0 ? fmt::format("{} ({:.1f}%)", r.categories[worst], 100.0 * missed / total)
                   : std::string("-"));
  }
  return out + perception_table(r);
}

}  // namespace xmodal::eval
