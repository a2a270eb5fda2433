# Finds every dependency from Debian's packages; a missing one stops configure with the package name.
include(FindPackageHandleStandardArgs)

macro(iotnas_require found what package)
  if(NOT ${found})
    message(FATAL_ERROR "iotnas needs ${what}: install it with `apt-get install ${package}` "
                        "(or run ./scripts/setup.sh as root)")
  endif()
endmacro()

find_package(Threads REQUIRED)

find_package(OpenMP QUIET COMPONENTS CXX)
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  iotnas_require(OpenMP_CXX_FOUND "OpenMP for clang" "libomp-14-dev")
else()
  iotnas_require(OpenMP_CXX_FOUND "OpenMP" "g++ (libgomp)")
endif()

find_package(Eigen3 3.3 QUIET NO_MODULE)
iotnas_require(Eigen3_FOUND "Eigen 3" "libeigen3-dev")

find_package(ZLIB QUIET)
iotnas_require(ZLIB_FOUND "zlib" "zlib1g-dev")

find_package(nlohmann_json 3 QUIET)
iotnas_require(nlohmann_json_FOUND "nlohmann JSON" "nlohmann-json3-dev")

find_package(CLI11 QUIET)
iotnas_require(CLI11_FOUND "CLI11" "libcli11-dev")

# SHA-256 for the store's unit keys (engine/util/hash.cpp).
find_path(IOTNAS_NETTLE_INCLUDE nettle/sha2.h)
find_library(IOTNAS_NETTLE_LIBRARY nettle)
set(nettle_FOUND OFF)
if(IOTNAS_NETTLE_INCLUDE AND IOTNAS_NETTLE_LIBRARY)
  set(nettle_FOUND ON)
  add_library(Nettle::nettle UNKNOWN IMPORTED)
  set_target_properties(Nettle::nettle PROPERTIES IMPORTED_LOCATION "${IOTNAS_NETTLE_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${IOTNAS_NETTLE_INCLUDE}")
endif()
iotnas_require(nettle_FOUND "Nettle (SHA-256)" "nettle-dev")

find_package(SQLite3 QUIET)
iotnas_require(SQLite3_FOUND "SQLite 3" "libsqlite3-dev")

if(IOTNAS_DNNL)
  # Debian's dnnl-config.cmake insists on OpenCL development files that a CPU build never uses,
  # so the header and library are found directly.
  find_path(IOTNAS_DNNL_INCLUDE oneapi/dnnl/dnnl.hpp)
  find_library(IOTNAS_DNNL_LIBRARY dnnl)
  set(dnnl_FOUND OFF)
  if(IOTNAS_DNNL_INCLUDE AND IOTNAS_DNNL_LIBRARY)
    set(dnnl_FOUND ON)
    add_library(DNNL::dnnl UNKNOWN IMPORTED)
    set_target_properties(DNNL::dnnl PROPERTIES IMPORTED_LOCATION "${IOTNAS_DNNL_LIBRARY}"
                          INTERFACE_INCLUDE_DIRECTORIES "${IOTNAS_DNNL_INCLUDE}")
  endif()
  iotnas_require(dnnl_FOUND "oneDNN (or configure with -DIOTNAS_DNNL=OFF)" "libdnnl-dev")
endif()

if(IOTNAS_TESTS)
  find_package(GTest QUIET)
  iotnas_require(GTest_FOUND "GoogleTest (or configure with -DIOTNAS_TESTS=OFF)" "libgtest-dev")
  include(GoogleTest)
endif()

if(IOTNAS_BENCH)
  find_package(benchmark QUIET)
  iotnas_require(benchmark_FOUND "Google Benchmark (or configure with -DIOTNAS_BENCH=OFF)"
                 "libbenchmark-dev")
endif()

# x86-64 or aarch64 decides which vector kernels are compiled.
set(IOTNAS_X86 OFF)
set(IOTNAS_ARM64 OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  set(IOTNAS_X86 ON)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(IOTNAS_ARM64 ON)
endif()
