{
  "targets": [
    {
      "target_name": "kd_build_kernels",
      "type": "static_library",
      "sources": ["native/build.cc"],
      "cflags": ["-fPIC"],
      "cflags_cc": ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-fast-math"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-ffp-contract=off"] },
      "msvs_settings": { "VCCLCompilerTool": { "Optimization": 2, "FloatingPointModel": 0 } }
    },
    {
      "target_name": "kd_native",
      "dependencies": ["kd_build_kernels"],
      "sources": ["native/addon.cc", "native/gemm.cc", "native/ops.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"],
      "cflags_cc!": ["-fno-rtti"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-math-errno", "-fopenmp-simd"] },
      "msvs_settings": { "VCCLCompilerTool": { "Optimization": 2 } }
    }
  ]
}
