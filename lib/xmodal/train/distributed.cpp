// c10d's Gloo process group is compiled only with USE_C10D_GLOO (as PyTorch's own build does;
// cmake/XmodalTorch.cmake defines it, as LibTorch's CMake package does). NCCL's only on a CUDA
// build (USE_C10D_NCCL comes from libtorch_cuda's package).
#include "xmodal/build_config.h"
#if XMODAL_HAVE_DISTRIBUTED && !defined(USE_C10D_GLOO)
#define USE_C10D_GLOO 1
#endif
#include "xmodal/core/error.h"
#include "xmodal/train/distributed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>
#if XMODAL_HAVE_DISTRIBUTED
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "xmodal/core/logging.h"

namespace xmodal::train {
namespace {

int env_int(const char* name, int fallback, int min_value) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < min_value || value > 1 << 20) {
    throw std::invalid_argument(std::string(name) + "=" + text +
                                " is not an integer >= " + std::to_string(min_value));
  }
  return static_cast<int>(value);
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv env;
  env.world_size = env_int("WORLD_SIZE", 1, 1);
  env.rank = env_int("RANK", 0, 0);
  env.local_rank = env_int("LOCAL_RANK", env.rank, 0);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) env.master_addr = addr;
  env.master_port = env_int("MASTER_PORT", env.master_port, 1);
  if (env.master_port > 65535) {
    throw std::invalid_argument("MASTER_PORT=" + std::to_string(env.master_port) +
                                " is not a TCP port");
  }
  if (env.rank >= env.world_size) {
    throw std::invalid_argument("RANK=" + std::to_string(env.rank) +
                                " is not below WORLD_SIZE=" + std::to_string(env.world_size));
  }
  return env;
}

#if XMODAL_HAVE_DISTRIBUTED

struct Communicator::Impl {
  DistEnv env;
  config::DistConfig config;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  // The back end itself (LibTorch 2.x: a c10d::Backend; a ProcessGroup would only dispatch to it
  // by device type, and each process here uses one device).
  c10::intrusive_ptr<c10d::Backend> group;
  std::string backend;

  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      work->wait(timeout);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("[dist] rank ") + std::to_string(env.rank) + ": " +
                               what + " failed (another process died, or did not answer within " +
                               "dist.timeout_s = " + std::to_string(config.timeout_s) +
                               " s): " + first_line(e.what()));
    }
  }
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
};

Communicator::Communicator(const DistEnv& env, const config::DistConfig& config,
                           const c10::Device& device)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.env = env;
  m.config = config;
  m.timeout = std::chrono::milliseconds(static_cast<int64_t>(config.timeout_s * 1000));
  const bool cuda = device.is_cuda();
  const bool nccl = config.backend == config::DistBackend::nccl ||
                    (config.backend == config::DistBackend::automatic && cuda);
#ifndef USE_C10D_NCCL
  if (nccl) {
    throw std::invalid_argument(
        "dist.backend nccl needs CUDA devices and a LibTorch built with NCCL; this xmodal is "
        "built against a CPU LibTorch (use dist.backend gloo, or build with "
        "scripts/build_cuda.sh)");
  }
#else
  if (nccl && !cuda) {
    throw std::invalid_argument(
        "dist.backend nccl needs CUDA devices (run.device cuda); use "
        "dist.backend gloo on the CPU");
  }
#endif
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env.master_port);
    options.isServer = env.rank == 0;
    options.numWorkers = static_cast<size_t>(env.world_size);
    options.waitWorkers = true;
    options.timeout = m.timeout;
    m.store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
#ifdef USE_C10D_NCCL
    if (nccl) {
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = m.timeout;
      m.group = c10::make_intrusive<c10d::ProcessGroupNCCL>(m.store, env.rank, env.world_size,
                                                            nccl_options);
      m.backend = "nccl";
      return;
    }
#endif
    auto gloo = c10d::ProcessGroupGloo::Options::create(m.timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname) {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost") {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    gloo->threads = 2;
    m.group = c10::make_intrusive<c10d::ProcessGroupGloo>(m.store, env.rank, env.world_size, gloo);
    m.backend = "gloo";
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error("[dist] rank " + std::to_string(env.rank) + " of " +
                             std::to_string(env.world_size) + ": rendezvous at " + env.master_addr +
                             ":" + std::to_string(env.master_port) +
                             " failed within dist.timeout_s = " + std::to_string(config.timeout_s) +
                             " s: " + Impl::first_line(e.what()));
  }
}

Communicator::~Communicator() = default;

int Communicator::rank() const { return impl_->env.rank; }
int Communicator::world_size() const { return impl_->env.world_size; }
std::string Communicator::backend() const { return impl_->backend; }

void Communicator::all_reduce_sum(torch::Tensor& tensor) {
  std::vector<torch::Tensor> tensors = {tensor};
  impl_->wait(impl_->group->allreduce(tensors), "all-reduce");
}

torch::Tensor Communicator::all_gather(const torch::Tensor& tensor) {
  torch::NoGradGuard no_grad;
  const int world = world_size();
  // The row counts first (each process fills its own entry), then equal-sized pieces.
  auto rows = torch::zeros({world}, torch::kLong);
  rows[rank()] = tensor.size(0);
  all_reduce_sum(rows);
  const int64_t most = rows.max().item<int64_t>();
  auto sizes = tensor.sizes().vec();
  sizes[0] = most;
  auto padded = torch::zeros(sizes, tensor.options());
  padded.narrow(0, 0, tensor.size(0)).copy_(tensor.detach());
  std::vector<torch::Tensor> inputs = {padded.contiguous()};
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < world; ++r) outputs[0].push_back(torch::empty_like(padded));
  impl_->wait(impl_->group->allgather(outputs, inputs), "all-gather");
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < world; ++r)
    parts.push_back(outputs[0][r].narrow(0, 0, rows[r].item<int64_t>()));
  return torch::cat(parts);
}

void Communicator::all_reduce_gradients(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  // Which parameters have a gradient anywhere: the others stay without one (as in a single
  // process, so AdamW skips them), and every process sends the same buckets.
  std::vector<torch::Tensor> trainable;
  for (const auto& p : params) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  if (trainable.empty()) return;
  auto has_grad = torch::zeros({static_cast<int64_t>(trainable.size())}, torch::kInt32);
  for (size_t i = 0; i < trainable.size(); ++i) {
    if (trainable[i].grad().defined()) has_grad[static_cast<int64_t>(i)] = 1;
  }
  all_reduce_sum(has_grad);
  const auto flags = has_grad.accessor<int32_t, 1>();

  const int64_t bucket_bytes =
      std::max<int64_t>(1, static_cast<int64_t>(impl_->config.bucket_mb * 1024 * 1024));
  struct Bucket {
    std::vector<torch::Tensor> params;
    torch::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets(1);
  int64_t bytes = 0;
  for (size_t i = 0; i < trainable.size(); ++i) {
    if (flags[static_cast<int64_t>(i)] == 0) continue;
    const auto& p = trainable[i];
    const int64_t size = p.numel() * static_cast<int64_t>(p.element_size());
    auto& current = buckets.back();
    if (!current.params.empty() &&
        (bytes + size > bucket_bytes || current.params.front().scalar_type() != p.scalar_type())) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().params.push_back(p);
    bytes += size;
  }
  for (auto& b : buckets) {
    if (b.params.empty()) continue;
    std::vector<torch::Tensor> parts;
    for (const auto& p : b.params) {
      parts.push_back(p.grad().defined() ? p.grad().reshape(-1)
                                         : torch::zeros({p.numel()}, p.options()));
    }
    b.flat = torch::cat(parts);
    std::vector<torch::Tensor> io = {b.flat};
    b.work = impl_->group->allreduce(io);
  }
  for (auto& b : buckets) {
    if (b.params.empty()) continue;
    impl_->wait(b.work, "gradient all-reduce");
    int64_t offset = 0;
    for (const auto& p : b.params) {
      auto summed = b.flat.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(summed);
      } else {
        p.mutable_grad() = summed.clone();
      }
      offset += p.numel();
    }
  }
}

void Communicator::broadcast(std::vector<torch::Tensor> tensors, double timeout_s) {
  if (tensors.empty()) return;
  torch::NoGradGuard no_grad;
  const auto saved = impl_->timeout;
  if (timeout_s > 0)
    impl_->timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  try {
    for (auto& t : tensors) {
      std::vector<torch::Tensor> one = {t};
      c10d::BroadcastOptions options;
      options.timeout = impl_->timeout;
      impl_->wait(impl_->group->broadcast(one, options), "broadcast");
    }
  } catch (...) {
    impl_->timeout = saved;
    throw;
  }
  impl_->timeout = saved;
}

void Communicator::barrier() { impl_->wait(impl_->group->barrier(), "barrier"); }

#else  // XMODAL_HAVE_DISTRIBUTED

namespace {
constexpr const char* kNoDistributed =
    "distributed training is not in this build (configured with -DXMODAL_WITH_DISTRIBUTED=OFF)";
}  // namespace

struct Communicator::Impl {};

Communicator::Communicator(const DistEnv&, const config::DistConfig&, const c10::Device&) {
  throw std::invalid_argument(kNoDistributed);
}
Communicator::~Communicator() = default;
int Communicator::rank() const { return 0; }
int Communicator::world_size() const { return 1; }
std::string Communicator::backend() const { return "none"; }
void Communicator::all_reduce_sum(torch::Tensor&) { throw std::logic_error(kNoDistributed); }
torch::Tensor Communicator::all_gather(const torch::Tensor&) {
  throw std::logic_error(kNoDistributed);
}
void Communicator::all_reduce_gradients(const std::vector<torch::Tensor>&) {
  throw std::logic_error(kNoDistributed);
}
void Communicator::broadcast(std::vector<torch::Tensor>, double) {
  throw std::logic_error(kNoDistributed);
}
void Communicator::barrier() { throw std::logic_error(kNoDistributed); }

#endif  // XMODAL_HAVE_DISTRIBUTED

// ---- the local launcher ----
namespace {

std::atomic<int> forwarded_signal{0};

void remember_signal(int signal) { forwarded_signal.store(signal); }

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("launcher: cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("launcher: cannot find a free TCP port on 127.0.0.1");
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

int launch_local(int nproc, const std::vector<std::string>& argv, double grace_seconds) {
#if !XMODAL_HAVE_DISTRIBUTED
  if (nproc > 1) {
    throw OptionError("train", "{nproc} " + std::to_string(nproc) +
                                   ": distributed training is not in this build (configured with "
                                   "-DXMODAL_WITH_DISTRIBUTED=OFF)");
  }
#endif
  if (nproc < 1) throw OptionError("train", "{nproc} must be >= 1");
  if (argv.empty()) throw std::invalid_argument("launcher: no program to run");
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) throw std::runtime_error("launcher: cannot find this program (/proc/self/exe)");
  const int port = free_port();
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  struct sigaction action {};
  action.sa_handler = remember_signal;
  struct sigaction old_int {
  }, old_term{};
  ::sigaction(SIGINT, &action, &old_int);
  ::sigaction(SIGTERM, &action, &old_term);

  std::vector<pid_t> pids;
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("launcher: fork failed");
    if (pid == 0) {
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::execv(exe.c_str(), args.data());
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  log::info("[dist] started {} local processes (ranks 0-{}) on 127.0.0.1:{}", nproc, nproc - 1,
            port);

  int result = 0;
  size_t running = pids.size();
  bool stopping = false;
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  const auto stop_all = [&](int signal) {
    for (const pid_t pid : pids) {
      if (pid > 0) ::kill(pid, signal);
    }
  };
  while (running > 0) {
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (auto& pid : pids) {
        if (pid != done) continue;
        pid = -1;
        --running;
        const int code = exit_code(status);
        if (code != 0 && result == 0) {
          result = code;
          if (!stopping) {
            log::error("[dist] a worker exited with code {}; stopping the others", code);
            stopping = true;
            stop_all(SIGTERM);
            kill_deadline = std::chrono::steady_clock::now() +
                            std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000));
          }
        }
      }
      continue;
    }
    if (const int signal = forwarded_signal.exchange(0); signal != 0 && !stopping) {
      stopping = true;
      stop_all(signal);  // the workers checkpoint and stop on SIGINT / SIGTERM
    }
    if (std::chrono::steady_clock::now() > kill_deadline) {
      stop_all(SIGKILL);
      kill_deadline = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace xmodal::train
