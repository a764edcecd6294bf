// `xmodal index --checkpoint CKPT (--images DIR | --split S) --out INDEX_DIR [--append]
//  [--backend flat|ivf|hnsw]` and `xmodal search --index INDEX_DIR (--text T | --image P)
//  [--top-k K]`: embed a collection once, query it later (infer/index.h).

#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/infer/index.h"
#include "xmodal/infer/json.h"

namespace xmodal::cli {
namespace {

void add_ann_options(CLI::App* cmd, infer::AnnOptions& ann) {
  cmd->add_option("--nlist", ann.nlist, "ivf: inverted lists (default: 0 = 4 sqrt(N))")
      ->check(at_least(0));
  cmd->add_option("--nprobe", ann.nprobe, "ivf: lists visited per query (default: 16)")
      ->check(at_least(1));
  cmd->add_option("--hnsw-m", ann.hnsw_m, "hnsw: links per node (default: 32)")->check(at_least(2));
  cmd->add_option("--ef-construction", ann.ef_construction,
                  "hnsw: candidates kept while building (default: 64)")
      ->check(at_least(1));
  cmd->add_option("--ef-search", ann.ef_search,
                  "hnsw: candidates kept while searching (default: 64)")
      ->check(at_least(1));
}

}  // namespace

void add_index_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<infer::IndexOptions>();
  auto* cmd = app.add_subcommand(
      "index", "Embed a folder of images (or a split's) with a retrieval checkpoint for search");
  cmd->add_option("--checkpoint", args->checkpoint, "Retrieval checkpoint, RUN_DIR/best or a run")
      ->required()
      ->check(non_empty());
  cmd->add_option("--images", args->images,
                  "Folder searched recursively for images (jpg, png, bmp, webp, tif, pnm)")
      ->check(non_empty());
  cmd->add_option("--split", args->split, "A split of the checkpoint's data set instead")
      ->check(non_empty());
  cmd->add_option("--out", args->out, "Index folder")->required()->check(non_empty());
  cmd->add_flag("--append", args->append,
                "Add the images not yet in the index (same checkpoint; default: off)");
  cmd->add_option("--backend", args->backend,
                  "flat (exact) | ivf | hnsw (FAISS approximate index; default: flat)")
      ->check(CLI::IsMember({"flat", "ivf", "hnsw"}));
  cmd->add_option("--batch-size", args->batch_size, "Images per forward pass (default: 64)")
      ->check(at_least(1));
  add_ann_options(cmd, args->ann);
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto o = *args;
      o.overrides = ctx.shared_overrides();
      const auto r = infer::build_index(o);
      ctx.out << "indexed " << r.added << " image(s)"
              << (r.skipped ? " (" + std::to_string(r.skipped) + " unreadable, skipped)" : "")
              << "; " << o.out << " holds " << r.total << " (" << static_cast<int>(r.seconds + 0.5)
              << " s, " << static_cast<int>(r.images_per_second + 0.5) << " images/s)\n";
      return 0;
    };
  });
}

void add_search_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<infer::SearchOptions>();
  auto* cmd = app.add_subcommand(
      "search", "Query an index by text or image: JSON lines {\"rank\", \"path\", \"score\"}");
  cmd->add_option("--index", args->index, "Index folder (xmodal index)")
      ->required()
      ->check(non_empty());
  cmd->add_option("--text", args->text, "Text query")->check(non_empty());
  cmd->add_option("--image", args->image, "Image query")->check(non_empty());
  cmd->add_option("--top-k", args->top_k, "Results (default: 10)")->check(at_least(1));
  cmd->add_option("--checkpoint", args->checkpoint,
                  "Checkpoint to embed the query (default: the index's; another is refused "
                  "unless its weights are the same)")
      ->check(non_empty());
  cmd->add_option("--backend", args->backend,
                  "flat (exact) | ivf | hnsw (default: the index's own)")
      ->check(CLI::IsMember({"flat", "ivf", "hnsw"}));
  add_ann_options(cmd, args->ann);
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      auto o = *args;
      o.overrides = ctx.shared_overrides();
      for (const auto& hit : infer::search_index(o)) {
        ctx.out << infer::dump_line(infer::to_json(hit)) << "\n";
      }
      ctx.out << std::flush;
      return 0;
    };
  });
}

}  // namespace xmodal::cli
