// Starting the real xmodal binary (and other programs) from a test, without a shell: arguments
// are passed as they are (quotes, newlines and all).
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "xmodal_test_paths.h"

namespace xmodal::testing {

/// Runs `program` with `args` (the environment plus the NAME=VALUE entries of `env`), its
/// stdout and stderr into the file `log`. Returns the exit code (128 + signal when killed),
/// or 0 at once with the child's pid in `*started` when `started` is given.
inline int run_program(const std::string& program, const std::vector<std::string>& args,
                       const std::string& log, const std::vector<std::string>& env = {},
                       pid_t* started = nullptr) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv = {const_cast<char*>(program.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  if (started) {
    *started = pid;
    return 0;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// run_program() of the xmodal binary of this build.
inline int run_xmodal(const std::vector<std::string>& args, const std::string& log,
                      const std::vector<std::string>& env = {}, pid_t* started = nullptr) {
  return run_program(XMODAL_BINARY, args, log, env, started);
}

/// A whole file ("" when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace xmodal::testing
