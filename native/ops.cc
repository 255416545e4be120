// kd's native fused kernels: one pass over memory for what tfjs would do in several ops (LayerNorm,
// GELU, the loss's softmax rows, AdamW). Arguments are Float32Arrays (views of the wasm heap or any
// other memory); results are written into the arrays given. Loops are plain C++ that the compiler
// vectorises (reductions marked `omp simd`, built with -fopenmp-simd: no OpenMP runtime); on x86-64 Linux each hot loop is also compiled for AVX-512 and AVX2 and picked at load time.
#include "kd.h"
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>


namespace kd {

// e^x for x ≤ 0 (and modest positive x), to ~2 ulp, with no libm call so loops vectorise.
static inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = __builtin_floorf(x * 1.44269504089f + 0.5f);
  const float r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), the approximation tfjs's own Erf kernels use.
static inline float erf_approx(float x) {
  const float sign = x < 0.f ? -1.f : 1.f;
  const float a = x < 0.f ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  return sign * (1.0f - poly * exp_approx(-a * a));
}

KD_CLONES void gelu_forward(const float* x, float* y, long n) {
  for (long i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erf_approx(x[i] * 0.70710678118654752f));
}

// dx = dy · (Φ(x) + x·φ(x)), Φ the normal CDF, φ its density
KD_CLONES void gelu_backward(const float* x, const float* dy, float* dx, long n) {
  for (long i = 0; i < n; i++) {
    const float cdf = 0.5f * (1.0f + erf_approx(x[i] * 0.70710678118654752f));
    const float pdf = 0.3989422804014327f * exp_approx(-0.5f * x[i] * x[i]);
    dx[i] = dy[i] * (cdf + x[i] * pdf);
  }
}

// y = (x − μ)/√(σ² + ε) · γ + β per row of d; keeps μ and 1/√(σ² + ε) for the backward pass
KD_CLONES void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
  long rows, long d, float eps) {
  for (long r = 0; r < rows; r++) {
    const float* xr = x + r * d;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (long j = 0; j < d; j++) s += xr[j];
    const float mu = s / d;
    float q = 0.f;
#pragma omp simd reduction(+ : q)
    for (long j = 0; j < d; j++) q += (xr[j] - mu) * (xr[j] - mu);
    const float rs = 1.0f / std::sqrt(q / d + eps);
    float* yr = y + r * d;
    for (long j = 0; j < d; j++) yr[j] = (xr[j] - mu) * rs * gamma[j] + beta[j];
    mean[r] = mu;
    rstd[r] = rs;
  }
}

// dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = dy·γ; dγ = Σ_rows dy·x̂, dβ = Σ_rows dy
KD_CLONES void layer_norm_backward(const float* dy, const float* x, const float* gamma, const float* mean, const float* rstd,
  float* dx, float* dgamma, float* dbeta, long rows, long d) {
  for (long j = 0; j < d; j++) dgamma[j] = dbeta[j] = 0.f;
  for (long r = 0; r < rows; r++) {
    const float* xr = x + r * d;
    const float* dyr = dy + r * d;
    const float mu = mean[r], rs = rstd[r];
    float a = 0.f, b = 0.f;
#pragma omp simd reduction(+ : a, b)
    for (long j = 0; j < d; j++) {
      const float xh = (xr[j] - mu) * rs;
      const float g = dyr[j] * gamma[j];
      a += g;
      b += g * xh;
      dgamma[j] += dyr[j] * xh;
      dbeta[j] += dyr[j];
    }
    a /= d;
    b /= d;
    float* dxr = dx + r * d;
    for (long j = 0; j < d; j++) dxr[j] = rs * (dyr[j] * gamma[j] - a - (xr[j] - mu) * rs * b);
  }
}

// Per row n of s [rows × V]: lse[n] = log Σ_v exp(c·s[n,v]) and g[n,v] (+)= scale[n]·exp(c·s[n,v] − lse[n]).
KD_CLONES void softmax_rows(const float* s, float* g, double* lse, float c, const float* scale, bool accumulate, long rows, long V) {
  for (long r = 0; r < rows; r++) {
    const float* sr = s + r * V;
    float* gr = g + r * V;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (long v = 0; v < V; v++) mx = sr[v] * c > mx ? sr[v] * c : mx;
    float sum = 0.f;
    if (accumulate) {
#pragma omp simd reduction(+ : sum)
      for (long v = 0; v < V; v++) sum += exp_approx(sr[v] * c - mx);
      const double l = (double)mx + std::log((double)sum);
      const float k = scale[r] / sum;
      for (long v = 0; v < V; v++) gr[v] += k * exp_approx(sr[v] * c - mx);
      lse[r] = l;
    } else {
#pragma omp simd reduction(+ : sum)
      for (long v = 0; v < V; v++) {
        const float e = exp_approx(sr[v] * c - mx);
        gr[v] = e;
        sum += e;
      }
      const float k = scale[r] / sum;
      for (long v = 0; v < V; v++) gr[v] *= k;
      lse[r] = (double)mx + std::log((double)sum);
    }
  }
}

// g[n,v] *= scale[n] for every row n of g [rows × V].
KD_CLONES void scale_rows(float* g, const float* scale, long rows, long V) {
  for (long r = 0; r < rows; r++) {
    float* gr = g + r * V;
    const float k = scale[r];
#pragma omp simd
    for (long v = 0; v < V; v++) gr[v] *= k;
  }
}

// ---- causal self-attention over a fused qkv ----
// qkv rows (b·T + t) hold [q | k | v], each H heads of hd; head h of q is at column h·hd, of k at d + h·hd,
// of v at 2d + h·hd (d = H·hd). Per (b, h) the head's Q, K, V are strided views of qkv (rows 3d apart)
// and every product is one call of kd's blocked matmul (gemm.cc) on the head's T × T scores, told which
// triangle matters (Causal): register tiles wholly above the diagonal are skipped, and products with the
// probabilities stop (or start) at the diagonal, about half the FLOPs of the full square. The probabilities
// above the diagonal are exactly 0, so what is skipped would only have added zeros: the same values. Scratch is one head's T × T (three of them in the backward pass), never B·H·T².

namespace {
struct AttnScratch {
  std::vector<float> s, p, dp;
};
thread_local AttnScratch scratch;

// f(b, h, q, k, v, s, p, dp) for every batch row b and head h: the head's Q, K, V as strided views of qkv
// (rows 3d apart, no copies) and one head's T × T scratch
template <typename F>
inline void for_each_head(const float* qkv, long B, long T, long H, long hd, F f) {
  AttnScratch& w = scratch;
  for (auto* x : {&w.s, &w.p, &w.dp}) x->resize(T * T);
  const long d = H * hd;
  for (long b = 0; b < B; b++)
    for (long h = 0; h < H; h++) {
      const float* q = qkv + b * T * 3 * d + h * hd;
      f(b, h, q, q + d, q + 2 * d, w.s.data(), w.p.data(), w.dp.data());
    }
}
}  // namespace

// e[j] = exp(scale·s[j] − mx) for j < n: the one place a head's exps are taken, so the probabilities the
// backward pass recomputes are bit for bit the forward's (a function of its own: inlined into two loops, the
// compiler may contract the polynomial differently in each)
KD_CLONES __attribute__((noinline)) static void exp_row(float* e, const float* s, float mx, float scale, long n) {
#pragma omp simd
  for (long j = 0; j < n; j++) e[j] = exp_approx(s[j] * scale - mx);
}

// a row of exps p [n] → probabilities (× inv = 1/sum), the row's other T − n entries 0
KD_CLONES static void normalise_row(float* p, float inv, long n, long T) {
#pragma omp simd
  for (long j = 0; j < n; j++) p[j] *= inv;
  for (long j = n; j < T; j++) p[j] = 0.f;
}

// Row i of a head's probabilities, p [T] (0 past column i, or past L + i after L cached keys), from the scores
// s and the row's softmax max and 1/sum
static void probability_row(float* p, const float* s, float mx, float inv, float scale, long n, long T) {
  exp_row(p, s, mx, scale, n);
  normalise_row(p, inv, n, T);
}

// The per-row work of one head, as functions of their own: KD_CLONES compiles each for AVX-512/AVX2, while
// the lambdas below, being functions of their own, would get only the baseline target (scalar exp).

// P [rows × T] and (when st is not null) st [rows × 2] = each row's (max, 1/sum) from the scores S = Q·Kᵀ
// [rows × T], row i seeing keys 0..L+i: the whole causal square when rows = T and L = 0, or rows queries
// after L cached keys (decode_attention). P may be S (in place). Each exp is taken once.
KD_CLONES static void head_softmax(const float* S, float* P, float* st, float scale, long T, long rows = -1, long L = 0) {
  if (rows < 0) rows = T;
  for (long i = 0; i < rows; i++) {
    const long n = L + i + 1;
    const float* s = S + i * T;
    float* p = P + i * T;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (long j = 0; j < n; j++) { const float x = s[j] * scale; mx = x > mx ? x : mx; }
    exp_row(p, s, mx, scale, n);
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (long j = 0; j < n; j++) sum += p[j];
    const float inv = 1.f / sum;
    if (st) {
      st[2 * i] = mx;
      st[2 * i + 1] = inv;
    }
    normalise_row(p, inv, n, T);
  }
}

// P [T × T] again from S and the forward pass's st
KD_CLONES static void head_probabilities(const float* S, const float* st, float* P, float scale, long T) {
  for (long i = 0; i < T; i++) probability_row(P + i * T, S + i * T, st[2 * i], st[2 * i + 1], scale, i + 1, T);
}

// dP [T × T] (= dO·Vᵀ) → dS = scale · P ⊙ (dP − rowsum(P ⊙ dP)), 0 above the diagonal
KD_CLONES static void head_softmax_backward(const float* P, float* dP, float scale, long T) {
  for (long i = 0; i < T; i++) {
    const long n = i + 1;
    const float* p = P + i * T;
    float* ds = dP + i * T;
    float dot = 0.f;
#pragma omp simd reduction(+ : dot)
    for (long j = 0; j < n; j++) dot += p[j] * ds[j];
    for (long j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - dot) * scale;
    for (long j = n; j < T; j++) ds[j] = 0.f;
  }
}

// out [B·T, d] = softmax(scale·QKᵀ + causal mask)·V per head, for the backward pass either P [B·H, T, T], the
// probabilities (0 above the diagonal), or stats [B·H, T, 2], each row's max and 1/sum: 2 floats a row instead
// of T, the backward pass recomputes the probabilities (as FlashAttention does). Either may be null.
static void attention_forward_impl(const float* qkv, float* out, float* P, float* stats, long B, long T, long H, long hd,
  float scale) {
  const long d = H * hd, ld = 3 * d;
  for_each_head(qkv, B, T, H, hd, [&](long b, long h, const float* q, const float* k, const float* v, float* S, float* p, float*) {
      gemm_ld(q, ld, false, k, ld, true, S, T, T, T, hd, Causal::lower_c);  // S = Q·Kᵀ, on and below the diagonal
      float* Pbh = P ? P + (b * H + h) * T * T : p;
      head_softmax(S, Pbh, stats ? stats + (b * H + h) * T * 2 : nullptr, scale, T);
      gemm_ld(Pbh, T, false, v, ld, false, out + b * T * d + h * hd, d, T, hd, T, Causal::lower_a);  // O = P·V
  });
}

// dqkv [B·T, 3d] from dout [B·T, d]: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ = scale·dS·K,
// dK = scale·dSᵀ·Q.
// P or (when P is null) stats from attention_forward_impl.
static void attention_backward_impl(const float* qkv, const float* P, const float* stats, const float* dout, float* dqkv,
  long B, long T, long H, long hd, float scale) {
  const long d = H * hd, ld = 3 * d;
  for_each_head(qkv, B, T, H, hd, [&](long b, long h, const float* q, const float* k, const float* v, float* S, float* p, float* dP) {
      const float* Pbh;
      if (P) {
        Pbh = P + (b * H + h) * T * T;
      } else {
        gemm_ld(q, ld, false, k, ld, true, S, T, T, T, hd, Causal::lower_c);  // S = Q·Kᵀ, as the forward pass
        head_probabilities(S, stats + (b * H + h) * T * 2, p, scale, T);
        Pbh = p;
      }
      const float* dO = dout + b * T * d + h * hd;
      float* dq = dqkv + b * T * ld + h * hd;
      gemm_ld(dO, d, false, v, ld, true, dP, T, T, T, hd, Causal::lower_c);  // dP = dO·Vᵀ
      head_softmax_backward(Pbh, dP, scale, T);
      gemm_ld(dP, T, false, k, ld, false, dq, ld, T, hd, T, Causal::lower_a);        // dQ = dS·K
      gemm_ld(dP, T, true, q, ld, false, dq + d, ld, T, hd, T, Causal::upper_a);     // dK = dSᵀ·Q
      gemm_ld(Pbh, T, true, dO, d, false, dq + 2 * d, ld, T, hd, T, Causal::upper_a);  // dV = Pᵀ·dO
  });
}

void attention_forward(const float* qkv, float* out, float* P, long B, long T, long H, long hd, float scale) {
  attention_forward_impl(qkv, out, P, nullptr, B, T, H, hd, scale);
}
void attention_backward(const float* qkv, const float* P, const float* dout, float* dqkv, long B, long T, long H,
  long hd, float scale) {
  attention_backward_impl(qkv, P, nullptr, dout, dqkv, B, T, H, hd, scale);
}
void attention_forward_stats(const float* qkv, float* out, float* stats, long B, long T, long H, long hd,
  float scale) {
  attention_forward_impl(qkv, out, nullptr, stats, B, T, H, hd, scale);
}
void attention_backward_recompute(const float* qkv, const float* stats, const float* dout, float* dqkv, long B,
  long T, long H, long hd, float scale) {
  attention_backward_impl(qkv, nullptr, stats, dout, dqkv, B, T, H, hd, scale);
}

// ---- attention of new tokens against a KV cache (incremental decoding, src/model/kv.ts) ----
// The cache keeps each head's keys and values transposed, kt and vt [hd × cap] per (b, h) (arrays
// [B, H, hd, cap]), positions along the rows: one new query's scores q·K over n cached keys are hd
// passes of a·x + y over n contiguous floats, and its output P·V hd dot products of n floats, all at
// full vector width whatever hd is. Cost per new token and head O(n·hd), no per-step copy of the cache.

// o [hd] = softmax(scale·q·K[0..n))·V[0..n) for one query, s [n] scratch
static void head_decode_row(const float* q, const float* kt, const float* vt, float* s, float* o, long n, long cap,
  long hd, float scale) {
  gemm_rows(q, kt, cap, false, s, 1, n, hd);  // s = q·K: Σ_c q[c]·kt[c, 0..n)
  head_softmax(s, s, nullptr, scale, n, 1, n - 1);  // the probabilities, in place
  gemm_rows(s, vt, cap, true, o, 1, hd, n);  // o = p·V: o[c] = p · vt[c, 0..n)
}

namespace {
thread_local std::vector<float> decode_scratch;
}  // namespace

// t new tokens per batch row b at positions L..L+t−1: their keys and values (from qkv [B·t, 3·H·hd], rows
// q | k | v) are written into kt, vt [B, H, hd, cap] at columns L..L+t−1, then out [B·t, H·hd] = each new
// query's attention over keys 0..L+i. A few queries go row by row; a longer run (a prompt) as two blocked
// matmuls per head on strided views of the queries and the cache, like attention_forward.
void decode_attention(const float* qkv, float* kt, float* vt, float* out, long B, long t, long L, long cap, long H,
  long hd, float scale) {
  const long d = H * hd, n = L + t;
  std::vector<float>& w = decode_scratch;
  const bool blocked = t > 4;
  const long need = blocked ? 2 * t * n : n;
  if ((long)w.size() < need) w.resize(need);
  for (long b = 0; b < B; b++)
    for (long h = 0; h < H; h++) {
      float* K = kt + (b * H + h) * hd * cap;
      float* V = vt + (b * H + h) * hd * cap;
      for (long i = 0; i < t; i++) {
        const float* row = qkv + (b * t + i) * 3 * d + h * hd;
        for (long c = 0; c < hd; c++) {
          K[c * cap + L + i] = row[d + c];
          V[c * cap + L + i] = row[2 * d + c];
        }
      }
      if (!blocked) {
        for (long i = 0; i < t; i++)
          head_decode_row(qkv + (b * t + i) * 3 * d + h * hd, K, V, w.data(), out + (b * t + i) * d + h * hd, L + i + 1,
            cap, hd, scale);
        continue;
      }
      float* S = w.data();
      float* P = S + t * n;
      gemm_ld(qkv + b * t * 3 * d + h * hd, 3 * d, false, K, cap, false, S, n, t, n, hd);  // S = Q·Kᵀ [t × n]
      head_softmax(S, P, nullptr, scale, n, t, L);
      gemm_ld(P, n, false, V, cap, true, out + b * t * d + h * hd, d, t, hd, n);  // O = P·V [t × hd]
    }
}

// Σ x², accumulated in double
KD_CLONES double sum_squares(const float* x, long n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (long i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
  return s;
}

// dst += src
KD_CLONES void add_into(float* dst, const float* src, long n) {
  for (long i = 0; i < n; i++) dst[i] += src[i];
}

// AdamW with decoupled decay (see src/train/optimizer.ts): g is scaled by `scale` (clipping) first.
KD_CLONES void adamw(float* p, float* m, float* v, const float* g, long n, float step, float rbc2, float b1, float b2,
  float eps, float decay, float scale) {
  for (long i = 0; i < n; i++) {
    const float gi = g[i] * scale;
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (std::sqrt(vi * rbc2) + eps);
  }
}

}  // namespace kd
