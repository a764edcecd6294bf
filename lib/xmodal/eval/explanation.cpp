#include "xmodal/eval/explanation.h"

#include <fmt/format.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/coco.h"
#include "xmodal/data/scenes.h"
#include "xmodal/data/vqa.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/infer/prepared_input.h"

namespace xmodal::eval {
namespace {

struct Cell {
  int x0, y0, x1, y1;  // pixel range [x0, x1) x [y0, y1)
};

Cell cell_of(int patch, int grid, int side) {
  const int row = patch / grid, col = patch % grid;
  return {col * side / grid, row * side / grid, (col + 1) * side / grid, (row + 1) * side / grid};
}

void check_map(const std::vector<double>& weights, int grid, int side) {
  if (grid <= 0 || side < grid || static_cast<int64_t>(weights.size()) != int64_t{grid} * grid) {
    throw std::invalid_argument(
        fmt::format("explanation: {} weights for a {}x{} grid over {} pixels", weights.size(), grid,
                    grid, side));
  }
}

// side x side: 1 where a pixel centre lies in one of the boxes.
std::vector<uint8_t> box_mask(int side, const std::vector<PixelBox>& boxes) {
  std::vector<uint8_t> mask(static_cast<size_t>(side) * side, 0);
  for (const auto& b : boxes) {
    for (int y = 0; y < side; ++y) {
      const double cy = y + 0.5;
      if (cy < b.y0 || cy > b.y1) continue;
      for (int x = 0; x < side; ++x) {
        const double cx = x + 0.5;
        if (cx >= b.x0 && cx <= b.x1) mask[static_cast<size_t>(y) * side + x] = 1;
      }
    }
  }
  return mask;
}

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; }

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool contains_words(const std::string& text, const std::string& phrase) {
  if (phrase.empty()) return false;
  for (size_t at = text.find(phrase); at != std::string::npos; at = text.find(phrase, at + 1)) {
    const bool before = at == 0 || !word_char(text[at - 1]);
    const size_t end = at + phrase.size();
    const bool after = end == text.size() || !word_char(text[end]);
    if (before && after) return true;
  }
  return false;
}

}  // namespace

double pointing_tolerance(int side) { return 15.0 * side / 224.0; }

std::vector<int> relevance_order(const std::vector<double>& weights) {
  std::vector<int> order(weights.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return weights[static_cast<size_t>(a)] > weights[static_cast<size_t>(b)];
  });
  return order;
}

bool pointing_hit(const std::vector<double>& weights, int grid, int side,
                  const std::vector<PixelBox>& boxes, double tolerance) {
  check_map(weights, grid, side);
  if (boxes.empty()) return false;
  const auto [low, high] = std::minmax_element(weights.begin(), weights.end());
  if (!(*high > *low)) return false;  // a flat map (or NaN) points nowhere
  const int top = relevance_order(weights)[0];
  const Cell c = cell_of(top, grid, side);
  const double x = 0.5 * (c.x0 + c.x1), y = 0.5 * (c.y0 + c.y1);
  for (const auto& b : boxes) {
    const double dx = std::max({b.x0 - x, 0.0, x - b.x1});
    const double dy = std::max({b.y0 - y, 0.0, y - b.y1});
    if (std::sqrt(dx * dx + dy * dy) <= tolerance) return true;
  }
  return false;
}

double box_area_share(int side, const std::vector<PixelBox>& boxes) {
  if (side <= 0) throw std::invalid_argument("explanation: image side must be positive");
  const auto mask = box_mask(side, boxes);
  return static_cast<double>(std::accumulate(mask.begin(), mask.end(), int64_t{0})) /
         static_cast<double>(mask.size());
}

double energy_in_boxes(const std::vector<double>& weights, int grid, int side,
                       const std::vector<PixelBox>& boxes) {
  check_map(weights, grid, side);
  const auto mask = box_mask(side, boxes);
  double inside = 0, total = 0;
  for (int k = 0; k < grid * grid; ++k) {
    const double w = std::max(0.0, weights[static_cast<size_t>(k)]);
    if (!(w > 0)) continue;
    const Cell c = cell_of(k, grid, side);
    int64_t in = 0;
    for (int y = c.y0; y < c.y1; ++y) {
      for (int x = c.x0; x < c.x1; ++x) in += mask[static_cast<size_t>(y) * side + x];
    }
    const double pixels = static_cast<double>((c.x1 - c.x0) * (c.y1 - c.y0));
    inside += w * static_cast<double>(in) / pixels;
    total += w;
  }
  return total > 0 ? inside / total : 0.0;
}

double curve_auc(const std::vector<double>& values) {
  if (values.empty()) throw std::invalid_argument("curve_auc: an empty curve");
  if (values.size() == 1) return values[0];
  const double n = static_cast<double>(values.size() - 1);
  const double inner =
      std::accumulate(values.begin(), values.end(), 0.0) - 0.5 * (values.front() + values.back());
  return inner / n;
}

PatchCurves patch_curves(
    const std::vector<int>& order,
    const std::function<std::vector<double>(const std::vector<std::vector<uint8_t>>&)>& scores) {
  const size_t patches = order.size();
  std::vector<uint8_t> seen(patches, 0);
  for (int k : order) {
    if (k < 0 || static_cast<size_t>(k) >= patches || seen[static_cast<size_t>(k)]++) {
      throw std::invalid_argument("patch_curves: the order is not a permutation of the patches");
    }
  }
  std::vector<std::vector<uint8_t>> deleted, inserted;
  std::vector<uint8_t> d(patches, 0), i(patches, 1);
  for (size_t k = 0; k <= patches; ++k) {
    if (k > 0) {
      d[static_cast<size_t>(order[k - 1])] = 1;
      i[static_cast<size_t>(order[k - 1])] = 0;
    }
    deleted.push_back(d);
    inserted.push_back(i);
  }
  PatchCurves out{scores(deleted), scores(inserted)};
  if (out.deletion.size() != patches + 1 || out.insertion.size() != patches + 1) {
    throw std::runtime_error("patch_curves: the scorer returned another number of scores");
  }
  return out;
}

int named_category(const std::string& question, const std::vector<std::string>& names,
                   const std::vector<std::string>& plurals) {
  const std::string q = lower(question);
  int best = -1;
  size_t best_length = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string name = lower(names[i]);
    std::vector<std::string> forms = {name};
    if (i < plurals.size()) {
      forms.push_back(lower(plurals[i]));
    } else {
      forms.push_back(name + "s");
      forms.push_back(name + "es");
    }
    for (const auto& f : forms) {
      if (f.size() > best_length && contains_words(q, f)) {
        best = static_cast<int>(i);
        best_length = f.size();
      }
    }
  }
  return best;
}

void ExplanationScores::add(const ExplanationScores& o) {
  pointed += o.pointed;
  hits += o.hits;
  energy += o.energy;
  area += o.area;
  curves += o.curves;
  deletion += o.deletion;
  insertion += o.insertion;
  deletion_random += o.deletion_random;
  insertion_random += o.insertion_random;
}

std::map<std::string, double> explanation_metrics(const ExplanationScores& s) {
  std::map<std::string, double> m;
  m["pointed"] = static_cast<double>(s.pointed);
  m["curves"] = static_cast<double>(s.curves);
  if (s.pointed > 0) {
    const double n = static_cast<double>(s.pointed);
    m["pointing"] = static_cast<double>(s.hits) / n;
    m["energy"] = s.energy / n;
    m["area"] = s.area / n;
  }
  if (s.curves > 0) {
    const double n = static_cast<double>(s.curves);
    m["deletion"] = s.deletion / n;
    m["insertion"] = s.insertion / n;
    m["deletion_random"] = s.deletion_random / n;
    m["insertion_random"] = s.insertion_random / n;
  }
  return m;
}

namespace {

// One question (or, for counting, one image and its first caption) to explain.
struct Item {
  std::string image, text, type;
  const data::CocoImage* image_record = nullptr;
  int named = -1;  // vqa: the COCO category the question names (-1: none)
};

// Copies of `base` whose patches are blanked (pixel value 0 of every channel) where `blank`
// says so.
std::vector<infer::PreparedInput> masked_copies(const infer::PreparedInput& base,
                                                const std::vector<std::vector<uint8_t>>& blank,
                                                int grid, const torch::Tensor& black) {
  std::vector<infer::PreparedInput> out;
  const int side = static_cast<int>(base.pixels.size(-1));
  for (const auto& b : blank) {
    infer::PreparedInput p = base;
    p.pixels = base.pixels.clone();
    for (int k = 0; k < grid * grid; ++k) {
      if (!b[static_cast<size_t>(k)]) continue;
      const Cell c = cell_of(k, grid, side);
      p.pixels.narrow(1, c.y0, c.y1 - c.y0).narrow(2, c.x0, c.x1 - c.x0).copy_(black);
    }
    out.push_back(std::move(p));
  }
  return out;
}

// Deletion and insertion AUCs of one order of the patches.
std::pair<double, double> curves_of(infer::Predictor& predictor, const infer::PreparedInput& p,
                                    const std::vector<int>& order, int grid, int64_t target,
                                    const torch::Tensor& black) {
  const auto curves = patch_curves(order, [&](const std::vector<std::vector<uint8_t>>& blank) {
    const auto copies = masked_copies(p, blank, grid, black);
    std::vector<const infer::PreparedInput*> items;
    for (const auto& c : copies) items.push_back(&c);
    return predictor.target_scores(items, target);
  });
  return {curve_auc(curves.deletion), curve_auc(curves.insertion)};
}

std::vector<PixelBox> boxes_in_input(const data::CocoImage& image, int category,
                                     const infer::PreparedInput& p, int side) {
  std::vector<PixelBox> out;
  const double rx = p.region[0], ry = p.region[1], rw = p.region[2], rh = p.region[3];
  if (!(rw > 0 && rh > 0)) return out;
  for (const auto& o : image.objects) {
    if (o.category != category) continue;
    out.push_back({(o.cx - 0.5 * o.w - rx) / rw * side, (o.cy - 0.5 * o.h - ry) / rh * side,
                   (o.cx + 0.5 * o.w - rx) / rw * side, (o.cy + 0.5 * o.h - ry) / rh * side});
  }
  return out;
}

}  // namespace

ExplanationEvalResult evaluate_explanations(const ExplanationEvalOptions& options) {
  if (options.methods.empty()) throw OptionError("explanation evaluation", "no {methods}");
  infer::PredictorOptions po;
  po.checkpoint = options.checkpoint;
  po.overrides = options.overrides;
  po.top_k = 1;
  infer::Predictor predictor(po);
  const auto& config = predictor.loaded().config;
  const bool vqa = config.task == config::Task::vqa;
  if (!vqa && config.task != config::Task::counting) {
    throw std::invalid_argument(
        "the explanation evaluation scores vqa and counting checkpoints (their answers name "
        "categories with boxes); this one is task " +
        config::to_string(config.task));
  }
  const std::string& root = config.data.root;
  data::BadInputPolicy policy;
  const data::CocoSet coco = data::read_coco(root, options.split, policy, /*with_captions=*/!vqa);
  std::vector<std::string> names;
  for (const auto& c : coco.categories) names.push_back(c.name);
  // The scenes' own plurals where the categories are theirs ("trousers", "dresses").
  std::vector<std::string> plurals;
  if (names == data::fashion_class_names()) plurals = data::fashion_class_plurals();

  std::vector<Item> items;
  if (vqa) {
    const data::VqaSet set = data::read_vqa(root, options.split, policy);
    for (const auto& q : set.questions) {
      const auto it = coco.image_index.find(q.image_id);
      if (it == coco.image_index.end()) continue;
      Item item{q.image_path, q.question, q.answer_type.empty() ? "all" : q.answer_type,
                &coco.images[it->second], named_category(q.question, names, plurals)};
      items.push_back(std::move(item));
    }
  } else {
    for (const auto& image : coco.images) {
      if (image.captions.empty()) continue;
      items.push_back({image.path, image.captions[0], "counting", &image, -1});
    }
  }
  if (items.empty()) {
    throw std::invalid_argument("explanation evaluation: split " + options.split + " of " + root +
                                " has no questions with images in its instances file");
  }
  std::mt19937_64 rng(options.seed);
  if (options.limit > 0 && static_cast<int64_t>(items.size()) > options.limit) {
    std::shuffle(items.begin(), items.end(), rng);
    items.resize(static_cast<size_t>(options.limit));
  }

  ExplanationEvalResult result;
  result.split = options.split;
  result.side = config.data.image_size;
  result.tolerance = pointing_tolerance(result.side);
  torch::Tensor black = torch::empty({3, 1, 1});
  for (int ch = 0; ch < 3; ++ch) {
    black[ch] = -static_cast<double>(config.data.mean[static_cast<size_t>(ch)]) /
                static_cast<double>(config.data.stddev[static_cast<size_t>(ch)]);
  }
  const auto start = std::chrono::steady_clock::now();
  for (size_t n = 0; n < items.size(); ++n) {
    const Item& item = items[n];
    const auto prepared = predictor.prepare(infer::Input{item.image, item.text});
    const int side = static_cast<int>(prepared->pixels.size(-1));
    result.side = side;
    result.tolerance = pointing_tolerance(side);
    std::vector<int> random_order;
    std::pair<double, double> random_auc{0, 0};
    for (const auto& method : options.methods) {
      const infer::Explanation e = predictor.explain(*prepared, method);
      result.grid = e.grid;
      ExplanationScores s;
      const int category = vqa ? item.named : named_category(e.answer, names, plurals);
      if (category >= 0 && item.image_record->counts.at(static_cast<size_t>(category)) > 0) {
        const auto boxes = boxes_in_input(*item.image_record, category, *prepared, side);
        if (!boxes.empty()) {
          s.pointed = 1;
          s.hits = pointing_hit(e.patch_weights, e.grid, side, boxes, result.tolerance) ? 1 : 0;
          s.energy = energy_in_boxes(e.patch_weights, e.grid, side, boxes);
          s.area = box_area_share(side, boxes);
        }
      }
      if (options.curves) {
        if (random_order.empty()) {
          random_order.resize(e.patch_weights.size());
          std::iota(random_order.begin(), random_order.end(), 0);
          std::shuffle(random_order.begin(), random_order.end(), rng);
          random_auc = curves_of(predictor, *prepared, random_order, e.grid, e.target, black);
        }
        const auto [deletion, insertion] = curves_of(
            predictor, *prepared, relevance_order(e.patch_weights), e.grid, e.target, black);
        s.curves = 1;
        s.deletion = deletion;
        s.insertion = insertion;
        s.deletion_random = random_auc.first;
        s.insertion_random = random_auc.second;
      }
      result.scores[method][item.type].add(s);
      result.scores[method]["all"].add(s);
    }
    ++result.questions;
    if (options.progress_every > 0 && (n + 1) % static_cast<size_t>(options.progress_every) == 0) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      log::info("[explain] {}/{} questions explained and scored ({:.0f} s)", n + 1, items.size(),
                seconds);
    }
  }
  return result;
}

std::string format_explanation_table(const ExplanationEvalResult& r) {
  std::string out = fmt::format(
      "{} questions of split {}; pointing game: the hottest of {}x{} patches within {:.1f} px "
      "of a box of the named category ({} px input)\n\n",
      r.questions, r.split, r.grid, r.grid, r.tolerance, r.side);
  out +=
      "| method | type | pointed | pointing | energy in boxes (area) | deletion AUC (random) | "
      "insertion AUC (random) |\n|---|---|---:|---:|---:|---:|---:|\n";
  const auto pct = [](const std::map<std::string, double>& m, const char* key) {
    const auto it = m.find(key);
    return it == m.end() ? std::string("-") : fmt::format("{:.1f}%", 100 * it->second);
  };
  const auto auc = [](const std::map<std::string, double>& m, const char* key) {
    const auto it = m.find(key);
    return it == m.end() ? std::string("-") : fmt::format("{:.3f}", it->second);
  };
  for (const auto& [method, types] : r.scores) {
    // "all" last, the answer types before it
    std::vector<std::string> order;
    for (const auto& [type, s] : types) {
      if (type != "all") order.push_back(type);
    }
    order.push_back("all");
    for (const auto& type : order) {
      const auto it = types.find(type);
      if (it == types.end()) continue;
      const auto m = explanation_metrics(it->second);
      out += fmt::format("| {} | {} | {} | {} | {} ({}) | {} ({}) | {} ({}) |\n", method, type,
                         it->second.pointed, pct(m, "pointing"), pct(m, "energy"), pct(m, "area"),
                         auc(m, "deletion"), auc(m, "deletion_random"), auc(m, "insertion"),
                         auc(m, "insertion_random"));
    }
  }
  return out;
}

std::string explanation_json(const ExplanationEvalResult& r) {
  nlohmann::json j = {{"split", r.split},         {"questions", r.questions},
                      {"grid", r.grid},           {"side", r.side},
                      {"tolerance", r.tolerance}, {"methods", nlohmann::json::object()}};
  for (const auto& [method, types] : r.scores) {
    for (const auto& [type, s] : types) j["methods"][method][type] = explanation_metrics(s);
  }
  return j.dump(2) + "\n";
}

}  // namespace xmodal::eval
