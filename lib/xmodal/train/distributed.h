// Data-parallel training on PyTorch's own distributed engine (c10d): a TCPStore rendezvous and a
// Gloo (CPU) or NCCL (CUDA) process group. Launched like torchrun (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment) or by `xmodal train --nproc N`
// (launch_local in launch.h), which starts N local workers itself.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/train/launch.h"

namespace xmodal::train {

/// torchrun's variables. WORLD_SIZE unset (or 1) is one process.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool enabled() const { return world_size > 1; }
};

/// Reads DistEnv from the environment. Throws std::invalid_argument naming a malformed or
/// inconsistent variable ("RANK=3 is not below WORLD_SIZE=2").
DistEnv dist_env_from_environment();

/// One process's membership of the group. Every collective must be called by every process in
/// the same order; one that waits longer than dist.timeout_s for the others (a dead or
/// unreachable process) throws std::runtime_error.
class Communicator {
 public:
  /// Rendezvous at MASTER_ADDR:MASTER_PORT (rank 0 serves the TCPStore) and builds the
  /// process group: dist.backend auto = NCCL on a CUDA device (when LibTorch has it), else Gloo.
  Communicator(const DistEnv& env, const config::DistConfig& config, const c10::Device& device);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const;
  int world_size() const;
  std::string backend() const;

  /// Sums `tensor` over the processes, in place.
  void all_reduce_sum(torch::Tensor& tensor);
  /// Every process's `tensor` [n_p, ...] concatenated along dim 0 in rank order (the row counts
  /// n_p may differ), without gradient.
  torch::Tensor all_gather(const torch::Tensor& tensor);
  /// Sums the gradients of `params` over the processes, in place: gradients are flattened into
  /// buckets of about dist.bucket_mb, every bucket's all-reduce is started, then all are waited
  /// for and copied back. Parameters without a gradient take part as zeros (every process
  /// must send the same buckets).
  void all_reduce_gradients(const std::vector<torch::Tensor>& params);
  /// Copies rank 0's values into `tensors` on every process. `timeout_s` > 0 replaces
  /// dist.timeout_s for this call (the others wait for rank 0's validation, however long; a
  /// dead rank 0 still fails them at once, as its connections close).
  void broadcast(std::vector<torch::Tensor> tensors, double timeout_s = 0);
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xmodal::train
