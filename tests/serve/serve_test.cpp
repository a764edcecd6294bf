// The parts of `xmodal serve` below HTTP: the batching queue, request parsing (JSON limits,
// base64, paths confined to a folder, the key comparison) and the Prometheus text. The server
// itself runs on a real socket in tests/apps/serve_test.py (CTest cli.serve).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "xmodal/serve/batcher.h"
#include "xmodal/serve/metrics.h"
#include "xmodal/serve/request.h"

namespace xmodal::serve {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct TestItem {
  int group = 0;
  Clock::time_point enqueued = Clock::now();
  int value = 0;
};

std::vector<TestItem> items(std::initializer_list<std::pair<int, int>> groups_values) {
  std::vector<TestItem> v;
  for (auto [g, x] : groups_values) v.push_back({g, Clock::now(), x});
  return v;
}

TEST(BatchQueue, FullBatchesGoAtOnceAndGroupsNeverMix) {
  BatchQueue<TestItem> q({/*max_batch=*/3, std::chrono::seconds(10), /*capacity=*/16});
  auto a = items({{0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 5}, {0, 6}});
  ASSERT_TRUE(q.push(a));
  std::vector<TestItem> batch;
  const auto start = Clock::now();
  ASSERT_TRUE(q.pop(batch));  // 3 items ready: no waiting for the 10 s delay
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0].value, 1);
  EXPECT_EQ(batch[2].value, 3);
  q.stop();  // a stopped queue still hands out what it holds, without the delay
  ASSERT_TRUE(q.pop(batch));
  ASSERT_EQ(batch.size(), 1u);  // item 4; item 5 is another group
  EXPECT_EQ(batch[0].value, 4);
  ASSERT_TRUE(q.pop(batch));
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].group, 1);
  ASSERT_TRUE(q.pop(batch));
  EXPECT_EQ(batch[0].value, 6);
  EXPECT_FALSE(q.pop(batch));
  auto late = items({{0, 7}});
  EXPECT_FALSE(q.push(late)) << "a stopped queue takes nothing";
}

TEST(BatchQueue, APartialBatchWaitsForTheDelayAfterItsOldestItem) {
  BatchQueue<TestItem> q({8, std::chrono::milliseconds(50), 16});
  auto a = items({{0, 1}});
  ASSERT_TRUE(q.push(a));
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto b = items({{0, 2}});
    q.push(b);
  });
  std::vector<TestItem> batch;
  const auto start = Clock::now();
  ASSERT_TRUE(q.pop(batch));
  const auto waited = Clock::now() - start;
  later.join();
  EXPECT_EQ(batch.size(), 2u) << "the second item arrived within the delay";
  EXPECT_GE(waited, std::chrono::milliseconds(40));
}

TEST(BatchQueue, ARequestThatDoesNotFitIsRefusedWhole) {
  BatchQueue<TestItem> q({4, std::chrono::milliseconds(1), 3});
  auto a = items({{0, 1}, {0, 2}});
  ASSERT_TRUE(q.push(a));
  auto b = items({{0, 3}, {0, 4}});
  EXPECT_FALSE(q.push(b));
  EXPECT_EQ(q.depth(), 2u);
  auto c = items({{0, 5}});
  EXPECT_TRUE(q.push(c));
  EXPECT_EQ(q.depth(), 3u);
}

TEST(BatchQueue, ManyProducersOneConsumerLoseNothing) {
  BatchQueue<TestItem> q({5, std::chrono::microseconds(200), 1000});
  std::atomic<int> sum{0}, count{0};
  std::thread consumer([&] {
    std::vector<TestItem> batch;
    while (q.pop(batch)) {
      EXPECT_LE(batch.size(), 5u);
      for (auto& i : batch) {
        sum += i.value;
        ++count;
      }
    }
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 1; i <= 100; ++i) {
        auto one = items({{0, p * 1000 + i}});
        while (!q.push(one)) std::this_thread::yield();
      }
    });
  }
  for (auto& t : producers) t.join();
  q.stop();
  consumer.join();
  EXPECT_EQ(count, 400);
  EXPECT_EQ(sum, (0 + 1000 + 2000 + 3000) * 100 + 4 * 5050);
}

int status_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const HttpError& e) {
    if (message != nullptr) *message = e.what();
    return e.status();
  }
  return 0;
}

TEST(Request, Base64RoundTripsEveryLengthAndRefusesWhatIsNot) {
  std::mt19937 rng(1);
  for (int n = 0; n < 40; ++n) {
    std::string bytes(static_cast<size_t>(n), '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    const std::string text = encode_base64(bytes);
    EXPECT_EQ(decode_base64(text, "f"), bytes) << n;
    // padding is optional
    std::string bare = text;
    while (!bare.empty() && bare.back() == '=') bare.pop_back();
    EXPECT_EQ(decode_base64(bare, "f"), bytes) << n;
  }
  EXPECT_EQ(decode_base64("data:image/png;base64,aGk=", "f"), "hi");
  std::string message;
  EXPECT_EQ(status_of([] { decode_base64("aGk$", "body.image"); }, &message), 400);
  EXPECT_NE(message.find("body.image: not base64 (a character outside the alphabet at offset 3)"),
            std::string::npos)
      << message;
  EXPECT_EQ(status_of([] { decode_base64("aGkxa", "f"); }), 400);  // 5 characters
  EXPECT_EQ(status_of([] { decode_base64("a===", "f"); }), 400);
  EXPECT_EQ(status_of([] { decode_base64("data:image/png,aGk=", "f"); }), 400);
}

TEST(Request, BodyParsingLimitsNestingBeforeParsing) {
  EXPECT_EQ(parse_body(R"({"a": [1, {"b": "[[[["}]})")["a"][1]["b"], "[[[[");
  std::string message;
  EXPECT_EQ(status_of([] { parse_body(std::string(1 << 20, '[')); }, &message), 400);
  EXPECT_NE(message.find("nested deeper than 16"), std::string::npos) << message;
  EXPECT_EQ(status_of([] { parse_body("  "); }, &message), 400);
  EXPECT_EQ(status_of([] { parse_body("{\"a\": }"); }, &message), 400);
  EXPECT_NE(message.find("body is not valid JSON: parse error at line 1, column 7"),
            std::string::npos)
      << message;
  EXPECT_EQ(status_of([] { parse_body("\"\xff\""); }), 400) << "invalid UTF-8";
}

TEST(Request, PathsStayInsideTheRoot) {
  const fs::path root = fs::temp_directory_path() / "xmodal_serve_paths";
  fs::remove_all(root);
  fs::create_directories(root / "sub");
  std::ofstream(root / "sub" / "a.png") << "x";
  std::ofstream(fs::temp_directory_path() / "xmodal_serve_outside.png") << "x";
  fs::create_symlink(fs::temp_directory_path() / "xmodal_serve_outside.png", root / "out.png");
  fs::create_symlink(root / "sub" / "a.png", root / "in.png");
  ASSERT_EQ(mkfifo((root / "fifo.png").c_str(), 0600), 0);
  const std::string r = root.string();
  EXPECT_EQ(resolve_under(r, "sub/a.png", "f"), fs::canonical(root / "sub" / "a.png").string());
  EXPECT_EQ(resolve_under(r, (root / "sub/a.png").string(), "f"),
            fs::canonical(root / "sub" / "a.png").string());
  EXPECT_EQ(resolve_under(r, "in.png", "f"), fs::canonical(root / "sub" / "a.png").string());
  EXPECT_EQ(status_of([&] { resolve_under(r, "../xmodal_serve_outside.png", "f"); }), 403);
  EXPECT_EQ(status_of([&] { resolve_under(r, "sub/../../etc/passwd", "f"); }), 403);
  EXPECT_EQ(status_of([&] { resolve_under(r, "/etc/passwd", "f"); }), 403);
  EXPECT_EQ(status_of([&] { resolve_under(r, "out.png", "f"); }), 403) << "a link out";
  EXPECT_EQ(status_of([&] { resolve_under(r, "missing.png", "f"); }), 400);
  EXPECT_EQ(status_of([&] { resolve_under(r, "sub", "f"); }), 400) << "a folder";
  EXPECT_EQ(status_of([&] { resolve_under(r, "fifo.png", "f"); }), 400) << "a FIFO";
  EXPECT_EQ(status_of([&] { resolve_under(r, ".", "f"); }), 403);
  EXPECT_EQ(status_of([&] { resolve_under(r, "", "f"); }), 400);
  fs::remove_all(root);
  fs::remove(fs::temp_directory_path() / "xmodal_serve_outside.png");
}

TEST(Request, KeysCompareByValue) {
  EXPECT_TRUE(constant_time_equal("s3cret", "s3cret"));
  EXPECT_FALSE(constant_time_equal("s3cret", "s3cre"));
  EXPECT_FALSE(constant_time_equal("s3cret", "s3cret!"));
  EXPECT_FALSE(constant_time_equal("s3cret", "S3cret"));
  EXPECT_FALSE(constant_time_equal("s3cret", ""));
  EXPECT_FALSE(constant_time_equal("", "")) << "no key configured is never a match";
}

TEST(Metrics, PrometheusTextCountsWhatWasRecorded) {
  Metrics m;
  m.set_queue_depth([] { return size_t{3}; });
  m.request("/v1/predict", 200, 0.004);
  m.request("/v1/predict", 200, 0.2);
  m.request("/v1/predict", 400, 0.001);
  m.request("other", 404, -1);
  m.queue_wait(0.002);
  m.batch(0.01, 5);
  m.batch(0.02, 1);
  m.error("bad_base64");
  m.image_decoded();
  const std::string text = m.render();
  const auto has = [&](const std::string& line) {
    EXPECT_NE(text.find("\n" + line + "\n"), std::string::npos) << line << "\n" << text;
  };
  has(R"(xmodal_requests_total{endpoint="/v1/predict",code="200"} 2)");
  has(R"(xmodal_requests_total{endpoint="other",code="404"} 1)");
  has(R"(xmodal_request_duration_seconds_bucket{endpoint="/v1/predict",le="0.005"} 2)");
  has(R"(xmodal_request_duration_seconds_bucket{endpoint="/v1/predict",le="+Inf"} 3)");
  has(R"(xmodal_request_duration_seconds_count{endpoint="/v1/predict"} 3)");
  has(R"(xmodal_batch_size_bucket{le="1"} 1)");
  has(R"(xmodal_batch_size_bucket{le="8"} 2)");
  has(R"(xmodal_batch_size_sum 6)");
  has("xmodal_inferences_total 6");
  has("xmodal_executions_total 2");
  has("xmodal_queue_depth 3");
  has("xmodal_images_decoded_total 1");
  has(R"(xmodal_errors_total{kind="bad_base64"} 1)");
  has("# TYPE xmodal_queue_duration_seconds histogram");
  EXPECT_EQ(text.find("endpoint=\"other\",le"), std::string::npos)
      << "no latency for requests that never reached a handler";
}

}  // namespace
}  // namespace xmodal::serve
