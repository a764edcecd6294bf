#include "xmodal/data/coco.h"

#include <gtest/gtest.h>

#include "../support/temp_dir.h"
#include "xmodal/data/karpathy.h"
#include "xmodal/data/vqa.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal_test_paths.h"

namespace xmodal::data {
namespace {

const std::string kCoco = std::string(XMODAL_TEST_DATA) + "/coco";
const std::string kVqa = std::string(XMODAL_TEST_DATA) + "/vqa";

TEST(Coco, ReadsRealVal2017Annotations) {
  BadInputPolicy policy;
  const CocoSet set = read_coco(kCoco, "val2017", policy);
  ASSERT_EQ(set.categories.size(), 80u);
  EXPECT_EQ(set.categories.front().name, "person");
  EXPECT_EQ(set.categories.back().id, 90);  // ids are not contiguous
  EXPECT_EQ(set.category_index.at(90), 79);
  EXPECT_EQ(set.images.size(), 79u);
  const CocoImage& image = set.images[set.image_index.at(139)];
  EXPECT_EQ(image.path, kCoco + "/images/val2017/000000000139.jpg");
  EXPECT_EQ(image.width, 640);
  EXPECT_EQ(image.counts[set.category_index.at(1)], 2);   // people
  EXPECT_EQ(image.counts[set.category_index.at(86)], 4);  // vases
  int total = 0;
  for (int n : image.counts) total += n;
  EXPECT_EQ(total, 20);
  EXPECT_EQ(image.captions.size(), 5u);
  // 34417: 13 bananas plus a crowd region of bananas -> count kept, marked as crowd
  const CocoImage& crowd = set.images[set.image_index.at(34417)];
  EXPECT_EQ(crowd.counts[set.category_index.at(60)], 13);
  EXPECT_EQ(crowd.crowd[set.category_index.at(60)], 1);
  EXPECT_EQ(crowd.crowd[set.category_index.at(1)], 0);
  EXPECT_EQ(policy.skipped, 0);
}

TEST(Coco, CaptionsAloneWithoutInstances) {
  BadInputPolicy policy;
  const CocoSet set = read_coco_captions(kCoco, "val2017", policy);
  EXPECT_EQ(set.images.size(), 79u);
  EXPECT_TRUE(set.categories.empty());
  const CocoImage& image = set.images[set.image_index.at(139)];
  EXPECT_EQ(image.path, kCoco + "/images/val2017/000000000139.jpg");
  EXPECT_EQ(image.captions.size(), 5u);
}

// The Karpathy split layout (tests/data/coco/dataset_coco.json: two real val2017 images).
TEST(Karpathy, ReadsTheSplitFileAsPublished) {
  BadInputPolicy policy;
  const std::string file = kCoco + "/dataset_coco.json";
  const auto test = read_karpathy(kCoco, file, "test", policy);
  ASSERT_EQ(test.size(), 1u);
  EXPECT_EQ(test[0].id, 139);                                           // cocoid
  EXPECT_EQ(test[0].path, kCoco + "/images/val2017/000000000139.jpg");  // ROOT/images/filepath
  ASSERT_EQ(test[0].captions.size(), 5u);
  EXPECT_EQ(test[0].captions[0],
            read_coco(kCoco, "val2017", policy)
                .images[read_coco(kCoco, "val2017", policy).image_index.at(139)]
                .captions[0]);
  // train takes restval too, as retrieval papers train on it
  const auto train = read_karpathy(kCoco, file, "train", policy);
  ASSERT_EQ(train.size(), 1u);
  EXPECT_EQ(train[0].id, 34417);
  EXPECT_TRUE(read_karpathy(kCoco, file, "val", policy).empty());

  // Flickr30k's layout: no filepath, no cocoid (imgid); an image without sentences is bad
  xmodal::testing::TempDir dir;
  const std::string flickr = (dir.path() / "dataset_flickr30k.json").string();
  io::write_file_atomic(
      flickr,
      R"({"images": [{"filename": "1000092795.jpg", "imgid": 0, "split": "train", "sentences": )"
      R"([{"raw": "Two young guys with shaggy hair look at their hands ."}]},)"
      R"( {"filename": "10002456.jpg", "imgid": 1, "split": "train", "sentences": []}],)"
      R"( "dataset": "flickr30k"})");
  EXPECT_THROW(read_karpathy(dir.path().string(), flickr, "train", policy), std::runtime_error);
  BadInputPolicy skip;
  skip.skip = true;
  const auto f = read_karpathy(dir.path().string(), flickr, "train", skip);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].id, 0);
  EXPECT_EQ(f[0].path, (dir.path() / "1000092795.jpg").string());
  EXPECT_EQ(skip.skipped, 1);
  // a record without "split" names the file and the record
  io::write_file_atomic(flickr, R"({"images": [{"filename": "a.jpg", "imgid": 0}]})");
  try {
    read_karpathy(dir.path().string(), flickr, "train", policy);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("images[0]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("split"), std::string::npos) << e.what();
  }
}

TEST(Coco, BadRecordsFailOrAreCountedAndMalformedJsonNamesTheByte) {
  xmodal::testing::TempDir dir;
  dir.write("annotations/instances_s.json",
            R"({"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
                "categories": [{"id": 5, "name": "bag"}],
                "annotations": [{"image_id": 1, "category_id": 5}, {"image_id": 9, "category_id": 5},
                                {"image_id": 1, "category_id": 7}]})");
  BadInputPolicy fail;
  try {
    read_coco(dir.path().string(), "s", fail);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("instances_s.json: annotations[1]: unknown image_id 9"),
              std::string::npos)
        << e.what();
  }
  BadInputPolicy skip;
  skip.skip = true;
  const CocoSet set = read_coco(dir.path().string(), "s", skip);
  EXPECT_EQ(skip.skipped, 2);
  EXPECT_EQ(set.images[0].counts[0], 1);
  EXPECT_EQ(set.images[1].counts[0], 0);  // an image without annotations counts zero objects

  dir.write("annotations/instances_m.json", "{\"images\": [{\"id\": 1,, }]}");
  try {
    read_coco(dir.path().string(), "m", fail);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("instances_m.json: malformed JSON at byte 22"),
              std::string::npos)
        << e.what();
  }
  dir.write("annotations/instances_t.json",
            R"({"images": [{"id": "x", "file_name": "a"}], "categories": []})");
  try {
    read_coco(dir.path().string(), "t", fail);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("images[0].id: expected an integer, got a string"),
              std::string::npos)
        << e.what();
  }
}

TEST(Vqa, ReadsRealQuestionsAndAnnotations) {
  BadInputPolicy policy;
  const VqaSet set = read_vqa(kVqa, "train2014", policy);
  ASSERT_EQ(set.questions.size(), 3u);
  EXPECT_TRUE(set.has_annotations);
  const VqaQuestion& q = set.questions[1];
  EXPECT_EQ(q.question_id, 458752001);
  EXPECT_EQ(q.question, "What position is this man playing?");
  EXPECT_EQ(q.answers.size(), 10u);
  EXPECT_EQ(q.answers[1], "catcher");
  EXPECT_EQ(q.image_path, kVqa + "/train2014/COCO_train2014_000000458752.jpg");
}

TEST(Vqa, TestSplitWithoutAnnotationsLoadsForPrediction) {
  xmodal::testing::TempDir dir;
  dir.write("v2_OpenEnded_mscoco_test2015_questions.json",
            R"({"questions": [{"image_id": 1, "question": "what?", "question_id": 10}]})");
  BadInputPolicy policy;
  const VqaSet set = read_vqa(dir.path().string(), "test2015", policy);
  EXPECT_FALSE(set.has_annotations);
  ASSERT_EQ(set.questions.size(), 1u);
  EXPECT_TRUE(set.questions[0].answers.empty());
  dir.write("v2_mscoco_test2015_annotations.json",
            R"({"annotations": [{"question_id": 11, "answers": []}]})");
  EXPECT_THROW(read_vqa(dir.path().string(), "test2015", policy),
               std::runtime_error);  // unknown question
}

}  // namespace
}  // namespace xmodal::data
