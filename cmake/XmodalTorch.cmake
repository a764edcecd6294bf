# LibTorch, as the INTERFACE target xmodal_torch. By default the pinned 2.x that
# scripts/install_libtorch.sh unpacks into the cache (scripts/libtorch.lock names the version);
# -DXMODAL_LIBTORCH=<folder> takes another LibTorch folder (include/ lib/ share/cmake/: a
# pytorch.org archive or a `torch` wheel's torch/ folder).
#
# CPU build: the target names libtorch_cpu and libc10 directly. The wheel's TorchConfig.cmake
# would demand the CUDA toolkit even for a CPU program (the wheel is a CUDA build) and falls back
# to the system's libtorch.so when one is installed (Debian's 1.13), which mixes two LibTorches.
# CUDA build (XMODAL_CUDA=ON): the package's own imported target `torch`, which brings
# libtorch_cuda (linked with --no-as-needed: its kernels register themselves when it loads) and
# finds the CUDA toolkit.
file(STRINGS "${PROJECT_SOURCE_DIR}/scripts/libtorch.lock" _xmodal_lock REGEX "^XMODAL_LIBTORCH_VERSION=")
string(REGEX REPLACE "^XMODAL_LIBTORCH_VERSION=" "" XMODAL_LIBTORCH_PINNED "${_xmodal_lock}")
if(DEFINED ENV{XMODAL_CACHE_DIR})
  set(_xmodal_cache "$ENV{XMODAL_CACHE_DIR}")
elseif(DEFINED ENV{XDG_CACHE_HOME})
  set(_xmodal_cache "$ENV{XDG_CACHE_HOME}/xmodal")
else()
  set(_xmodal_cache "$ENV{HOME}/.cache/xmodal")
endif()
set(XMODAL_LIBTORCH "${_xmodal_cache}/libtorch-${XMODAL_LIBTORCH_PINNED}" CACHE PATH
    "LibTorch folder (include/, lib/, share/cmake/); default: the pinned one scripts/install_libtorch.sh installs")
if(NOT EXISTS "${XMODAL_LIBTORCH}/lib/libtorch_cpu.so")
  message(FATAL_ERROR
    "xmodal: no LibTorch in ${XMODAL_LIBTORCH}: run scripts/install_libtorch.sh (scripts/setup.sh "
    "does), or pass -DXMODAL_LIBTORCH=<a LibTorch folder holding include/ and lib/>.")
endif()
# 2.8+ keep the version macros in torch/headeronly/version.h, older ones in the API's version.h.
set(_xmodal_vh "${XMODAL_LIBTORCH}/include/torch/headeronly/version.h")
if(NOT EXISTS "${_xmodal_vh}")
  set(_xmodal_vh "${XMODAL_LIBTORCH}/include/torch/csrc/api/include/torch/version.h")
endif()
file(STRINGS "${_xmodal_vh}" _xmodal_tv
     REGEX "#define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3"
       XMODAL_TORCH_VERSION "${_xmodal_tv}")
if(XMODAL_TORCH_VERSION VERSION_LESS 2.6)
  message(FATAL_ERROR "xmodal: LibTorch ${XMODAL_TORCH_VERSION} in ${XMODAL_LIBTORCH}: 2.6 or newer needed")
endif()

add_library(xmodal_torch INTERFACE)
if(XMODAL_CUDA)
  # TorchConfig looks for Caffe2Config without NO_DEFAULT_PATH, so a system LibTorch (Debian's
  # 1.13 in /usr/lib) would win: named here.
  set(Caffe2_DIR "${XMODAL_LIBTORCH}/share/cmake/Caffe2" CACHE PATH "LibTorch's Caffe2 package" FORCE)
  set(TORCH_CUDA_ARCH_LIST "9.0" CACHE STRING "Only quiets LibTorch's GPU detection: xmodal compiles no CUDA code")
  find_package(Torch REQUIRED PATHS "${XMODAL_LIBTORCH}/share/cmake/Torch" NO_DEFAULT_PATH)
  if(NOT TARGET torch_cuda)
    message(FATAL_ERROR "xmodal: XMODAL_CUDA=ON, but the LibTorch in ${XMODAL_LIBTORCH} has no CUDA")
  endif()
  target_link_libraries(xmodal_torch INTERFACE torch)
  message(STATUS "xmodal: LibTorch ${XMODAL_TORCH_VERSION} with CUDA from ${XMODAL_LIBTORCH}")
else()
  target_include_directories(xmodal_torch SYSTEM INTERFACE "${XMODAL_LIBTORCH}/include"
                             "${XMODAL_LIBTORCH}/include/torch/csrc/api/include")
  # The definitions libtorch_cpu was built with (its CMake package says so): the c10d headers
  # declare their Gloo classes only under them.
  target_compile_definitions(xmodal_torch INTERFACE USE_DISTRIBUTED USE_C10D_GLOO)
  target_link_libraries(xmodal_torch INTERFACE "${XMODAL_LIBTORCH}/lib/libtorch_cpu.so"
                        "${XMODAL_LIBTORCH}/lib/libc10.so")
  message(STATUS "xmodal: LibTorch ${XMODAL_TORCH_VERSION} (CPU) from ${XMODAL_LIBTORCH}")
endif()
