// kd's native kernels (see gemm.cc, ops.cc); addon.cc binds them to JavaScript.
#pragma once
#include <vector>
#include <node_api.h>

// a hot loop compiled for AVX-512, AVX2+FMA and the baseline, picked at load time (ifunc: glibc only)
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__)
#define KD_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define KD_CLONES
#endif

namespace kd {

// What a square causal product (attention's, T × T) may skip: none; lower_c, only C's entries on and below the
// diagonal are wanted (S = Q·Kᵀ: those above are left unwritten); lower_a, op(A) is 0 above its diagonal (O = P·V);
// upper_a, op(A) is 0 below it (dV = Pᵀ·dO). What is computed is bit for bit the full product's.
enum class Causal { none = 0, lower_c = 1, lower_a = 2, upper_a = 3 };
// C[M×N] = op(A)·op(B), row-major float32; op transposes when tA/tB
void gemm(const float* a, bool tA, const float* b, bool tB, float* c, long M, long N, long K, Causal causal = Causal::none);
// the same on strided operands: rows of A (as stored, before op) lda apart, of B ldb, of C ldc
void gemm_ld(const float* a, long lda, bool tA, const float* b, long ldb, bool tB, float* c, long ldc, long M, long N,
  long K, Causal causal = Causal::none);
// the same for a few rows of A, unpacked (gemm uses it up to 4 rows); B's rows (Bᵀ's when tB) ldb apart
void gemm_rows(const float* a, const float* b, long ldb, bool tB, float* c, long M, long N, long K);
const char* gemm_kernel();
std::vector<const char*> gemm_kernels();
bool gemm_use_kernel(const char* name);

void gelu_forward(const float* x, float* y, long n);
void gelu_backward(const float* x, const float* dy, float* dx, long n);
void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
  long rows, long d, float eps);
void layer_norm_backward(const float* dy, const float* x, const float* gamma, const float* mean, const float* rstd,
  float* dx, float* dgamma, float* dbeta, long rows, long d);
void softmax_rows(const float* s, float* g, double* lse, float c, const float* scale, bool accumulate, long rows, long V);
void scale_rows(float* g, const float* scale, long rows, long V);
void attention_forward(const float* qkv, float* out, float* P, long B, long T, long H, long hd, float scale);
void attention_backward(const float* qkv, const float* P, const float* dout, float* dqkv, long B, long T, long H, long hd,
  float scale);
// the same with per-row softmax statistics stats [B·H, T, 2] (max, 1/sum) instead of P: O(B·H·T) memory, not O(B·H·T²)
void attention_forward_stats(const float* qkv, float* out, float* stats, long B, long T, long H, long hd, float scale);
void attention_backward_recompute(const float* qkv, const float* stats, const float* dout, float* dqkv, long B, long T,
  long H, long hd, float scale);
// t new tokens against a KV cache kept transposed, kt/vt [B, H, hd, cap] (ops.cc): writes their keys and values at
// columns L..L+t−1, out [B·t, H·hd] = causal attention of each new query over keys 0..L+i
void decode_attention(const float* qkv, float* kt, float* vt, float* out, long B, long t, long L, long cap, long H,
  long hd, float scale);
double sum_squares(const float* x, long n);
void add_into(float* dst, const float* src, long n);
void adamw(float* p, float* m, float* v, const float* g, long n, float step, float rbc2, float b1, float b2,
  float eps, float decay, float scale);

// the dataset build's kernels (build.cc): adds tableNew, tableIntern, tableDump, expF32, mathF64, label to exports
bool register_build(napi_env env, napi_value exports);

}  // namespace kd
