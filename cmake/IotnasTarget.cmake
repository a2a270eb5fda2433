# Common compile settings for every iotnas target.
function(iotnas_target target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
  if(IOTNAS_NATIVE AND IOTNAS_X86)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  if(IOTNAS_SANITIZE)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer
                               -fno-sanitize-recover=undefined>)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
    # The compute (kernels, the engine's training and inference, the quantisation sweeps, the
    # tests' naive references) at -O1 in a Debug build: unoptimised, under ASan, training and
    # sweeping took minutes per test (docs/architecture.md, CI budget). The sanitizers check
    # the same; -DIOTNAS_SANITIZE_O1=OFF keeps them at -O0 for stepping through in a debugger.
    if(IOTNAS_SANITIZE_O1 AND target MATCHES "^iotnas_(kernels|engine|quant|reference)$")
      target_compile_options(${target} PRIVATE $<$<AND:$<CONFIG:Debug>,$<COMPILE_LANGUAGE:CXX>>:-O1>)
    endif()
  endif()
  # Coverage feedback for libFuzzer in the code the fuzz targets reach (readers, parsers, graph
  # building); only the fuzzers link libFuzzer itself. The kernels, the naive references and the
  # test programs stay uninstrumented: coverage counters in their hot loops would slow the
  # sanitizer stage's tests for no finding.
  if(IOTNAS_FUZZ AND target MATCHES "^(iotnas_(engine|quant|calib|search|store|apps|fuzz_targets)|fuzz_.*)$")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>)
  endif()
endfunction()

# Precompiled headers (IOTNAS_PCH) for targets whose files nearly all include the same heavy headers:
# the standard headers below plus the named sets (json, gtest). Only there: g++ compiles every
# inline function a precompiled header holds into each file, so a header that a file does not
# include made that file slower (nlohmann/json in a test not using it: +5 s at -O0), and the
# libraries' files differ too much to share one. Each target compiles its own (clang refuses a
# header precompiled with other flags); the per-ISA files (*_avx2.cpp, ...: other -m flags) skip it.
# Measured in docs/architecture.md, "CI budget".
function(iotnas_pch target)
  if(NOT IOTNAS_PCH)
    return()
  endif()
  set(headers <algorithm> <filesystem> <functional> <map> <memory> <random> <sstream> <string>
              <vector>)
  foreach(set IN LISTS ARGN)
    if(set STREQUAL "json")
      list(APPEND headers <nlohmann/json.hpp>)
    elseif(set STREQUAL "gtest")
      list(APPEND headers <gtest/gtest.h>)
    else()
      message(FATAL_ERROR "iotnas_pch(${target}): unknown header set '${set}'")
    endif()
  endforeach()
  target_precompile_headers(${target} PRIVATE ${headers})
endfunction()

# Per-file ISA flags from the file's name: *_avx2.cpp, *_avx512.cpp, *_neon.cpp.
# Files for an ISA this build cannot target are dropped from the list.
function(iotnas_isa_sources out_var)
  set(kept)
  foreach(src IN LISTS ARGN)
    if(src MATCHES "_avx2\\.cpp$")
      if(NOT IOTNAS_X86)
        continue()
      endif()
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c"
                                  SKIP_PRECOMPILE_HEADERS ON)
    elseif(src MATCHES "_avx512\\.cpp$")
      if(NOT IOTNAS_X86)
        continue()
      endif()
      set_source_files_properties(${src} PROPERTIES
        COMPILE_OPTIONS "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx2;-mfma;-mf16c"
        SKIP_PRECOMPILE_HEADERS ON)
    elseif(src MATCHES "_neon\\.cpp$")
      if(NOT IOTNAS_ARM64)
        continue()
      endif()
    endif()
    list(APPEND kept ${src})
  endforeach()
  set(${out_var} ${kept} PARENT_SCOPE)
endfunction()
