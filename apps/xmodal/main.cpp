#include <iostream>

#include "xmodal/cli.h"

int main(int argc, char** argv) { return xmodal::cli::run(argc, argv, std::cout, std::cerr); }
