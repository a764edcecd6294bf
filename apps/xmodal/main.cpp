#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "xmodal/cli.h"
#include "xmodal/core/runtime.h"

namespace {

// A closed stdin/stdout/stderr (`xmodal predict ... >&-`) would hand its number to the next
// file opened, and results meant for stdout would land in a checkpoint or a log. Each closed one
// is given /dev/null opened read-only, so that a write to it fails (EBADF) and is reported.
void occupy_closed_standard_descriptors() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int opened = ::open("/dev/null", O_RDONLY);
    if (opened >= 0 && opened != fd) {
      ::dup2(opened, fd);
      ::close(opened);
    }
  }
}

// OpenMP (libgomp) reads OMP_NUM_THREADS when it loads, before main, and every thread that is
// not an OpenMP thread (the serve loader, data workers) starts from that value: a count the
// machine cannot run (100000) crashes the first parallel region, and LibTorch stops with a stack
// trace on 0. A bad value is fixed in the environment and the program started again with it
// (once: the new environment passes), after one warning line.
void restart_with_sane_thread_variables(char** argv) {
  bool changed = false;
  for (const char* name : {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}) {
    const char* value = std::getenv(name);
    if (value == nullptr) continue;
    std::string replacement;
    const std::string warning =
        xmodal::check_thread_count_variable(name, value, xmodal::available_cores(), &replacement);
    if (warning.empty()) continue;
    std::fprintf(stderr, "xmodal: warning: %s\n", warning.c_str());
    if (replacement.empty()) {
      ::unsetenv(name);
    } else {
      ::setenv(name, replacement.c_str(), 1);
    }
    changed = true;
  }
  if (!changed) return;
  std::fflush(stderr);
  ::execv("/proc/self/exe", argv);
  std::fprintf(stderr, "xmodal: warning: cannot restart with the fixed variables (%s)\n",
               std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  occupy_closed_standard_descriptors();
  restart_with_sane_thread_variables(argv);
  // std::cout writes through a buffer of xmodal's own that keeps the errno of a failure.
  xmodal::cli::StdoutBuffer stdout_buffer;
  std::streambuf* const saved = std::cout.rdbuf(&stdout_buffer);
  int rc = xmodal::cli::run(argc, argv, std::cout, std::cerr);
  std::cout.flush();
  const bool lost = !std::cout;
  std::cout.rdbuf(saved);
  // What run() did not check itself (--help and --version return before its check). xmodal
  // writes stdout only through std::cout, never through C stdio.
  if (lost && rc == 0) {
    std::fprintf(stderr, "xmodal: error: writing to stdout failed (%s); the output is lost\n",
                 std::strerror(stdout_buffer.last_error()));
    rc = 1;
  }
  if (std::ferror(stderr) && rc == 0) rc = 1;  // messages were lost; nothing left to tell
  return rc;
}
