# Every dependency but LibTorch comes from Debian 12's archive; scripts/setup.sh installs all of
# them, and LibTorch through scripts/install_libtorch.sh (cmake/XmodalTorch.cmake).
# xmodal_require(<find_package args...> DEBIAN <package>) fails with the package to install.
macro(xmodal_require name)
  cmake_parse_arguments(_xr "" "DEBIAN" "ARGS" ${ARGN})
  find_package(${name} ${_xr_ARGS} QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR
      "xmodal needs ${name}: install the Debian package '${_xr_DEBIAN}' "
      "(apt-get install ${_xr_DEBIAN}, or run scripts/setup.sh as root), "
      "or point CMAKE_PREFIX_PATH at another installation.")
  endif()
  message(STATUS "xmodal: found ${name} ${${name}_VERSION}")
endmacro()

include(XmodalTorch)
xmodal_require(OpenCV DEBIAN libopencv-dev ARGS COMPONENTS core imgcodecs imgproc)
xmodal_require(CLI11 DEBIAN libcli11-dev)
xmodal_require(spdlog DEBIAN libspdlog-dev)
xmodal_require(fmt DEBIAN libfmt-dev)
xmodal_require(yaml-cpp DEBIAN libyaml-cpp-dev)
xmodal_require(simdjson DEBIAN libsimdjson-dev)
xmodal_require(nlohmann_json DEBIAN nlohmann-json3-dev)
xmodal_require(ZLIB DEBIAN zlib1g-dev)
if(XMODAL_BUILD_TESTS)
  xmodal_require(GTest DEBIAN "libgtest-dev libgmock-dev")
endif()

# sentencepiece ships only a pkg-config file on Debian.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(SENTENCEPIECE QUIET IMPORTED_TARGET sentencepiece)
endif()
if(NOT SENTENCEPIECE_FOUND)
  message(FATAL_ERROR
    "xmodal needs sentencepiece: install the Debian packages 'libsentencepiece-dev pkg-config' "
    "(or run scripts/setup.sh as root).")
endif()
message(STATUS "xmodal: found sentencepiece ${SENTENCEPIECE_VERSION}")

if(XMODAL_WITH_DISTRIBUTED)
  # c10d's Gloo process group (distributed training): LibTorch holds Gloo itself, but its
  # ProcessGroupGloo.hpp includes Gloo's headers, which only libgloo-dev provides. Only the headers
  # are used (the classes xmodal names are held by pointer); the code is LibTorch's own copy.
  find_path(GLOO_INCLUDE_DIR gloo/context.h)
  if(NOT GLOO_INCLUDE_DIR)
    message(FATAL_ERROR
      "xmodal needs Gloo for distributed training: install the Debian package 'libgloo-dev' "
      "(or run scripts/setup.sh as root), or configure with -DXMODAL_WITH_DISTRIBUTED=OFF.")
  endif()
endif()
