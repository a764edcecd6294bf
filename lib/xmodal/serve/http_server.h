// The HTTP/1.1 layer of `xmodal serve` (Boost.Beast, Debian's header-only libboost-dev), built
// to hold against hostile clients with bounded memory and threads:
//   - a few io threads serve every connection asynchronously (a slow client holds no thread);
//     at most max_connections are open (then a short 503 and close);
//   - a whole-request deadline from a request's first byte to its last body byte (408), an
//     idle deadline between requests; header size and field count limits (431); the body
//     limit checked on Content-Length before any body byte and on chunked bytes as they come
//     (413); compressed bodies and other transfer codings refused (415); no Range support (a
//     full 200, never a fragment);
//   - everything that can be decided from the header (auth, route, sizes, encoding) is, before
//     the body is read, and `Expect: 100-continue` is only answered when the body is wanted;
//     an answer sent before the body was read closes the connection after a bounded discard
//     of what the client still sends (so that it reads the answer instead of a reset);
//   - one request at a time per connection, the next read after the answer is written:
//     pipelined requests are answered in order;
//   - routes run either on the io thread (quick ones: /health, /metrics) or on a pool of
//     worker threads (ones that block on the model), so busy workers never delay the quick ones.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "xmodal/serve/errors.h"

namespace xmodal::serve {

struct HttpRequest {
  std::string method, target, path;  ///< path: the target without its query
  std::string remote_addr;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// The value of the first header named `name` (case-insensitive), "" when absent.
  std::string header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< more headers (Retry-After)
};

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 0;                                      ///< 0 = a free port
  size_t max_body_bytes = 32 << 20;                  ///< 413 above
  size_t max_header_bytes = 64 << 10;                ///< request line and fields; 431 above
  size_t max_header_fields = 100;                    ///< 431 above
  std::chrono::milliseconds request_timeout{10000};  ///< first byte to last body byte (408)
  std::chrono::milliseconds idle_timeout{5000};      ///< waiting for a request's first byte
  int max_connections = 512;                         ///< open at once; more get 503 and are closed
  int io_threads = 2;
  int workers = 64;  ///< threads running the pooled routes
};

/// Where a route's handler runs.
enum class RunOn { io_thread, worker };

struct HttpRoute {
  std::string method;  ///< GET or POST; another method on the path is answered 405
  RunOn run = RunOn::io_thread;
  /// Fills the response; an exception becomes a 500 (through HttpHooks::error).
  std::function<void(const HttpRequest&, HttpResponse&)> handler;
};

struct HttpHooks {
  /// The answer to an error found by the HTTP layer (404, 405, 408, 411, 413, 415, 431, 400,
  /// 500, 503 over the connection limit): `kind` is the error kind, `message` one line.
  std::function<HttpResponse(const HttpRequest&, int status, ErrorKind kind,
                             const std::string& message)>
      error;
  /// Called with the header only, before the route is looked up and before any body byte is
  /// read: an answer refuses the request (authentication).
  std::function<std::optional<HttpResponse>(const HttpRequest&)> check;
  /// After an answer was written (or failed to be): its status and the seconds since the
  /// request's first byte.
  std::function<void(const HttpRequest&, int status, double seconds)> done;
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, std::map<std::string, HttpRoute> routes, HttpHooks hooks);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds (backlog SOMAXCONN) and starts the io threads and the workers; returns the port.
  /// std::runtime_error when the address cannot be bound.
  int start();
  /// Graceful stop, from any thread, more than once: what the kernel already accepted is
  /// taken, the listening socket closes (later clients are refused at connect), requests
  /// being read or run are answered (Connection: close), idle connections are closed after a
  /// short grace.
  void stop();
  /// Blocks until every connection is closed and every worker is done (after stop()).
  void wait();
  bool stopping() const;

  struct Impl;  ///< (http_server.cpp: its connections hold it too)

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace xmodal::serve
