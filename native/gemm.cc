// kd's native matrix product: C = op(A)·op(B) in float32, row-major, single-threaded (kd runs one
// training worker per core). It is an optional accelerator for the wasm backend: tensors live in the
// wasm heap, which reaches us as a Float32Array, so products run in place with no copies.
//
// Layout follows BLIS/GotoBLAS: B is packed in KC×NR panels, A in MR×KC panels, and a register-blocked
// micro-kernel does the FMAs. Transposes are absorbed by the packing, so op(A)/op(B) cost nothing extra.
// The micro-kernel is chosen at load time from what the CPU supports (AVX-512, AVX2+FMA, or portable C),
// so a build is safe to copy to an older machine of the same architecture.
// Not thread-safe across useKernel(): switch kernels only while no product runs.
#include "kd.h"
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KD_X86 1
#endif

namespace kd {
namespace {

constexpr int KC = 256;   // depth of a packed block: an MR×KC A panel + KC×NR B panel stay in L1
constexpr int MC = 192;   // rows of A packed at once (L2)
constexpr int NC = 4096;  // columns of B packed at once (L3)

struct Kernel {
  int mr, nr;
  // c[mr×nr] (row stride ldc) = (accumulate ? c : 0) + a_panel · b_panel over kc
  void (*run)(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate);
  const char* name;
};

// ---- portable micro-kernel (any CPU; the compiler vectorises the inner loop) ----
template <int MR, int NR>
void kernel_generic(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
  float acc[MR][NR] = {};
  for (int p = 0; p < kc; p++) {
    for (int i = 0; i < MR; i++) {
      const float ai = a[p * MR + i];
      for (int j = 0; j < NR; j++) acc[i][j] += ai * b[p * NR + j];
    }
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + acc[i][j];
}

#ifdef KD_X86
// The accumulators are named variables, not arrays: with `__m256 c0[6]` GCC kept register copies but
// also stored ten of them to the stack on every iteration of the depth loop (ten stores per twelve
// FMAs), which halved the kernel's speed. KD_ROWS expands a statement once per row of the tile.

// ---- AVX-512: 12 rows × 32 columns, 24 zmm accumulators ----
#define KD_ROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
__attribute__((target("avx512f"))) void kernel_avx512(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
#define KD_ZERO(i) __m512 c0_##i = _mm512_setzero_ps(), c1_##i = _mm512_setzero_ps();
  KD_ROWS12(KD_ZERO)
#undef KD_ZERO
  for (int p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_loadu_ps(b + p * 32), b1 = _mm512_loadu_ps(b + p * 32 + 16);
    const float* ap = a + p * 12;
#define KD_FMA(i) { const __m512 ai = _mm512_set1_ps(ap[i]); c0_##i = _mm512_fmadd_ps(ai, b0, c0_##i); c1_##i = _mm512_fmadd_ps(ai, b1, c1_##i); }
    KD_ROWS12(KD_FMA)
#undef KD_FMA
  }
#define KD_STORE(i) { float* ci = c + i * ldc; \
    if (accumulate) { c0_##i = _mm512_add_ps(c0_##i, _mm512_loadu_ps(ci)); c1_##i = _mm512_add_ps(c1_##i, _mm512_loadu_ps(ci + 16)); } \
    _mm512_storeu_ps(ci, c0_##i); _mm512_storeu_ps(ci + 16, c1_##i); }
  KD_ROWS12(KD_STORE)
#undef KD_STORE
}
#undef KD_ROWS12

// ---- AVX2 + FMA: 6 rows × 16 columns, 12 ymm accumulators ----
#define KD_ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
__attribute__((target("avx2,fma"))) void kernel_avx2(int kc, const float* a, const float* b, float* c, long ldc, bool accumulate) {
#define KD_ZERO(i) __m256 c0_##i = _mm256_setzero_ps(), c1_##i = _mm256_setzero_ps();
  KD_ROWS6(KD_ZERO)
#undef KD_ZERO
  for (int p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_loadu_ps(b + p * 16), b1 = _mm256_loadu_ps(b + p * 16 + 8);
    const float* ap = a + p * 6;
#define KD_FMA(i) { const __m256 ai = _mm256_broadcast_ss(ap + i); c0_##i = _mm256_fmadd_ps(ai, b0, c0_##i); c1_##i = _mm256_fmadd_ps(ai, b1, c1_##i); }
    KD_ROWS6(KD_FMA)
#undef KD_FMA
  }
#define KD_STORE(i) { float* ci = c + i * ldc; \
    if (accumulate) { c0_##i = _mm256_add_ps(c0_##i, _mm256_loadu_ps(ci)); c1_##i = _mm256_add_ps(c1_##i, _mm256_loadu_ps(ci + 8)); } \
    _mm256_storeu_ps(ci, c0_##i); _mm256_storeu_ps(ci + 8, c1_##i); }
  KD_ROWS6(KD_STORE)
#undef KD_STORE
}
#undef KD_ROWS6
#endif

// The micro-kernels this CPU can run, best first. The best is used; tests switch with useKernel().
std::vector<Kernel> supported_kernels() {
  std::vector<Kernel> ks;
#ifdef KD_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) ks.push_back({12, 32, kernel_avx512, "avx512"});
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ks.push_back({6, 16, kernel_avx2, "avx2"});
#endif
  ks.push_back({8, 8, kernel_generic<8, 8>, "generic"});
  return ks;
}

const std::vector<Kernel> KERNELS = supported_kernels();
Kernel K = KERNELS.front();

// an operand of C = op(A)·op(B): row-major with leading dimension ld, transposed when t
struct Operand {
  const float* x;
  long ld;
  bool t;
};

#ifdef KD_X86
// r[0..7] (8 floats each) transposed: out + j·stride gets column j, 8 floats (stores in order of j, so with a
// stride below 8 each store's tail is overwritten by the next: the caller leaves room for the last one's)
__attribute__((target("avx2"))) inline void transpose8(const float* const* r, long p, float* out, long stride) {
  const __m256 a0 = _mm256_loadu_ps(r[0] + p), a1 = _mm256_loadu_ps(r[1] + p), a2 = _mm256_loadu_ps(r[2] + p),
               a3 = _mm256_loadu_ps(r[3] + p), a4 = _mm256_loadu_ps(r[4] + p), a5 = _mm256_loadu_ps(r[5] + p),
               a6 = _mm256_loadu_ps(r[6] + p), a7 = _mm256_loadu_ps(r[7] + p);
  const __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1), t2 = _mm256_unpacklo_ps(a2, a3),
               t3 = _mm256_unpackhi_ps(a2, a3), t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5),
               t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
               u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
               u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
               u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(out + 0 * stride, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(out + 1 * stride, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(out + 2 * stride, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(out + 3 * stride, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(out + 4 * stride, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(out + 5 * stride, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(out + 6 * stride, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(out + 7 * stride, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

// A rows [i0, i0+mc) × depth [p0, p0+kc) → MR-row panels, zero-padded. A full panel of the AVX2 kernel's 6
// rows is transposed 8 columns at a time (an 8 × 8 transpose with the last row repeated; each column's 2
// extra floats land where the next column goes, or in the next panel, written after, or in the buffer's
// slack); the AVX-512 kernel's 12 rows as two such transposes (rows 8..11 padded to 8, 4 extra floats).
KD_CLONES void pack_a(const Operand& A, long i0, int mc, long p0, int kc, float* out) {
  const int mr = K.mr;
  for (int ir = 0; ir < mc; ir += mr) {
    const int rows = std::min(mr, mc - ir);
    float* panel = out + (long)ir * kc;
    if (!A.t && rows == mr) {
      // mr rows read side by side (the prefetchers follow mr streams), the panel written in order
      const float* src[16];
      for (int r = 0; r < mr; r++) src[r] = A.x + (i0 + ir + r) * A.ld + p0;
      int p = 0;
#ifdef KD_X86
      if (mr == 6 && K.run == kernel_avx2) {
        src[6] = src[7] = src[5];
        for (; p + 8 <= kc; p += 8) transpose8(src, p, panel + p * 6, 6);
      } else if (mr == 12 && K.run == kernel_avx512) {
        // rows 8..11 first (their columns' 4 extra floats land where the next column's rows 0..3 go), then
        // rows 0..7, which overwrite them
        src[12] = src[13] = src[14] = src[15] = src[11];
        for (; p + 8 <= kc; p += 8) {
          transpose8(src + 8, p, panel + p * 12 + 8, 12);
          transpose8(src, p, panel + p * 12, 12);
        }
      }
#endif
      for (; p < kc; p++)
        for (int r = 0; r < mr; r++) panel[p * mr + r] = src[r][p];
    } else if (!A.t) {
      for (int r = 0; r < rows; r++) {
        const float* src = A.x + (i0 + ir + r) * A.ld + p0;
        for (int p = 0; p < kc; p++) panel[p * mr + r] = src[p];
      }
    } else if (rows == 6 && mr == 6) {  // the AVX2 kernel's rows: a copy of fixed size the compiler unrolls
      for (int p = 0; p < kc; p++) std::memcpy(panel + p * 6, A.x + (p0 + p) * A.ld + i0 + ir, 6 * sizeof(float));
    } else if (rows == 12 && mr == 12) {
      for (int p = 0; p < kc; p++) std::memcpy(panel + p * 12, A.x + (p0 + p) * A.ld + i0 + ir, 12 * sizeof(float));
    } else {
      for (int p = 0; p < kc; p++) {
        const float* src = A.x + (p0 + p) * A.ld + i0 + ir;
        for (int r = 0; r < rows; r++) panel[p * mr + r] = src[r];
      }
    }
    if (rows < mr)
      for (int p = 0; p < kc; p++)
        for (int r = rows; r < mr; r++) panel[p * mr + r] = 0.f;
  }
}

// B depth [p0, p0+kc) × columns [j0, j0+nc) → NR-column panels, zero-padded
KD_CLONES void pack_b(const Operand& B, long p0, int kc, long j0, int nc, float* out) {
  const int nr = K.nr;
  for (int jr = 0; jr < nc; jr += nr) {
    const int cols = std::min(nr, nc - jr);
    float* panel = out + (long)jr * kc;
    if (!B.t) {
      const float* src = B.x + p0 * B.ld + j0 + jr;
      if (cols == 16 && nr == 16) {  // copies of fixed size, inlined (a memcpy call each costs more)
        for (int p = 0; p < kc; p++) std::memcpy(panel + p * 16, src + p * B.ld, 16 * sizeof(float));
      } else if (cols == 32 && nr == 32) {
        for (int p = 0; p < kc; p++) std::memcpy(panel + p * 32, src + p * B.ld, 32 * sizeof(float));
      } else {
        for (int p = 0; p < kc; p++) {
          float* dst = panel + p * nr;
          std::memcpy(dst, src + p * B.ld, cols * sizeof(float));
          for (int c = cols; c < nr; c++) dst[c] = 0.f;
        }
      }
    } else {
      // nr rows of B read side by side (as pack_a does), the panel written in order; the AVX2 kernel's 16
      // columns as two 8 × 8 transposes per 8 rows of depth
      const float* src[32];
      for (int c = 0; c < cols; c++) src[c] = B.x + (j0 + jr + c) * B.ld + p0;
      int p = 0;
#ifdef KD_X86
      if (cols == 16 && nr == 16 && K.run == kernel_avx2)
        for (; p + 8 <= kc; p += 8) {
          transpose8(src, p, panel + p * 16, 16);
          transpose8(src + 8, p, panel + p * 16 + 8, 16);
        }
      else if (cols == 32 && nr == 32 && K.run == kernel_avx512)  // the AVX-512 kernel's 32 columns: four
        for (; p + 8 <= kc; p += 8)
          for (int q = 0; q < 32; q += 8) transpose8(src + q, p, panel + p * 32 + q, 32);
#endif
      for (; p < kc; p++) {
        float* dst = panel + p * nr;
        for (int c = 0; c < cols; c++) dst[c] = src[c][p];
        for (int c = cols; c < nr; c++) dst[c] = 0.f;
      }
    }
  }
}

struct Buffers {
  float* a = nullptr;
  float* b = nullptr;
  Buffers() {
    a = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * (MC + 16) * KC));
    b = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * (NC + 32) * KC));
  }
  ~Buffers() { std::free(a); std::free(b); }
};
thread_local Buffers buf;  // one set per worker thread

constexpr long FEW_ROWS = 4;

}  // namespace

// C = A·op(B) for a few rows of A (a decoding step's batch): packing B would cost as much as the product
// and a register tile of MR rows would be mostly empty. Rows of B (or, transposed, of Bᵀ) are read in
// order. Without transposes C's row is Σ_p A[i,p]·B[p,:] over contiguous rows of B, 64 columns at a time
// held in registers across the whole depth (the sums run over p in order, as the blocked path's do within
// KC); transposed, each C[i,j] is a dot product of contiguous rows (dot_rows), four at a time.
typedef float v16 __attribute__((vector_size(64)));  // GCC's generic vectors: one zmm, two ymm or four xmm
__attribute__((always_inline)) static inline v16 load16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((always_inline)) static inline float hsum16(v16 v) {  // lanes summed as a tree: (0+8, 4+12, …) and so on down
  float t[16];
  std::memcpy(t, &v, sizeof t);
  for (int w = 8; w > 0; w /= 2)
    for (int l = 0; l < w; l++) t[l] += t[l + w];
  return t[0];
}

// out[r] = x · rows[r·ld .. r·ld + n) for r < nrows
KD_CLONES static void dot_rows(const float* x, const float* rows, long ld, float* out, long nrows, long n) {
  long r = 0;
  for (; r + 4 <= nrows; r += 4) {  // 4 rows × 2 accumulators: 8 independent chains of FMAs
    const float *r0 = rows + r * ld, *r1 = r0 + ld, *r2 = r1 + ld, *r3 = r2 + ld;
    v16 a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {};
    long j = 0;
    for (; j + 32 <= n; j += 32) {
      const v16 x0 = load16(x + j), x1 = load16(x + j + 16);
      a0 += x0 * load16(r0 + j); b0 += x1 * load16(r0 + j + 16);
      a1 += x0 * load16(r1 + j); b1 += x1 * load16(r1 + j + 16);
      a2 += x0 * load16(r2 + j); b2 += x1 * load16(r2 + j + 16);
      a3 += x0 * load16(r3 + j); b3 += x1 * load16(r3 + j + 16);
    }
    for (; j + 16 <= n; j += 16) {
      const v16 x0 = load16(x + j);
      a0 += x0 * load16(r0 + j); a1 += x0 * load16(r1 + j); a2 += x0 * load16(r2 + j); a3 += x0 * load16(r3 + j);
    }
    float s0 = hsum16(a0 + b0), s1 = hsum16(a1 + b1), s2 = hsum16(a2 + b2), s3 = hsum16(a3 + b3);
    for (; j < n; j++) { s0 += x[j] * r0[j]; s1 += x[j] * r1[j]; s2 += x[j] * r2[j]; s3 += x[j] * r3[j]; }
    out[r] = s0; out[r + 1] = s1; out[r + 2] = s2; out[r + 3] = s3;
  }
  for (; r < nrows; r++) {
    const float* ri = rows + r * ld;
    v16 a = {}, b = {};
    long j = 0;
    for (; j + 32 <= n; j += 32) { a += load16(x + j) * load16(ri + j); b += load16(x + j + 16) * load16(ri + j + 16); }
    for (; j + 16 <= n; j += 16) a += load16(x + j) * load16(ri + j);
    float s = hsum16(a + b);
    for (; j < n; j++) s += x[j] * ri[j];
    out[r] = s;
  }
}

KD_CLONES static void gemm_rows_ld(const float* a, long lda, const float* b, long ldb, bool tB, float* C, long ldc, long M,
  long N, long Kd) {
  for (long i = 0; i < M; i++) {
    const float* ai = a + i * lda;
    float* c = C + i * ldc;
    if (tB) {
      dot_rows(ai, b, ldb, c, N, Kd);
      continue;
    }
    long j = 0;
    for (; j + 64 <= N; j += 64) {
      v16 c0 = {}, c1 = {}, c2 = {}, c3 = {};
      const float* bp = b + j;
      for (long p = 0; p < Kd; p++, bp += ldb) {
        const float x = ai[p];
        c0 += x * load16(bp); c1 += x * load16(bp + 16); c2 += x * load16(bp + 32); c3 += x * load16(bp + 48);
      }
      std::memcpy(c + j, &c0, 64); std::memcpy(c + j + 16, &c1, 64);
      std::memcpy(c + j + 32, &c2, 64); std::memcpy(c + j + 48, &c3, 64);
    }
    for (; j + 16 <= N; j += 16) {
      v16 c0 = {};
      const float* bp = b + j;
      for (long p = 0; p < Kd; p++, bp += ldb) c0 += ai[p] * load16(bp);
      std::memcpy(c + j, &c0, 64);
    }
    if (j < N) {
      for (long q = j; q < N; q++) c[q] = 0.f;
      for (long p = 0; p < Kd; p++) {
        const float x = ai[p];
        const float* br = b + p * ldb;
        for (long q = j; q < N; q++) c[q] += x * br[q];
      }
    }
  }
}

void gemm_rows(const float* a, const float* b, long ldb, bool tB, float* C, long M, long N, long Kd) {
  gemm_rows_ld(a, Kd, b, ldb, tB, C, N, M, N, Kd);
}

// C[M×N] (row stride ldc) = op(A)[M×K] · op(B)[K×N], A's rows lda apart and B's ldb apart (as stored, before
// op). A causal shape (square products of attention) skips what is known zero or unused, tile by tile, with
// the same sums in the same order as the full product: the skipped products are exact zeros, and a float sum
// does not change when a zero is added.
void gemm_ld(const float* a, long lda, bool tA, const float* b, long ldb, bool tB, float* C, long ldc, long M, long N,
  long Kd, Causal causal) {
  const Operand A{a, lda, tA};
  const Operand B{b, ldb, tB};
  if (Kd == 0) {
    for (long i = 0; i < M; i++) std::memset(C + i * ldc, 0, sizeof(float) * N);
    return;
  }
  if (M <= FEW_ROWS && !tA) {
    gemm_rows_ld(a, lda, b, ldb, tB, C, ldc, M, N, Kd);
    return;
  }
  const int mr = K.mr, nr = K.nr;
  alignas(64) float edge[16 * 32];
  for (long j0 = 0; j0 < N; j0 += NC) {
    const int nc = (int)std::min<long>(NC, N - j0);
    for (long p0 = 0; p0 < Kd; p0 += KC) {
      const int kc = (int)std::min<long>(KC, Kd - p0);
      const bool acc = p0 > 0;
      pack_b(B, p0, kc, j0, nc, buf.b);
      for (long i0 = 0; i0 < M; i0 += MC) {
        const int mc = (int)std::min<long>(MC, M - i0);
        pack_a(A, i0, mc, p0, kc, buf.a);
        for (int jr = 0; jr < nc; jr += nr) {
          const int cols = std::min(nr, nc - jr);
          const float* bp = buf.b + (long)jr * kc;
          for (int ir = 0; ir < mc; ir += mr) {
            const int rows = std::min(mr, mc - ir);
            const long r0 = i0 + ir;  // the tile's first row of C
            // the tile's depth range within this block, [lo, hi) relative to p0
            long lo = 0, hi = kc;
            if (causal == Causal::lower_c) {
              if (j0 + jr > r0 + rows - 1) continue;  // every entry above the diagonal: not wanted
            } else if (causal == Causal::lower_a) {
              hi = std::min<long>(kc, r0 + rows - p0);  // row i of op(A) is 0 past column i
            } else if (causal == Causal::upper_a) {
              lo = std::max<long>(0, r0 - p0);  // row i of op(A) is 0 before column i
            }
            float* c = C + r0 * ldc + j0 + jr;
            if (lo >= hi) {  // nothing of this block reaches the tile: C stays (or, first, becomes) 0
              if (!acc)
                for (int r = 0; r < rows; r++) std::memset(c + r * ldc, 0, sizeof(float) * cols);
              continue;
            }
            const float* ap = buf.a + (long)ir * kc + lo * mr;
            const float* bq = bp + lo * nr;
            const int depth = (int)(hi - lo);
            if (rows == mr && cols == nr) {
              K.run(depth, ap, bq, c, ldc, acc);
            } else {  // partial tile: compute into a scratch tile, copy the valid part
              K.run(depth, ap, bq, edge, nr, false);
              for (int r = 0; r < rows; r++)
                for (int q = 0; q < cols; q++) c[r * ldc + q] = (acc ? c[r * ldc + q] : 0.f) + edge[r * nr + q];
            }
          }
        }
      }
    }
  }
}

void gemm(const float* a, bool tA, const float* b, bool tB, float* C, long M, long N, long Kd, Causal causal) {
  gemm_ld(a, tA ? M : Kd, tA, b, tB ? Kd : N, tB, C, N, M, N, Kd, causal);
}

const char* gemm_kernel() { return K.name; }

std::vector<const char*> gemm_kernels() {
  std::vector<const char*> names;
  for (const Kernel& k : KERNELS) names.push_back(k.name);
  return names;
}

bool gemm_use_kernel(const char* name) {
  for (const Kernel& k : KERNELS)
    if (std::strcmp(k.name, name) == 0) { K = k; return true; }
  return false;
}

}  // namespace kd
