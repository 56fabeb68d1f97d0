# retort: adds `q4_1_gemm.cpp` to llama.cpp's CPU backend as llama-cpp-sys-2 builds it.
#
# `.cargo/config.toml` points CMAKE_PROJECT_INCLUDE here; llama-cpp-sys-2's build script passes
# every CMAKE_* variable of its environment to CMake, which includes this file after each
# `project()` of llama.cpp's tree. The first inclusion (the top-level `project()`) defers the
# change to the end of the top-level directory, when the `ggml-cpu` target exists, and then:
#   - compiles `ggml-cpu/llamafile/sgemm.cpp` with `llamafile_sgemm` renamed to
#     `llamafile_sgemm_upstream`;
#   - adds `q4_1_gemm.cpp`, whose `llamafile_sgemm` runs the tiled Q4_1 kernel and hands every
#     other case to the upstream function.
# The sources of llama.cpp are not modified. A CMake project without a `ggml-cpu` target (any
# other crate that builds with CMake) is left as it is.
#
# llama-cpp-sys-2 reruns its build when a GGML_* variable changes, not a CMAKE_* one: bump
# GGML_RETORT_Q4_1_GEMM in `.cargo/config.toml` when this file or the kernel changes.

if(NOT COMMAND retort_patch_ggml_cpu)
    set(RETORT_GGML_DIR "${CMAKE_CURRENT_LIST_DIR}")

    function(retort_patch_ggml_cpu)
        if(NOT TARGET ggml-cpu)
            return()
        endif()
        get_target_property(dir ggml-cpu SOURCE_DIR)
        get_target_property(sources ggml-cpu SOURCES)
        set(sgemm "")
        foreach(source IN LISTS sources)
            if(source MATCHES "llamafile/sgemm\\.cpp$")
                set(sgemm "${source}")
            endif()
        endforeach()
        if(sgemm STREQUAL "")
            message(STATUS "retort: ggml-cpu is built without llamafile; the tiled Q4_1 kernel is not built")
            return()
        endif()
        if(NOT IS_ABSOLUTE "${sgemm}")
            set(sgemm "${dir}/${sgemm}")
        endif()
        set_property(SOURCE "${sgemm}" DIRECTORY "${dir}" APPEND PROPERTY
            COMPILE_DEFINITIONS "llamafile_sgemm=llamafile_sgemm_upstream")
        target_sources(ggml-cpu PRIVATE "${RETORT_GGML_DIR}/q4_1_gemm.cpp")
        message(STATUS "retort: ggml-cpu gets the tiled Q4_1 x Q8_1 kernel (${RETORT_GGML_DIR}/q4_1_gemm.cpp)")
    endfunction()

    cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL retort_patch_ggml_cpu)
endif()
