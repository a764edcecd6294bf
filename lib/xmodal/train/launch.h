// `xmodal train --nproc N`: N local training processes without torchrun (no Python needed).
// A light header (no LibTorch) for the command-line layer; defined in distributed.cpp.
#pragma once

#include <string>
#include <vector>

namespace xmodal::train {

/// Runs `argv` (the program's arguments, argv[0] included) as N local processes of this
/// executable with RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR=127.0.0.1 / MASTER_PORT (a free
/// port) set. When one exits with an error or is killed, the others get SIGTERM and, after
/// `grace_seconds`, SIGKILL. SIGINT / SIGTERM to the launcher are passed on to the workers.
/// Returns the first non-zero exit code (128 + signal for a killed worker), or 0.
int launch_local(int nproc, const std::vector<std::string>& argv, double grace_seconds = 30);

}  // namespace xmodal::train
