#include "xmodal/train/signals.h"

#include <atomic>
#include <csignal>

namespace xmodal::train {
namespace {

std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_signal.store(sig);
  std::signal(sig, SIG_DFL);  // a second Ctrl-C stops at once
}

}  // namespace

struct StopSignals::Saved {
  struct sigaction interrupt {};
  struct sigaction terminate {};
};

StopSignals::StopSignals(bool enabled) : enabled_(enabled) {
  g_signal.store(0);
  if (!enabled_) return;
  saved_ = std::make_unique<Saved>();
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &saved_->interrupt);
  sigaction(SIGTERM, &action, &saved_->terminate);
}

StopSignals::~StopSignals() {
  if (!enabled_) return;
  sigaction(SIGINT, &saved_->interrupt, nullptr);
  sigaction(SIGTERM, &saved_->terminate, nullptr);
}

int StopSignals::pending() { return g_signal.load(); }

}  // namespace xmodal::train
