// The parts of `xmodal serve`: the batching queue, request parsing (JSON limits, base64, paths
// confined to a folder, the key comparison and key files), the Prometheus text, and the HTTP
// layer with a toy route table on a real socket (limits, deadlines, pipelining). The whole
// server runs on a real socket in tests/apps/serve_test.py (CTest cli.serve).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "xmodal/serve/batcher.h"
#include "xmodal/serve/http_server.h"
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

TEST(Request, NumbersBeyondADoubleAreTheClientsFault) {
  std::string message;
  EXPECT_EQ(status_of([] { parse_body(R"({"top_k": 1e400})"); }, &message), 400);
  EXPECT_EQ(message, "body is not valid JSON: a number out of range (beyond a double)");
  EXPECT_EQ(status_of([] { parse_body("[1" + std::string(100000, '0') + "]"); }, &message), 400);
  EXPECT_LT(message.size(), 200u);
}

TEST(Request, KeyFilesHoldOneLineOfVisibleCharacters) {
  EXPECT_EQ(api_key_from("s3cret\n"), "s3cret");
  EXPECT_EQ(api_key_from("s3cret\r\n"), "s3cret");
  EXPECT_EQ(api_key_from("s3cret"), "s3cret");
  const auto why = [](const std::string& contents) {
    try {
      api_key_from(contents);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(why(""), "it is empty");
  EXPECT_EQ(why("\n"), "it is empty");
  EXPECT_EQ(why("ab\tcd").rfind("the key holds a tab at byte 2", 0), 0u) << why("ab\tcd");
  EXPECT_EQ(why("abcd\t\n").rfind("the key holds a tab at byte 4", 0), 0u);
  EXPECT_EQ(why("ab\ncd\n").rfind("the key holds more than one line", 0), 0u);
  EXPECT_EQ(why("abcd\n\n").rfind("the key holds more than one line", 0), 0u);
  EXPECT_EQ(why(std::string("ab\0cd", 5)).rfind("the key holds a NUL byte", 0), 0u);
  EXPECT_EQ(why("ab cd").rfind("the key holds a space", 0), 0u);
  EXPECT_EQ(why("k\xc3\xa9").rfind("the key holds a non-ASCII byte", 0), 0u);
}

TEST(Request, BearerSchemeIsCaseInsensitive) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer abc"), "abc");
  EXPECT_EQ(bearer_token("BEARER   abc "), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token("Bearerabc"), "");
  EXPECT_EQ(bearer_token("Bearer"), "");
}

TEST(Request, ClipKeepsOneShortLine) {
  EXPECT_EQ(clip("short"), "short");
  EXPECT_EQ(clip(std::string(300, 'x')), std::string(100, 'x') + "...");
  EXPECT_EQ(clip("ChooseQuantizationParams: bad range\nException raised from ...\nframe #0"),
            "ChooseQuantizationParams: bad range...");
  EXPECT_EQ(clip("a\r\nb", 10), "a...");
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
  m.error(ErrorKind::bad_base64);
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

// A client of the toy server below: one socket, raw bytes.
class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval t{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(const std::string& bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n <= 0) return;
      at += static_cast<size_t>(n);
    }
  }
  // Whether bytes have come (without reading them).
  bool answered() {
    char b;
    return ::recv(fd_, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }
  // Everything until the server closes (or 5 s pass).
  std::string read_all() {
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, 0)) > 0;) out.append(buf, n);
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// The status codes of the responses in `bytes`, in order.
std::vector<int> statuses(const std::string& bytes) {
  std::vector<int> out;
  for (size_t at = bytes.find("HTTP/1.1 "); at != std::string::npos;
       at = bytes.find("HTTP/1.1 ", at + 1)) {
    out.push_back(std::stoi(bytes.substr(at + 9, 3)));
  }
  return out;
}

class Http : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpOptions o;
    o.max_body_bytes = 1000;
    o.max_header_bytes = 2000;
    o.max_header_fields = 20;
    o.request_timeout = std::chrono::milliseconds(400);
    o.idle_timeout = std::chrono::milliseconds(400);
    o.max_connections = 8;
    o.workers = 2;
    std::map<std::string, HttpRoute> routes = {
        {"/quick",
         {"GET", RunOn::io_thread,
          [](const HttpRequest&, HttpResponse& res) { res.body = "quick"; }}},
        {"/echo",
         {"POST", RunOn::worker,
          [](const HttpRequest& req, HttpResponse& res) { res.body = req.body; }}},
        {"/throw",
         {"GET", RunOn::worker,
          [](const HttpRequest&, HttpResponse&) {
            throw std::runtime_error("first line\nframe #0 ...");
          }}},
    };
    HttpHooks hooks;
    hooks.error = [this](const HttpRequest&, int status, ErrorKind kind,
                         const std::string& message) {
      HttpResponse res;
      res.status = status;
      res.body = std::string(to_string(kind)) + ": " + message;
      std::lock_guard<std::mutex> lock(mutex_);
      errors_.push_back(res.body);
      return res;
    };
    server_ = std::make_unique<HttpServer>(o, routes, hooks);
    port_ = server_->start();
  }
  void TearDown() override {
    server_->stop();
    server_->wait();
  }
  std::string exchange(const std::string& bytes) {
    Client c(port_);
    c.send(bytes);
    return c.read_all();
  }
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::mutex mutex_;
  std::vector<std::string> errors_;
};

TEST_F(Http, PipelinedRequestsAreAnsweredInOrder) {
  const std::string bytes = exchange(
      "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nfirstGET /quick HTTP/1.1\r\n\r\n"
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n"
      "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statuses(bytes), (std::vector<int>{200, 200, 200, 404})) << bytes;
  const auto first = bytes.find("first"), quick = bytes.find("quick"),
             second = bytes.find("second");
  EXPECT_TRUE(first < quick && quick < second && second != std::string::npos) << bytes;
}

TEST_F(Http, LimitsAreCheckedBeforeTheBody) {
  // a Content-Length over the limit: 413 at once, without waiting for a body
  const auto start = Clock::now();
  EXPECT_EQ(statuses(exchange("POST /echo HTTP/1.1\r\nContent-Length: 1001\r\n\r\n")),
            std::vector<int>{413});
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(300));
  // nor a 100 Continue for it
  EXPECT_EQ(exchange("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: "
                     "999999999999\r\n\r\n")
                .rfind("HTTP/1.1 413", 0),
            0u);
  // a chunked body counted as it comes
  std::string chunks;
  for (int i = 0; i < 20; ++i) chunks += "64\r\n" + std::string(100, 'x') + "\r\n";
  EXPECT_EQ(statuses(exchange("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks +
                              "0\r\n\r\n")),
            std::vector<int>{413});
  EXPECT_EQ(statuses(exchange("POST /echo HTTP/1.1\r\nContent-Encoding: gzip\r\n"
                              "Content-Length: 3\r\n\r\nabc")),
            std::vector<int>{415});
  EXPECT_EQ(statuses(exchange("POST /echo HTTP/1.1\r\nContent-Type: multipart/form-data; "
                              "boundary=x\r\nContent-Length: 3\r\n\r\nabc")),
            std::vector<int>{415});
  EXPECT_EQ(statuses(exchange("POST /echo HTTP/1.1\r\n\r\nabc")), std::vector<int>{411});
  EXPECT_EQ(statuses(exchange("GET /quick HTTP/1.1\r\n" + std::string(3000, 'a') + ": b\r\n\r\n")),
            std::vector<int>{431});
  std::string fields;
  for (int i = 0; i < 21; ++i) fields += "X-" + std::to_string(i) + ": b\r\n";
  EXPECT_EQ(statuses(exchange("GET /quick HTTP/1.1\r\n" + fields + "\r\n")), std::vector<int>{431});
  EXPECT_EQ(statuses(exchange("GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n")),
            std::vector<int>{405});
  EXPECT_EQ(statuses(exchange("BREW /quick HTTP/1.1\r\nConnection: close\r\n\r\n")),
            std::vector<int>{405});
  EXPECT_EQ(statuses(exchange("not http\r\n\r\n")), std::vector<int>{400});
  // after all that, still serving
  EXPECT_EQ(statuses(exchange("GET /quick HTTP/1.1\r\nConnection: close\r\n\r\n")),
            std::vector<int>{200});
}

TEST_F(Http, TheRequestDeadlineCountsFromTheFirstByteNotPerRead) {
  Client c(port_);
  const auto start = Clock::now();
  c.send("GET /quick HTTP/1.1\r\nX-Slow: ");
  // a byte every 50 ms (each read is quick) until the answer comes
  while (Clock::now() - start < std::chrono::milliseconds(1500) && !c.answered()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    c.send("a");
  }
  std::string got;
  got = c.read_all();
  EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1500));
}

TEST_F(Http, AHandlersExceptionIsAOneLine500AndConnectionsAreCapped) {
  const std::string bytes = exchange("GET /throw HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statuses(bytes), std::vector<int>{500});
  EXPECT_NE(bytes.find("internal error: first line"), std::string::npos) << bytes;
  EXPECT_EQ(bytes.find("frame #0"), std::string::npos) << bytes;
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<Client>(port_));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Client extra(port_);
  const std::string refused = extra.read_all();
  EXPECT_TRUE(refused.empty() || refused.rfind("HTTP/1.1 503", 0) == 0) << refused;
  held.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(statuses(exchange("GET /quick HTTP/1.1\r\nConnection: close\r\n\r\n")),
            std::vector<int>{200});
}

TEST_F(Http, StopAnswersTheRequestInFlightAndRefusesLaterClients) {
  Client c(port_);
  c.send("POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nab");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server_->stop();
  c.send("cd");
  const std::string bytes = c.read_all();
  EXPECT_EQ(statuses(bytes), std::vector<int>{200}) << bytes;
  EXPECT_NE(bytes.find("Connection: close"), std::string::npos) << bytes;
  EXPECT_NE(bytes.find("abcd"), std::string::npos) << bytes;
  server_->wait();
  EXPECT_FALSE(Client(port_).connected());
}

}  // namespace
}  // namespace xmodal::serve
