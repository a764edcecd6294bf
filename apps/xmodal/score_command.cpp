// `xmodal score --results r.json --annotations a.json [--questions q.json] [--out score.json]`
// `xmodal score --task caption --results r.json --annotations captions.json [--out s.json]`
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/eval/score.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/caption_metrics.h"

namespace xmodal::cli {

void add_score_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string results, annotations, questions, out;
    std::string protocol = "official";
    std::string task = "vqa";
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "score", "Official VQA accuracy or COCO caption metrics of any results file");
  cmd->add_option("--task", args->task,
                  "vqa (accuracy) | caption (BLEU-1..4, ROUGE-L, CIDEr-D as pycocoevalcap "
                  "computes them) (default: vqa)")
      ->check(CLI::IsMember({"vqa", "caption"}));
  cmd->add_option("--results", args->results,
                  "vqa: [{\"question_id\":..., \"answer\":...}]; caption: [{\"image_id\":..., "
                  "\"caption\":...}] JSON")
      ->required();
  cmd->add_option("--annotations", args->annotations,
                  "vqa: VQA v2 annotations JSON; caption: COCO captions_*.json or a Karpathy "
                  "split file")
      ->required();
  cmd->add_option("--questions", args->questions,
                  "VQA v2 questions JSON; when given, must cover the annotated questions "
                  "(default: none)");
  cmd->add_option("--out", args->out, "Also write the accuracies as JSON here (default: none)")
      ->check(non_empty());
  cmd->add_option("--protocol", args->protocol,
                  "official (GT-Vision-Lab master a013f00, 2021: answers normalised only when the "
                  "ten human answers differ) | legacy (the evaluation before it, for older "
                  "papers) (default: official)")
      ->check(CLI::IsMember({"official", "legacy"}));
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      if (args->task == "caption") {
        if (!args->questions.empty())
          throw std::invalid_argument("score: --questions is for --task vqa");
        const auto e = tasks::score_caption_results(args->results, args->annotations);
        ctx.out << tasks::format_caption_scores(e);
        if (!args->out.empty()) {
          io::write_file_atomic(args->out, tasks::caption_scores_json(e, /*per_image=*/true));
        }
        return 0;
      }
      const auto r =
          eval::score_vqa(args->results, args->annotations, args->questions,
                          *config::enum_from_string<config::VqaProtocol>(args->protocol));
      if (r.duplicate_results > 0) {
        ctx.err << "xmodal: warning: " << r.duplicate_results << " question(s) answered twice in "
                << args->results << "; the last answer counts (as in the official tool)\n";
      }
      ctx.out << eval::format_score(r);
      if (!args->out.empty()) io::write_file_atomic(args->out, eval::score_json(r));
      return 0;
    };
  });
}

}  // namespace xmodal::cli
