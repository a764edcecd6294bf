#include "xmodal/serve/http_server.h"

#include <fmt/format.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace xmodal::serve {
namespace {
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// At most `n` bytes of `s` for an error message (a hostile value must not fill the answer).
std::string clipped(std::string_view s, size_t n = 100) {
  return s.size() <= n ? std::string(s) : std::string(s.substr(0, n)) + "...";
}

// Threads that run the handlers of RunOn::worker routes (they block on the model). They are
// started as they are needed, up to `max_threads`: a pool that started them all would let every
// one of them run a request in turn and keep its stack's pages (128 threads, ~0.3 MB each: +38
// MiB of peak RSS in scripts/bench/serve.sh against as many threads as requests at once).
class WorkerPool {
 public:
  explicit WorkerPool(int max_threads) : max_(static_cast<size_t>(std::max(1, max_threads))) {}
  ~WorkerPool() { stop(); }
  void post(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
    if (idle_ == 0 && !stopped_ && threads_.size() < max_) {
      threads_.emplace_back([this] { work(); });
    } else {
      ready_.notify_one();
    }
  }
  // Runs what is queued, then joins.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;  // no thread is started after this
    }
    ready_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      ++idle_;
      ready_.wait(lock, [&] { return !jobs_.empty() || stopped_; });
      --idle_;
      if (jobs_.empty()) return;
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      job = nullptr;  // what it holds (the connection) is released outside the lock
      lock.lock();
    }
  }
  const size_t max_;
  std::vector<std::thread> threads_;
  std::deque<std::function<void()>> jobs_;
  std::mutex mutex_;
  std::condition_variable ready_;
  size_t idle_ = 0;
  bool stopped_ = false;
};

class Session;

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(HttpOptions o, std::map<std::string, HttpRoute> r, HttpHooks h)
      : options(std::move(o)),
        routes(std::move(r)),
        hooks(std::move(h)),
        acceptor(net::make_strand(io)),
        pool(options.workers) {}

  HttpOptions options;
  std::map<std::string, HttpRoute> routes;
  HttpHooks hooks;
  net::io_context io;
  tcp::acceptor acceptor;
  WorkerPool pool;
  std::vector<std::thread> io_threads;
  std::atomic<bool> stopping{false}, started{false};
  std::atomic<int> connections{0};
  // the open connections, to tell them about stop()
  std::mutex sessions_mutex;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;
  uint64_t next_id = 0;

  void accept();
  void take(tcp::socket socket);
  HttpResponse error(const HttpRequest& req, int status, ErrorKind kind,
                     const std::string& message) const {
    return hooks.error(req, status, kind, message);
  }
};

namespace {

// One connection: wait for a request's first byte (idle deadline), read its header, decide
// what can be decided, read its body (the whole-request deadline running since the first
// byte), run the route, write the answer; then the next request or close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::Impl> server, uint64_t id)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        server_(std::move(server)),
        id_(id) {
    boost::system::error_code ec;
    const auto remote = socket_.remote_endpoint(ec);
    if (!ec) remote_ = remote.address().to_string();
    // an answer leaves in one write, but a client's next request must not wait on Nagle
    socket_.set_option(tcp::no_delay(true), ec);
  }
  ~Session() {
    {
      std::lock_guard<std::mutex> lock(server_->sessions_mutex);
      server_->sessions.erase(id_);
    }
    --server_->connections;
  }

  void run() {
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->wait_request(); });
  }

  // stop(): an idle connection gets a short grace for a request already on its way.
  void on_stop() {
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      if (self->idle_) self->arm(std::chrono::milliseconds(500));
    });
  }

 private:
  const HttpOptions& options() const { return server_->options; }

  // The deadline: when it passes, the pending operation is cancelled and sees expired_.
  void arm(Clock::duration d) {
    const uint64_t generation = ++generation_;
    expired_ = false;
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this(), generation](boost::system::error_code ec) {
      if (ec || generation != self->generation_) return;
      self->expired_ = true;
      self->socket_.cancel(ec);
    });
  }
  void disarm() {
    ++generation_;
    timer_.cancel();
  }

  void wait_request() {
    if (buffer_.size() > 0) return read_header();  // pipelined: already here
    idle_ = true;
    arm(server_->stopping ? std::chrono::milliseconds(500) : options().idle_timeout);
    socket_.async_read_some(buffer_.prepare(16 << 10),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              self->idle_ = false;
                              if (ec)
                                return self->close();  // went away, idle too long, or stopping
                              self->buffer_.commit(n);
                              self->read_header();
                            });
  }

  void read_header() {
    start_ = Clock::now();
    arm(options().request_timeout);
    req_ = HttpRequest{};
    req_.remote_addr = remote_;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(
        std::min<size_t>(options().max_header_bytes, std::numeric_limits<uint32_t>::max())));
    // the body limit is set once the header is in: Content-Encoding and the route are
    // looked at first (a 415 says more than a 413 for a compressed body)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](boost::system::error_code ec, size_t) { self->on_header(ec); });
  }

  // An error found while reading: answer it (when the client is still there) and close.
  void read_failed(boost::system::error_code ec, bool in_body) {
    if (expired_) {
      return fail(408, ErrorKind::timeout,
                  fmt::format("the request did not arrive within {} s",
                              options().request_timeout.count() / 1000.0),
                  false, true);
    }
    if (ec == http::error::header_limit) {
      return fail(431, ErrorKind::too_large,
                  fmt::format("request header over {} bytes", options().max_header_bytes), true);
    }
    if (ec == http::error::body_limit) return too_large();
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == net::error::eof || ec == net::error::connection_reset ||
        ec == net::error::operation_aborted || ec == net::error::broken_pipe) {
      return close();  // the client went away (or stop() closed an idle connection)
    }
    fail(400, ErrorKind::bad_request,
         fmt::format("malformed request{}: {}", in_body ? " body" : "", ec.message()), true);
  }

  void too_large() {
    fail(413, ErrorKind::too_large,
         fmt::format("body over --max-body-mb {} ({} bytes)",
                     static_cast<double>(options().max_body_bytes) / (1024.0 * 1024.0),
                     options().max_body_bytes),
         true);
  }

  void on_header(boost::system::error_code ec) {
    if (ec) return read_failed(ec, false);
    const auto& h = parser_->get();
    keep_alive_ = h.keep_alive();
    req_.method = std::string(h.method_string());
    req_.target = std::string(h.target());
    req_.path = req_.target.substr(0, req_.target.find('?'));
    size_t fields = 0;
    for (const auto& f : h) {
      if (++fields > options().max_header_fields) {
        return fail(431, ErrorKind::too_large,
                    fmt::format("more than {} header fields", options().max_header_fields), true);
      }
      req_.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    const bool chunked = parser_->chunked();
    const auto length = parser_->content_length();
    const bool has_body = chunked || (length && *length > 0);
    if (server_->hooks.check) {
      if (auto refused = server_->hooks.check(req_)) {
        return answer(std::move(*refused), has_body);
      }
    }
    const auto found = server_->routes.find(req_.path);
    if (found == server_->routes.end()) {
      return fail(404, ErrorKind::not_found,
                  "no endpoint " + clipped(req_.method, 20) + " " + clipped(req_.path), has_body);
    }
    route_ = &found->second;
    if (req_.method != route_->method) {
      return fail(405, ErrorKind::not_found, "use " + route_->method + " for " + found->first,
                  has_body);
    }
    const std::string encoding = req_.header("Content-Encoding");
    if (!encoding.empty() && !iequals(trim(encoding), "identity")) {
      return fail(415, ErrorKind::unsupported,
                  "Content-Encoding " + clipped(encoding, 40) +
                      " is not accepted: send the body uncompressed",
                  has_body);
    }
    const std::string transfer = req_.header("Transfer-Encoding");
    if (!transfer.empty() && !iequals(trim(transfer), "chunked")) {
      return fail(415, ErrorKind::unsupported,
                  "Transfer-Encoding " + clipped(transfer, 40) +
                      " is not accepted: send the body plain or chunked",
                  has_body);
    }
    if (req_.method == "POST") {
      if (!chunked && !length) {
        return fail(411, ErrorKind::bad_request,
                    "a body needs a Content-Length (or Transfer-Encoding: chunked)", true);
      }
      if (length && *length > options().max_body_bytes) return too_large();
      const std::string type = req_.header("Content-Type");
      const std::string_view mime = trim(std::string_view(type).substr(0, type.find(';')));
      if (!mime.empty() && !iequals(mime, "application/json") && !iequals(mime, "text/plain") &&
          !(mime.size() > 5 && iequals(mime.substr(mime.size() - 5), "+json"))) {
        return fail(415, ErrorKind::unsupported,
                    "Content-Type " + clipped(mime, 60) +
                        " is not accepted: send JSON "
                        "(Content-Type: application/json)",
                    has_body);
      }
    }
    parser_->body_limit(options().max_body_bytes);
    if (has_body && iequals(trim(req_.header("Expect")), "100-continue") &&
        parser_->get().version() == 11) {
      // the body is wanted: say so, then read it (under the same deadline)
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      return http::async_write(
          socket_, *cont, [self = shared_from_this(), cont](boost::system::error_code ec, size_t) {
            if (ec) return self->read_failed(ec, true);
            self->read_body();
          });
    }
    read_body();
  }

  void read_body() {
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](boost::system::error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(boost::system::error_code ec) {
    if (ec) return read_failed(ec, true);
    disarm();
    keep_alive_ = parser_->get().keep_alive();
    req_.body = std::move(parser_->get().body());
    parser_.reset();
    if (route_->run == RunOn::io_thread) return answer(run_route(), false);
    auto guard = std::make_shared<net::executor_work_guard<net::io_context::executor_type>>(
        server_->io.get_executor());
    server_->pool.post([self = shared_from_this(), guard] {
      auto res = std::make_shared<HttpResponse>(self->run_route());
      net::post(self->socket_.get_executor(),
                [self, res] { self->answer(std::move(*res), false); });
    });
  }

  HttpResponse run_route() const {
    HttpResponse res;
    try {
      route_->handler(req_, res);
    } catch (const std::exception& e) {
      std::string what = e.what();
      what = clipped(what.substr(0, what.find('\n')), 200);
      res = server_->error(req_, 500, ErrorKind::internal, "internal error: " + what);
    } catch (...) {
      res = server_->error(req_, 500, ErrorKind::internal, "internal error: unknown exception");
    }
    return res;
  }

  // An error answer; body_unread as in answer().
  void fail(int status, ErrorKind kind, const std::string& message, bool body_unread,
            bool close = false) {
    answer(server_->error(req_, status, kind, message), body_unread, close);
  }

  // Writes `res`. body_unread: the request's body was not read (the connection then closes,
  // after a bounded discard of what the client still sends).
  void answer(HttpResponse res, bool body_unread, bool close = false) {
    close = close || body_unread || !keep_alive_ || server_->stopping;
    auto msg = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(res.status), 11);
    msg->set(http::field::content_type, res.content_type);
    for (const auto& [name, value] : res.headers) msg->set(name, value);
    msg->body() = std::move(res.body);
    msg->keep_alive(!close);
    msg->prepare_payload();
    status_ = res.status;
    arm(options().request_timeout);
    http::async_write(
        socket_, *msg,
        [self = shared_from_this(), msg, close, body_unread](boost::system::error_code ec, size_t) {
          self->disarm();
          if (self->server_->hooks.done) {
            self->server_->hooks.done(
                self->req_, self->status_,
                std::chrono::duration<double>(Clock::now() - self->start_).count());
          }
          if (ec) return self->close();
          if (close) return body_unread ? self->linger() : self->close();
          self->keep_alive_ = true;
          self->wait_request();
        });
  }

  // Half-close, then read and drop what the client still sends for a little while: a client
  // still writing its body then reads the answer instead of a connection reset.
  void linger() {
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    buffer_.clear();
    arm(std::chrono::seconds(2));
    discard();
  }
  void discard() {
    socket_.async_read_some(buffer_.prepare(64 << 10),
                            [self = shared_from_this()](boost::system::error_code ec, size_t) {
                              if (ec) return self->close();
                              self->discard();
                            });
  }

  void close() {
    disarm();
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  tcp::socket socket_;
  net::steady_timer timer_;
  std::shared_ptr<HttpServer::Impl> server_;
  uint64_t id_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest req_;
  const HttpRoute* route_ = nullptr;
  Clock::time_point start_ = Clock::now();
  uint64_t generation_ = 0;
  bool expired_ = false, idle_ = false, keep_alive_ = true;
  int status_ = 0;
};

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

bool HttpRequest::has_header(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return iequals(h.first, name); });
}

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(io),
                        [self = shared_from_this()](boost::system::error_code ec, tcp::socket s) {
                          if (!ec)
                            self->take(std::move(s));  // also when stopping: the client is answered
                          if (self->stopping || ec == net::error::operation_aborted) return;
                          self->accept();
                        });
}

void HttpServer::Impl::take(tcp::socket socket) {
  if (connections >= options.max_connections) {
    // over the limit: a short answer written without waiting, then close
    HttpRequest none;
    HttpResponse res = error(none, 503, ErrorKind::too_many_connections,
                             fmt::format("too many connections (--max-connections {}); retry "
                                         "shortly",
                                         options.max_connections));
    http::response<http::string_body> msg(static_cast<http::status>(res.status), 11);
    msg.set(http::field::content_type, res.content_type);
    msg.set(http::field::retry_after, "1");
    msg.body() = std::move(res.body);
    msg.keep_alive(false);
    msg.prepare_payload();
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    http::write(socket, msg, ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    return;
  }
  ++connections;
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex);
    const uint64_t id = next_id++;
    session = std::make_shared<Session>(std::move(socket), shared_from_this(), id);
    sessions.emplace(id, session);
  }
  session->run();
}

HttpServer::HttpServer(HttpOptions options, std::map<std::string, HttpRoute> routes,
                       HttpHooks hooks)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(routes), std::move(hooks))) {}

HttpServer::~HttpServer() {
  if (impl_->started) {
    stop();
    wait();
  }
}

int HttpServer::start() {
  Impl& s = *impl_;
  const auto& o = s.options;
  boost::system::error_code ec;
  tcp::resolver resolver(s.io);
  const auto found = resolver.resolve(o.host, std::to_string(o.port),
                                      tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (!ec && !found.empty()) {
    const tcp::endpoint at = found.begin()->endpoint();
    s.acceptor.open(at.protocol(), ec);
    if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) s.acceptor.bind(at, ec);
    // SOMAXCONN: 64 clients connecting at once must not lose SYNs (a p99 of seconds)
    if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec || found.empty()) {
    throw std::runtime_error(fmt::format(
        "serve: cannot listen on {}:{} ({}; address in use, or not an address of this machine?)",
        o.host, o.port, ec ? ec.message() : "no address"));
  }
  const int port = s.acceptor.local_endpoint().port();
  s.started = true;
  s.accept();
  for (int i = 0; i < std::max(1, o.io_threads); ++i) {
    s.io_threads.emplace_back([&s] { s.io.run(); });
  }
  return port;
}

void HttpServer::stop() {
  auto s = impl_;
  if (!s->started || s->stopping.exchange(true)) return;
  net::dispatch(s->acceptor.get_executor(), [s] {
    // take what the kernel has accepted already (those clients are answered), then close
    boost::system::error_code ec;
    s->acceptor.cancel(ec);
    s->acceptor.non_blocking(true, ec);
    for (;;) {
      tcp::socket socket(net::make_strand(s->io));
      s->acceptor.accept(socket, ec);
      if (ec) break;
      s->take(std::move(socket));
    }
    s->acceptor.close(ec);
    std::vector<std::shared_ptr<Session>> open;
    {
      std::lock_guard<std::mutex> lock(s->sessions_mutex);
      for (auto& [id, weak] : s->sessions) {
        if (auto session = weak.lock()) open.push_back(std::move(session));
      }
    }
    for (auto& session : open) session->on_stop();
  });
}

void HttpServer::wait() {
  Impl& s = *impl_;
  for (auto& t : s.io_threads) {
    if (t.joinable()) t.join();  // every connection closed
  }
  s.pool.stop();
}

bool HttpServer::stopping() const { return impl_->stopping; }

}  // namespace xmodal::serve
