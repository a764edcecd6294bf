// `xmodal tokenizer train (--input TEXT | --config C) --vocab-size N --out DIR`
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/train/tokenizer_training.h"

namespace xmodal::cli {

void add_tokenizer_command(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("tokenizer", "Train a SentencePiece tokenizer");
  cmd->require_subcommand(1);
  auto args = std::make_shared<train::TokenizerTrainOptions>();
  auto* train = cmd->add_subcommand(
      "train",
      "Train a SentencePiece (unigram) model on a text file or on a config's training texts; "
      "writes DIR/tokenizer.model and DIR/tokenizer.vocab");
  train->add_option("--input", args->input, "Text file, one sentence per line (default: none)");
  train->add_option("--config", args->config,
                    "YAML config: train on the questions/captions of data.train_split "
                    "(default: none)");
  train->add_option("--set", args->overrides, "Config override KEY=VALUE (repeatable)");
  train->add_option("--vocab-size", args->vocab_size, "Pieces in the model (default: 8000)")
      ->check(CLI::Range(8, 1000000));
  train->add_option("--out", args->out_dir, "Output folder")->required();
  train->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      const auto result = train::train_tokenizer(*args);
      ctx.out << "trained a " << result.vocab_size << "-piece SentencePiece model on "
              << result.texts << " texts -> " << result.model << "\n"
              << "use it with: tokenizer: {type: sentencepiece, path: " << result.model << "}\n";
      return 0;
    };
  });
}

}  // namespace xmodal::cli
