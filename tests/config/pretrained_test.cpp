#include "xmodal/config/pretrained.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <tuple>

#include "../support/temp_dir.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/error.h"
#include "xmodal_test_paths.h"

namespace xmodal::config {
namespace {

namespace fs = std::filesystem;
using xmodal::testing::TempDir;

std::string data(const std::string& relative) {
  return std::string(XMODAL_TEST_DATA) + "/" + relative;
}

const std::string kViT = data("models/hf_vit");
const std::string kBert = data("models/tiny_bert");

// The message of the exception `f` throws (empty if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(PretrainedConfig, AViTFolderAloneEqualsTheFullySpecifiedConfig) {
  const Config only = parse_config("model: {vision: {pretrained: " + kViT + "}}\n", "only.yaml");
  const Config full = parse_config(
      "data: {image_size: 32}\n"
      "model:\n"
      "  vision: {patch_size: 8, hidden: 32, layers: 2, heads: 2, mlp_dim: 64, layer_norm_eps: "
      "1e-6, pretrained: " +
          kViT + "}\n",
      "full.yaml");
  EXPECT_EQ(flatten(only), flatten(full));
  EXPECT_EQ(only.model.vision.hidden, 32);
  EXPECT_EQ(only.data.image_size, 32);
  EXPECT_DOUBLE_EQ(only.model.vision.layer_norm_eps, 1e-6);
  // Each such key names where it came from; the text encoder is untouched.
  EXPECT_EQ(only.origin("model.vision.mlp_dim"), kViT + "/config.json (intermediate_size)");
  EXPECT_EQ(only.origin("data.image_size"), kViT + "/config.json (image_size)");
  EXPECT_TRUE(only.pretrained_keys.count("model.vision.patch_size"));
  EXPECT_FALSE(only.pretrained_keys.count("model.text.hidden"));
  EXPECT_TRUE(full.pretrained_keys.count("model.vision.layers") == 0);  // the user set them
}

TEST(PretrainedConfig, ABertFolderGivesItsSizesAndItsWordPieceVocabulary) {
  const Config only = parse_config(
      "model: {text: {pretrained: " + kBert + "}}\ndata: {max_text_len: 16}\n", "only.yaml");
  const Config full = parse_config(
      "tokenizer: {type: wordpiece, path: " + kBert +
          "/vocab.txt}\n"
          "data: {max_text_len: 16}\n"
          "model:\n"
          "  text: {hidden: 16, layers: 1, heads: 1, intermediate: 64, max_position: 16, "
          "vocab_size: 402, layer_norm_eps: 1e-12, pretrained: " +
          kBert + "}\n",
      "full.yaml");
  EXPECT_EQ(flatten(only), flatten(full));
  EXPECT_EQ(only.tokenizer.type, TokenizerType::wordpiece);
  EXPECT_EQ(only.tokenizer.path, kBert + "/vocab.txt");
  EXPECT_EQ(only.origin("tokenizer.path"), kBert + " (vocab.txt)");
  // A tokenizer the user chose stays.
  const Config sp = parse_config("model: {text: {pretrained: " + kBert +
                                     "}}\ndata: {max_text_len: 16}\n"
                                     "tokenizer: {type: sentencepiece, path: my.model}\n",
                                 "sp.yaml");
  EXPECT_EQ(sp.tokenizer.type, TokenizerType::sentencepiece);
  EXPECT_EQ(sp.tokenizer.path, "my.model");
}

TEST(PretrainedConfig, ValidationSeesTheFoldersValuesAndNamesThem) {
  // max_text_len 128 fits BERT-base's 512 positions, not xmodal's default 64; the tiny BERT's
  // 16 positions are named with the file they come from.
  const std::string message =
      error_of([] { parse_config("model: {text: {pretrained: " + kBert + "}}\n", "t.yaml"); });
  EXPECT_NE(
      message.find(kBert + "/config.json (max_position_embeddings): model.text.max_position (16) "
                           "must be >= data.max_text_len (32"),
      std::string::npos)
      << message;
}

TEST(PretrainedConfig, KeysTheUserSetMustAgreeAndBothValuesAreNamed) {
  TempDir dir;
  const auto path = dir.write("t.yaml",
                              "model:\n"
                              "  vision:\n"
                              "    pretrained: " +
                                  kViT +
                                  "\n"
                                  "    hidden: 64\n"
                                  "    layer_norm_eps: 1e-12\n"
                                  "    stem: conv\n");
  const std::string m = error_of([&] { load_config(path, {"model.vision.heads=4"}); });
  EXPECT_NE(m.find(path + ":4: model.vision.hidden is 64 in the config but 32 in " + kViT +
                   "/config.json (hidden_size)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("--set model.vision.heads=4: model.vision.heads is 4 in the config but 2"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(path + ":5: model.vision.layer_norm_eps is 1e-12 in the config but 1e-06"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(path + ":6: model.vision.stem must be patch"), std::string::npos) << m;
  // Keys that agree, and a different image size (positions are interpolated), are fine.
  const Config ok = load_config(path, {"model.vision.hidden=32", "model.vision.layer_norm_eps=0",
                                       "model.vision.stem=patch", "data.image_size=48"});
  EXPECT_EQ(ok.data.image_size, 48);
  EXPECT_DOUBLE_EQ(ok.model.vision.layer_norm_eps, 1e-6);  // 0 still means "from the folder"

  // A ViT folder is not a BERT; a missing folder is named with its key.
  EXPECT_NE(error_of([] {
              parse_config("model: {text: {pretrained: " + kViT + "}}\n");
            }).find("model_type is \"vit\"; model.text.pretrained needs a \"bert\" model"),
            std::string::npos);
  const std::string missing =
      error_of([] { parse_config("model: {vision: {pretrained: /nope}}\n", "m.yaml"); });
  EXPECT_NE(missing.find("m.yaml:1: model.vision.pretrained: /nope: no such folder"),
            std::string::npos)
      << missing;
  EXPECT_THROW(parse_config("model: {vision: {pretrained: /nope}}\n"), ConfigError);
  TempDir empty;  // a folder without config.json is bad data, named
  const std::string no_json = error_of(
      [&] { parse_config("model: {vision: {pretrained: " + empty.path().string() + "}}\n"); });
  EXPECT_NE(
      no_json.find("model.vision.pretrained: " + empty.path().string() + "/config.json: not found"),
      std::string::npos)
      << no_json;
}

TEST(PretrainedConfig, AnIncludedFilesKeysYieldToTheFolderTheFilesOwnDoNot) {
  TempDir dir;
  // A base with its own tiny text encoder and word tokenizer, as the quickstart has.
  dir.write("base.yaml",
            "tokenizer: {type: word}\n"
            "data: {max_text_len: 16}\n"
            "model:\n  text: {hidden: 128, layers: 0, heads: 4, intermediate: 512, "
            "max_position: 64}\n");
  const auto path =
      dir.write("real.yaml", "include: base.yaml\nmodel: {text: {pretrained: " + kBert + "}}\n");
  const Config c = load_config(path);
  const auto& t = c.model.text;
  EXPECT_EQ(std::make_tuple(t.hidden, t.layers, t.heads, t.intermediate, t.max_position),
            std::make_tuple(16, 1, 1, 64, 16));
  EXPECT_EQ(c.origin("model.text.hidden"), kBert + "/config.json (hidden_size)");
  EXPECT_EQ(c.tokenizer.type, TokenizerType::wordpiece);
  EXPECT_EQ(c.data.max_text_len, 16);  // not an architecture key: the base's stays
  // Set again in the file itself, or with --set, a key must agree again.
  const auto own = dir.write("own.yaml",
                             "include: base.yaml\nmodel: {text: {hidden: 128, "
                             "pretrained: " +
                                 kBert + "}}\n");
  EXPECT_NE(error_of([&] {
              load_config(own);
            }).find(own + ":2: model.text.hidden is 128 in the config but 16"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              load_config(path, {"model.text.layers=0"});
            }).find("--set model.text.layers=0: model.text.layers is 0 in the config but 1"),
            std::string::npos);
}

TEST(PretrainedConfig, TokenizerConfigJsonGivesTheWordPieceSettings) {
  TempDir dir;
  for (const char* f : {"config.json", "vocab.txt", "pytorch_model.bin"}) {
    fs::copy_file(kBert + "/" + f, dir.path() / f);
  }
  const std::string yaml =
      "model: {text: {pretrained: " + dir.path().string() + "}}\ndata: {max_text_len: 16}\n";
  Config c = parse_config(yaml);  // no tokenizer_config.json: BertTokenizer's defaults
  EXPECT_TRUE(c.tokenizer.lower_case);
  EXPECT_EQ(c.tokenizer.accents, Accents::automatic);
  EXPECT_TRUE(c.tokenizer.chinese_chars);
  dir.write("tokenizer_config.json",
            R"({"do_lower_case": false, "strip_accents": true, "tokenize_chinese_chars": false,
                "tokenizer_class": "BertTokenizer"})");
  c = parse_config(yaml);  // a cased BERT's
  EXPECT_FALSE(c.tokenizer.lower_case);
  EXPECT_EQ(c.tokenizer.accents, Accents::strip);
  EXPECT_FALSE(c.tokenizer.chinese_chars);
  EXPECT_EQ(c.origin("tokenizer.lower_case"),
            (dir.path() / "tokenizer_config.json").string() + " (do_lower_case)");
  dir.write("tokenizer_config.json", R"({"strip_accents": null})");
  EXPECT_EQ(parse_config(yaml).tokenizer.accents, Accents::automatic);
  dir.write("tokenizer_config.json", R"({"do_lower_case": "yes"})");
  EXPECT_NE(error_of([&] { parse_config(yaml); }).find("tokenizer_config.json"), std::string::npos);
}

TEST(PretrainedConfig, TheDumpMarksTheFoldersKeysAndReadsBackWithoutTheFolder) {
  const Config only = parse_config("model: {vision: {pretrained: " + kViT + "}}\n", "only.yaml");
  const std::string text = dump_config(only);
  EXPECT_NE(text.find("# from " + kViT + "/config.json (hidden_size); ViT width"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("image_size: 32"), std::string::npos);
  EXPECT_EQ(text.find("# from " + kViT + "/config.json (hidden_size); BERT width"),
            std::string::npos);
  // Resolving again changes nothing.
  Config again = only;
  resolve_pretrained(again);
  EXPECT_EQ(flatten(again), flatten(only));
  // A run's saved config is read with Folders::keep: it needs the folder no more.
  TempDir dir;
  std::string moved = text;
  for (size_t at = moved.find(kViT); at != std::string::npos; at = moved.find(kViT, at)) {
    moved.replace(at, kViT.size(), "/gone");
  }
  const auto path = dir.write("config.yaml", moved);
  Config saved = load_config(path, {}, Folders::keep);
  EXPECT_EQ(saved.model.vision.hidden, 32);
  EXPECT_EQ(saved.model.vision.pretrained, "/gone");
  saved.model.vision.pretrained = kViT;
  EXPECT_EQ(flatten(saved), flatten(only));
  EXPECT_THROW(load_config(path), ConfigError);  // resolving it would read the folder
}

TEST(PretrainedConfig, APreprocessorConfigGivesTheNormalisation) {
  TempDir dir;
  const fs::path folder = dir.path() / "vit";
  fs::create_directories(folder);
  fs::copy_file(kViT + "/config.json", folder / "config.json");
  dir.write("vit/preprocessor_config.json",
            R"({"do_normalize": true, "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225], "size": 32})");
  const std::string yaml = "model: {vision: {pretrained: " + folder.string() + "}}\n";
  const Config c = parse_config(yaml);
  EXPECT_EQ(c.data.mean, (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_EQ(c.data.stddev, (std::vector<double>{0.229, 0.224, 0.225}));
  EXPECT_EQ(c.origin("data.std"), (folder / "preprocessor_config.json").string() + " (image_std)");
  // The user's normalisation stays.
  EXPECT_EQ(parse_config(yaml, "<s>", {"data.mean=[0.1, 0.2, 0.3]"}).data.mean,
            (std::vector<double>{0.1, 0.2, 0.3}));
  // do_normalize false: xmodal's defaults stay.
  dir.write("vit/preprocessor_config.json", R"({"do_normalize": false, "image_mean": [0, 0, 0]})");
  EXPECT_EQ(parse_config(yaml).data.mean, Config{}.data.mean);
  // A malformed one is named.
  dir.write("vit/preprocessor_config.json", R"({"image_mean": [0.5, 0.5]})");
  EXPECT_NE(error_of([&] {
              parse_config(yaml);
            }).find("preprocessor_config.json: image_mean: expected 3 numbers"),
            std::string::npos);
}

TEST(PretrainedConfig, TheSeedConfigNeedsOnlyTheFolders) {
  // configs/vit_b16_bert_base.yaml names only the folders; with the published config.json of
  // google/vit-base-patch16-224-in21k and bert-base-uncased it resolves to the sizes it used to
  // spell out.
  TempDir dir;
  const auto vit = dir.write("vit/config.json", R"({
    "architectures": ["ViTModel"], "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0, "hidden_size": 768, "image_size": 224,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
    "model_type": "vit", "num_attention_heads": 12, "num_channels": 3,
    "num_hidden_layers": 12, "patch_size": 16, "qkv_bias": true})");
  const auto bert = dir.write("bert/config.json", R"({
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
    "num_hidden_layers": 12, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30522})");
  dir.write("bert/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
  const Config c = load_config(std::string(XMODAL_SOURCE_DIR) + "/configs/vit_b16_bert_base.yaml",
                               {"model.vision.pretrained=" + (dir.path() / "vit").string(),
                                "model.text.pretrained=" + (dir.path() / "bert").string()});
  const auto& v = c.model.vision;
  EXPECT_EQ(std::make_tuple(v.patch_size, v.hidden, v.layers, v.heads, v.mlp_dim),
            std::make_tuple(16, 768, 12, 12, 3072));
  const auto& t = c.model.text;
  EXPECT_EQ(
      std::make_tuple(t.hidden, t.layers, t.heads, t.intermediate, t.max_position, t.vocab_size),
      std::make_tuple(768, 12, 12, 3072, 512, int64_t{30522}));
  // vqa_v2.yaml, an included file, sets it too: the folder's value replaces it.
  EXPECT_EQ(c.data.image_size, 224);
  EXPECT_EQ(c.origin("data.image_size"),
            (dir.path() / "vit" / "config.json").string() + " (image_size)");
  EXPECT_TRUE(c.pretrained_keys.count("data.image_size"));
  EXPECT_EQ(c.tokenizer.type, TokenizerType::wordpiece);
  EXPECT_EQ(c.tokenizer.path, (dir.path() / "bert" / "vocab.txt").string());
  EXPECT_EQ(c.data.max_text_len, 40);
}

}  // namespace
}  // namespace xmodal::config
