{
  "targets": [
    {
      "target_name": "kd_native",
      "sources": ["native/addon.cc", "native/gemm.cc", "native/ops.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"],
      "cflags_cc!": ["-fno-rtti"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-math-errno", "-fopenmp-simd"] },
      "msvs_settings": { "VCCLCompilerTool": { "Optimization": 2 } }
    }
  ]
}
