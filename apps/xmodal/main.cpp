#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "xmodal/cli.h"

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

}  // namespace

int main(int argc, char** argv) {
  occupy_closed_standard_descriptors();
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
