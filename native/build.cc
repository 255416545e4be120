// The per-alternative loops of `kd dataset build` (src/dataset/columnar.ts): interning teacher tokens by
// their bytes, exp of the raw log-probs, and labelling positions (merging alternatives by first student
// id, sorting, entropy, float16 / 8-bit encoding). Every result is bit for bit what the JavaScript path
// computes (src/dataset/label.ts is the same algorithm): exp, log and log1p are V8's fdlibm
// (./fdlibm.h), this file is compiled without floating-point contraction, and the float16 and 8-bit
// tables come from JavaScript.
#include <node_api.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>
#include "args.h"
#include "fdlibm.h"

namespace {

// ---------------------------------------------------------------------------------------------
// byte-string table: dense indices in insertion order

struct Table {
  // a slot: the key's first 8 bytes, a tag (24 hash bits and the length) and the index + 1 (0: empty),
  // so a lookup of a key of at most 8 bytes (nearly every teacher token) reads one slot and nothing else
  struct Slot { uint64_t k8; uint32_t tag; uint32_t t1; };
  struct Entry { uint32_t start, len, hash; };
  std::vector<uint8_t> pool;
  std::vector<Entry> entries;
  std::vector<Slot> slots;
  uint32_t mask = 0;
  Table() { slots.assign(4096, Slot{0, 0, 0}); mask = 4095; }

  // first8 of a key with 8 readable bytes from p (one load and a mask)
  static uint64_t first8Fast(const uint8_t* p, uint32_t n) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return n >= 8 ? w : w & ((1ull << (8 * n)) - 1);
  }
  static uint64_t first8(const uint8_t* p, uint32_t n) {
    uint64_t w = 0;
    if (n >= 8) std::memcpy(&w, p, 8);
    else for (uint32_t j = 0; j < n; j++) w |= (uint64_t)p[j] << (8 * j);
    return w;
  }
  static uint32_t hashOf(uint64_t k8, const uint8_t* p, uint32_t n) {
    uint64_t h = (k8 ^ ((uint64_t)n << 56)) * 0x9E3779B97F4A7C15ull;
    for (uint32_t i = 8; i < n; i++) h = (h ^ p[i]) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 29;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 32;
    return (uint32_t)h;
  }

  int32_t intern(const uint8_t* p, uint32_t n) {
    const uint64_t k8 = first8(p, n);
    return intern(p, n, k8, hashOf(k8, p, n));
  }
  // the slot a key of hash h probes first (to prefetch)
  const Slot* home(uint32_t h) const { return &slots[h & mask]; }
  // intern with the key's first8 and hashOf already taken
  int32_t intern(const uint8_t* p, uint32_t n, uint64_t k8, uint32_t h) {
    const uint32_t tag = (h & ~0xffu) | (n < 255 ? n : 255);
    for (uint32_t s = h & mask;; s = (s + 1) & mask) {
      const Slot& q = slots[s];
      if (q.t1 == 0) {
        const uint32_t t = (uint32_t)entries.size();
        entries.push_back(Entry{(uint32_t)pool.size(), n, h});
        pool.insert(pool.end(), p, p + n);
        slots[s] = Slot{k8, tag, t + 1};
        if (2 * (t + 1) > mask + 1) rehash();
        return (int32_t)t;
      }
      if (q.tag == tag && q.k8 == k8) {
        const uint32_t t = q.t1 - 1;
        if (n <= 8) return (int32_t)t;
        const Entry& e = entries[t];
        if (e.len == n && std::memcmp(pool.data() + e.start + 8, p + 8, n - 8) == 0) return (int32_t)t;
      }
    }
  }

  void rehash() {
    const uint32_t cap = 2 * (mask + 1), m2 = cap - 1;
    std::vector<Slot> s2(cap, Slot{0, 0, 0});
    for (const Slot& q : slots) {
      if (q.t1 == 0) continue;
      uint32_t s = entries[q.t1 - 1].hash & m2;
      while (s2[s].t1 != 0) s = (s + 1) & m2;
      s2[s] = q;
    }
    slots.swap(s2);
    mask = m2;
  }
  size_t size() const { return entries.size(); }
};

// out[i] = fdlibm exp(x[i]) (below); out may be x
inline void exp_many(const double* x, double* out, long n);

// ---------------------------------------------------------------------------------------------
// N-API helpers

using kd::Args;

Table* tableArg(Args& c, size_t i) {
  void* p = nullptr;
  if (c.ok && napi_get_value_external(c.env, c.v[i], &p) != napi_ok) c.fail("expected a table");
  return static_cast<Table*>(p);
}

// [a, b] as a JavaScript array
napi_value pair(napi_env env, napi_value a, napi_value b) {
  napi_value r;
  napi_create_array_with_length(env, 2, &r);
  napi_set_element(env, r, 0, a);
  napi_set_element(env, r, 1, b);
  return r;
}

// tableNew(): a new byte-string table (freed with its JavaScript handle)
napi_value TableNew(napi_env env, napi_callback_info) {
  napi_value r;
  Table* t = new Table();
  napi_create_external(env, t, [](napi_env, void* p, void*) { delete static_cast<Table*>(p); }, nullptr, &r);
  return r;
}

// tableIntern(table, values: Uint8Array, offsets: Int32Array, from, to, out: Int32Array, at) → the table's size.
// out[at + i − from] = the index of values[offsets[i]..offsets[i+1]) for i in [from, to); −1 for an empty value.
napi_value TableIntern(napi_env env, napi_callback_info info) {
  Args c(env, info, 7);
  Table* t = tableArg(c, 0);
  size_t nv = 0, no = 0, nout = 0;
  const uint8_t* values = c.array<uint8_t>(1, napi_uint8_array, &nv, "values");
  const int32_t* off = c.array<int32_t>(2, napi_int32_array, &no, "offsets");
  const long from = c.count(3), to = c.count(4);
  int32_t* out = c.array<int32_t>(5, napi_int32_array, &nout, "out");
  const long at = c.count(6);
  if (c.ok && !(from <= to && (size_t)to < no + (to == from ? 1 : 0) && at + (to - from) <= (long)nout)) c.fail("range outside its arrays");
  if (!c.ok) return c.done();
  for (long i = from; i <= to && to > from; i++) {
    const int32_t s = off[i];
    if (s < 0 || (size_t)s > nv || (i > from && s < off[i - 1])) return c.fail("offsets outside the values"), c.done();
  }
  // hashes taken D values ahead and their first slots prefetched: the table of a big teacher vocabulary
  // is not in cache, and a lookup is then mostly the wait for its slot
  constexpr long D = 16;
  uint64_t ks[D];
  uint32_t hs[D];
  auto prep = [&](long i) {
    const int32_t s = off[i], e = off[i + 1];
    const uint32_t n = (uint32_t)(e - s);
    const uint64_t k8 = (size_t)s + 8 <= nv ? Table::first8Fast(values + s, n) : Table::first8(values + s, n);
    const uint32_t h = Table::hashOf(k8, values + s, n);
    ks[i & (D - 1)] = k8; hs[i & (D - 1)] = h;
    __builtin_prefetch(t->home(h));
  };
  for (long i = from; i < to && i < from + D; i++) prep(i);
  for (long i = from; i < to; i++) {
    const int32_t s = off[i], e = off[i + 1];
    const uint64_t k8 = ks[i & (D - 1)];
    const uint32_t h = hs[i & (D - 1)];
    if (i + D < to) prep(i + D);
    out[at + i - from] = e > s ? t->intern(values + s, (uint32_t)(e - s), k8, h) : -1;
  }
  return c.number((double)t->size());
}

// tableDump(table, from) → [pool: Uint8Array, off: Int32Array]: the keys of indices from..size−1
napi_value TableDump(napi_env env, napi_callback_info info) {
  Args c(env, info, 2);
  Table* t = tableArg(c, 0);
  const long from = c.count(1);
  if (c.ok && (size_t)from > t->size()) c.fail("from beyond the table");
  if (!c.ok) return c.done();
  const size_t n = t->size() - from;
  const size_t p0 = n ? t->entries[from].start : t->pool.size(), bytes = t->pool.size() - p0;
  void *pd, *od;
  napi_value pb, ob, pa, oa;
  napi_create_arraybuffer(env, bytes, &pd, &pb);
  napi_create_arraybuffer(env, 4 * (n + 1), &od, &ob);
  if (bytes) std::memcpy(pd, t->pool.data() + p0, bytes);
  int32_t* o = static_cast<int32_t*>(od);
  for (size_t i = 0; i < n; i++) o[i] = (int32_t)(t->entries[from + i].start - p0);
  o[n] = (int32_t)bytes;
  napi_create_typedarray(env, napi_uint8_array, bytes, pb, 0, &pa);
  napi_create_typedarray(env, napi_int32_array, n + 1, ob, 0, &oa);
  return pair(env, pa, oa);
}

// expF32(x: Float32Array, from, to, out: Float64Array): out[i − from] = Math.exp(x[i])
napi_value ExpF32(napi_env env, napi_callback_info info) {
  Args c(env, info, 4);
  size_t nx = 0, no = 0;
  const float* x = c.array<float>(0, napi_float32_array, &nx, "x");
  const long from = c.count(1), to = c.count(2);
  double* out = c.array<double>(3, napi_float64_array, &no, "out");
  if (c.ok && !(from <= to && (size_t)to <= nx && (size_t)(to - from) <= no)) c.fail("range outside its arrays");
  if (!c.ok) return c.done();
  for (long i = from; i < to; i++) out[i - from] = (double)x[i];
  exp_many(out, out, to - from);
  return c.done();
}

// math(op, x: Float64Array, out: Float64Array): 0 exp (vectorised), 1 log, 2 log1p, 3 exp (scalar) (tests compare them with Math.*)
napi_value MathF64(napi_env env, napi_callback_info info) {
  Args c(env, info, 3);
  const long op = c.count(0);
  size_t nx = 0, no = 0;
  const double* x = c.array<double>(1, napi_float64_array, &nx, "x");
  double* out = c.array<double>(2, napi_float64_array, &no, "out");
  if (c.ok && no < nx) c.fail("out is too short");
  if (!c.ok) return c.done();
  if (op == 0) exp_many(x, out, (long)nx);  // (the vector path, and the scalar one outside its range)
  else if (op == 3) for (size_t i = 0; i < nx; i++) out[i] = kd::fdlibm::exp(x[i]);
  else for (size_t i = 0; i < nx; i++) out[i] = op == 1 ? kd::fdlibm::log(x[i]) : kd::fdlibm::log1p(x[i]);
  return c.done();
}

// ---------------------------------------------------------------------------------------------
// exp of many values: fdlibm's exp four at a time (AVX2, same operations in the same order, no FMA),
// the scalar one for anything outside its common range (|x| < 2^-28, |x| ≥ 704, x = 1)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KD_EXP_AVX2 1
__attribute__((target("avx2"))) void exp_avx2(const double* x, double* out, long n) {
  const __m256d one = _mm256_set1_pd(1.0), two = _mm256_set1_pd(2.0), half = _mm256_set1_pd(0.5), mhalf = _mm256_set1_pd(-0.5);
  const __m256d ln2HI = _mm256_set1_pd(6.93147180369123816490e-01), mln2HI = _mm256_set1_pd(-6.93147180369123816490e-01);
  const __m256d ln2LO = _mm256_set1_pd(1.90821492927058770002e-10), mln2LO = _mm256_set1_pd(-1.90821492927058770002e-10);
  const __m256d invln2 = _mm256_set1_pd(1.44269504088896338700e+00), pone = _mm256_set1_pd(1.0), mone = _mm256_set1_pd(-1.0);
  const __m256d P1 = _mm256_set1_pd(1.66666666666666019037e-01), P2 = _mm256_set1_pd(-2.77777777770155933842e-03),
    P3 = _mm256_set1_pd(6.61375632143793436117e-05), P4 = _mm256_set1_pd(-1.65339022054652515390e-06),
    P5 = _mm256_set1_pd(4.13813679705723846039e-08);
  const __m256i absMask = _mm256_set1_epi64x(0x7fffffff), lowest = _mm256_set1_epi64x(0x3E2FFFFF), highest = _mm256_set1_epi64x(0x40860000);
  const __m256i cHalfLn2 = _mm256_set1_epi64x(0x3FD62E42), cThreeHalfLn2 = _mm256_set1_epi64x(0x3FF0A2B2), bias = _mm256_set1_epi64x(1023);
  long i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d xv = _mm256_loadu_pd(x + i);
    const __m256i b = _mm256_castpd_si256(xv);
    const __m256i hx = _mm256_and_si256(_mm256_srli_epi64(b, 32), absMask);
    const __m256i inRange = _mm256_and_si256(_mm256_cmpgt_epi64(hx, lowest), _mm256_cmpgt_epi64(highest, hx));
    const int ok = _mm256_movemask_pd(_mm256_castsi256_pd(inRange)) == 15 && _mm256_movemask_pd(_mm256_cmp_pd(xv, one, _CMP_EQ_OQ)) == 0;
    if (!ok) {
      for (int j = 0; j < 4; j++) out[i + j] = kd::fdlibm::exp(x[i + j]);
      continue;
    }
    const __m256d neg = _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_setzero_si256(), b));
    const __m256d notC = _mm256_castsi256_pd(_mm256_cmpgt_epi64(hx, cHalfLn2));  // |x| > 0.5 ln2
    const __m256d caseA = _mm256_and_pd(notC, _mm256_castsi256_pd(_mm256_cmpgt_epi64(cThreeHalfLn2, hx)));
    // case B: k = (int)(invln2·x + ±0.5), hi = x − k·ln2HI, lo = k·ln2LO
    const __m256d kd = _mm256_add_pd(_mm256_mul_pd(invln2, xv), _mm256_blendv_pd(half, mhalf, neg));
    const __m256d tB = _mm256_cvtepi32_pd(_mm256_cvttpd_epi32(kd));
    const __m256d hiB = _mm256_sub_pd(xv, _mm256_mul_pd(tB, ln2HI)), loB = _mm256_mul_pd(tB, ln2LO);
    // case A: k = ±1
    const __m256d hiA = _mm256_sub_pd(xv, _mm256_blendv_pd(ln2HI, mln2HI, neg)), loA = _mm256_blendv_pd(ln2LO, mln2LO, neg);
    const __m256d kA = _mm256_blendv_pd(pone, mone, neg);
    const __m256d hi = _mm256_blendv_pd(hiB, hiA, caseA), lo = _mm256_blendv_pd(loB, loA, caseA);
    const __m256d kk = _mm256_and_pd(_mm256_blendv_pd(tB, kA, caseA), notC);  // case C: k = 0
    const __m256d xr = _mm256_blendv_pd(xv, _mm256_sub_pd(hi, lo), notC);
    const __m256d t = _mm256_mul_pd(xr, xr);
    const __m256d poly = _mm256_mul_pd(t, _mm256_add_pd(P1, _mm256_mul_pd(t, _mm256_add_pd(P2, _mm256_mul_pd(t, _mm256_add_pd(P3, _mm256_mul_pd(t, _mm256_add_pd(P4, _mm256_mul_pd(t, P5)))))))));
    const __m256d c = _mm256_sub_pd(xr, poly);
    const __m256d xc = _mm256_mul_pd(xr, c);
    const __m256d yC = _mm256_sub_pd(one, _mm256_sub_pd(_mm256_div_pd(xc, _mm256_sub_pd(c, two)), xr));
    const __m256d y = _mm256_sub_pd(one, _mm256_sub_pd(_mm256_sub_pd(lo, _mm256_div_pd(xc, _mm256_sub_pd(two, c))), hi));
    const __m256i k64 = _mm256_cvtepi32_epi64(_mm256_cvttpd_epi32(kk));
    const __m256d twopk = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k64, bias), 52));
    _mm256_storeu_pd(out + i, _mm256_blendv_pd(yC, _mm256_mul_pd(y, twopk), notC));
  }
  for (; i < n; i++) out[i] = kd::fdlibm::exp(x[i]);
}
const bool kHasAvx2 = __builtin_cpu_supports("avx2");
#endif

// out[i] = fdlibm exp(x[i]); out may be x
inline void exp_many(const double* x, double* out, long n) {
#ifdef KD_EXP_AVX2
  if (kHasAvx2) return exp_avx2(x, out, n);
#endif
  for (long i = 0; i < n; i++) out[i] = kd::fdlibm::exp(x[i]);
}

// ---------------------------------------------------------------------------------------------
// labelling positions (src/dataset/label.ts, bit for bit)

inline double jsMax(double a, double b) {
  if (a > b) return a;
  if (b > a) return b;
  if (a == 0 && b == 0) return std::signbit(a) && std::signbit(b) ? -0.0 : 0.0;
  return a;
}
inline double jsMin(double a, double b) {
  if (a < b) return a;
  if (b < a) return b;
  if (a == 0 && b == 0) return std::signbit(a) || std::signbit(b) ? -0.0 : 0.0;
  return a;
}
inline double logAddExp(double a, double b) {
  const double m = jsMax(a, b);
  return m + kd::fdlibm::log1p(kd::fdlibm::exp(jsMin(a, b) - m));
}

inline uint16_t toFloat16Bits(double x) {
  const float f = (float)x;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint32_t sign = (bits >> 16) & 0x8000, exp = (bits >> 23) & 0xff;
  uint32_t mant = bits & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  const int e = (int)exp - 127 + 15;
  if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    const int shift = 14 - e;
    const uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1);
    uint32_t m = mant >> shift;
    if (rest > half || (rest == half && (m & 1))) m++;
    return (uint16_t)(sign | m);
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

// The 8-bit codes of one position's entries 1..m−1 (encodeLp8, src/schema/lp8.ts) without an exp per
// candidate: each of an entry's two candidate p̂ = exp(best − d̂(c)) is taken as exp(best)·exp(−d̂(c))
// (eNeg), which is within a relative S = 2⁻⁵³·(|best| + 32) of it (the subtraction's rounding, scaled by
// the argument, and an ulp for each exp and the product); `bound` follows how far the running error can
// then be from the exact one. A choice is made only when the two candidates' distances differ by more
// than 4× what those errors could change them by, so it is the exact path's choice; when one is that
// close (rare: a near tie) it returns false and the caller takes the exact path for the position.
inline bool codesFast(double best, double eb, double err, const double* lps, const double* ps, int32_t m, const double* delta,
                      const double* eNeg, uint8_t* out) {
  if (!(best > -680 && best <= 0 && std::isfinite(err))) return false;
  // R: the roundings of both paths' running error and distances, per unit of the values they add (≤ 2 each)
  const double S = 0x1p-53 * (std::fabs(best) + 32), R = 0x1p-51;
  double bound = 0;
  for (int32_t k = 1; k < m; k++) {
    double d = best - lps[k];
    if (!(d > 0)) d = 0;
    const double q0 = ps[k];
    if (!(q0 <= 1)) return false;  // (a probability above 1 — not from a log-prob ≤ 0 — is outside the bound's terms)
    int code;
    double q;
    if (d >= 20) {
      code = 255;
      q = eb * eNeg[255];
    } else {
      int lo = (int)std::floor(255 * std::sqrt(d / 20));
      if (lo > 254) lo = 254;
      if (delta[lo] > d) lo--;
      else if (delta[lo + 1] <= d) lo++;
      const double qLo = eb * eNeg[lo], qHi = eb * eNeg[lo + 1];
      const double a = std::fabs(err + qLo - q0), b = std::fabs(err + qHi - q0);
      const double tol = 4 * (bound + S * (qLo + qHi) + R * (std::fabs(err) + qLo + q0 + 1));
      if (!(std::fabs(a - b) > tol)) return false;
      if (a <= b) { code = lo; q = qLo; } else { code = lo + 1; q = qHi; }
    }
    out[k - 1] = (uint8_t)code;
    bound += S * q + R * (std::fabs(err) + q + q0 + 1);
    err += q - q0;
  }
  return true;
}

// label(m0: Int32Array, pOff: Int32Array, first: Uint16Array, lp: Float32Array, p: Float64Array, vocab, version, f16: Float32Array,
//       delta: Float64Array, counts: Int32Array, topIds: Uint16Array, entropies: Float64Array, lp16: Uint16Array|null,
//       best16: Uint16Array|null, lp8: Uint8Array|null) → [entries, maxK]
napi_value Label(napi_env env, napi_callback_info info) {
  Args c(env, info, 15);
  size_t nPos = 0, npo = 0, nf = 0, nl = 0, np = 0, n16 = 0, nd = 0, nc = 0, nt = 0, ne = 0, nlp16 = 0, nb = 0, n8 = 0;
  const int32_t* m0 = c.array<int32_t>(0, napi_int32_array, &nPos, "m0");
  const int32_t* pOff = c.array<int32_t>(1, napi_int32_array, &npo, "pOff");
  const uint16_t* first = c.array<uint16_t>(2, napi_uint16_array, &nf, "first");
  const float* lp = c.array<float>(3, napi_float32_array, &nl, "lp");
  const double* p = c.array<double>(4, napi_float64_array, &np, "p");
  const long vocab = c.count(5), version = c.count(6);
  const float* f16 = c.array<float>(7, napi_float32_array, &n16, "f16");
  const double* delta = c.array<double>(8, napi_float64_array, &nd, "delta");
  int32_t* counts = c.array<int32_t>(9, napi_int32_array, &nc, "counts");
  uint16_t* topIds = c.array<uint16_t>(10, napi_uint16_array, &nt, "topIds");
  double* ent = c.array<double>(11, napi_float64_array, &ne, "entropies");
  uint16_t* lp16 = c.array<uint16_t>(12, napi_uint16_array, &nlp16, "lp16", true);
  uint16_t* best16 = c.array<uint16_t>(13, napi_uint16_array, &nb, "best16", true);
  uint8_t* lp8 = c.array<uint8_t>(14, napi_uint8_array, &n8, "lp8", true);
  if (!c.ok) return c.done();
  size_t nAlt = 0;
  for (size_t j = 0; j < nPos; j++) {
    if (m0[j] <= 0) return c.fail("a position without alternatives"), c.done();
    nAlt += (size_t)m0[j];
  }
  for (size_t j = 0; c.ok && j < nPos; j++) if (j >= npo || pOff[j] < 0 || (size_t)pOff[j] + (size_t)m0[j] > np) c.fail("pOff outside p");
  if (!c.ok) return c.done();
  if (nf < nAlt || nl < nAlt || n16 != 65536 || nd != 256 || nc < nPos || nt < nAlt || ne < nPos) c.fail("an array is too short");
  else if (version == 1 ? nlp16 < nAlt : (nb < nPos || n8 < nAlt)) c.fail("an output array is too short");
  if (!c.ok) return c.done();
  for (size_t a = 0; a < nAlt; a++) if (first[a] >= vocab) return c.fail("a student id outside the vocabulary"), c.done();
  std::vector<int32_t> stamp(vocab, -1), slot(vocab, 0);
  std::vector<int32_t> ids;
  std::vector<double> lps, ps;
  std::vector<uint8_t> merged;
  std::vector<double> args(64), ex(64);
  std::vector<int> los(64);
  size_t v = 0, e = 0, codes = 0;
  int32_t maxK = 0;
  double eNeg[256];
  if (version != 1) for (int c2 = 0; c2 < 256; c2++) eNeg[c2] = kd::fdlibm::exp(-delta[c2]);
  for (size_t j = 0; j < nPos; j++) {
    const int32_t n0 = m0[j];
    if ((size_t)n0 > ids.size()) { ids.resize(n0); lps.resize(n0); ps.resize(n0); merged.resize(n0); }
    int32_t m = 0;
    bool any = false;
    const double* pj = p + pOff[j];
    for (int32_t a = 0; a < n0; a++, v++) {
      const int32_t id = first[v];
      if (stamp[id] != (int32_t)j) { stamp[id] = (int32_t)j; slot[id] = m; ids[m] = id; lps[m] = lp[v]; ps[m] = pj[a]; merged[m] = 0; m++; }
      else { const int32_t k = slot[id]; lps[k] = logAddExp(lps[k], (double)lp[v]); merged[k] = 1; any = true; }
    }
    if (any) for (int32_t k = 0; k < m; k++) if (merged[k]) ps[k] = kd::fdlibm::exp(lps[k]);
    for (int32_t a = 1; a < m; a++) {
      const int32_t id = ids[a];
      const double l = lps[a], q = ps[a];
      int32_t b = a - 1;
      while (b >= 0 && (lps[b] < l || (lps[b] == l && ids[b] > id))) { ids[b + 1] = ids[b]; lps[b + 1] = lps[b]; ps[b + 1] = ps[b]; b--; }
      ids[b + 1] = id; lps[b + 1] = l; ps[b + 1] = q;
    }
    counts[j] = m;
    if (m > maxK) maxK = m;
    for (int32_t k = 0; k < m; k++) topIds[e + k] = (uint16_t)ids[k];
    // entropy (src/dataset/convert.ts)
    if ((size_t)(2 * m) > args.size()) { args.resize(2 * m); ex.resize(2 * m); }
    double mx = -INFINITY;
    for (int32_t k = 0; k < m; k++) mx = jsMax(mx, lps[k]);
    for (int32_t k = 0; k < m; k++) args[k] = lps[k] - mx;
    exp_many(args.data(), ex.data(), m);
    double z = 0, sx = 0;
    for (int32_t k = 0; k < m; k++) {
      z += ex[k];
      sx += ex[k] * args[k];
    }
    ent[j] = kd::fdlibm::log(z) - sx / z;
    if (version == 1) {
      for (int32_t k = 0; k < m; k++) lp16[e + k] = toFloat16Bits(lps[k]);
    } else {
      // encodeLp8 (src/schema/lp8.ts)
      const uint16_t bits = toFloat16Bits(lps[0]);
      const double best = f16[bits];
      const double eb = kd::fdlibm::exp(best);
      double err = eb - ps[0];
      best16[j] = bits;
      if (m > 1 && codesFast(best, eb, err, lps.data(), ps.data(), m, delta, eNeg, lp8 + codes)) {
        codes += (size_t)(m - 1);
        e += m;
        continue;
      }
      // the two codes around each entry's distance and their p̂ (exps in bulk), then the running choice
      if ((size_t)m > los.size()) los.resize(m);
      for (int32_t k = 1; k < m; k++) {
        double d = best - lps[k];
        if (!(d > 0)) d = 0;
        int lo;
        if (d >= 20) lo = 255;
        else {
          lo = (int)std::floor(255 * std::sqrt(d / 20));
          if (lo > 254) lo = 254;
          if (delta[lo] > d) lo--;
          else if (delta[lo + 1] <= d) lo++;
        }
        los[k] = lo;
        args[2 * (k - 1)] = best - delta[lo];
        args[2 * (k - 1) + 1] = lo == 255 ? args[2 * (k - 1)] : best - delta[lo + 1];
      }
      exp_many(args.data(), ex.data(), 2 * (m - 1));
      for (int32_t k = 1; k < m; k++) {
        const double q0 = ps[k];
        const int lo = los[k];
        int code;
        double q;
        if (lo == 255) {
          code = 255;
          q = ex[2 * (k - 1)];
        } else {
          const double qLo = ex[2 * (k - 1)], qHi = ex[2 * (k - 1) + 1];
          if (std::fabs(err + qLo - q0) <= std::fabs(err + qHi - q0)) { code = lo; q = qLo; } else { code = lo + 1; q = qHi; }
        }
        lp8[codes++] = (uint8_t)code;
        err += q - q0;
      }
    }
    e += m;
  }
  napi_value r;
  napi_create_array_with_length(env, 2, &r);
  napi_set_element(env, r, 0, c.number((double)e));
  napi_set_element(env, r, 1, c.number(maxK));
  return r;
}


// ---------------------------------------------------------------------------------------------
// one raw record's per-position loops (src/dataset/columnar.ts: pass1 / pass2, their fast path: every
// token and every usable alternative has reported bytes, already interned in bulk). A record the fast
// path does not cover (a token from its string, an output array too short) is left to JavaScript:
// status 1, nothing of the record's counts changed.

inline bool bitSet(const uint8_t* bits, long j) { return bits == nullptr || ((bits[j >> 3] >> (j & 7)) & 1) != 0; }

// the record's columns; meta: [n, from, tb0, tb1, tokBinBase, pLo, pHi, posLpBase, bpLo, bpHi, posBytesBase, binBase, lpBase]
// (tb0/pLo/bpLo −1: the row's list is null)
struct RowCols {
  long n = 0, from = 0, tb0 = -1, tb1 = -1, tokBinBase = 0, pLo = -1, pHi = -1, posLpBase = 0, bpLo = -1, bpHi = -1, posBytesBase = 0, binBase = 0, lpBase = 0;
  const int32_t* tokIdx = nullptr; size_t nTokIdx = 0;
  const uint8_t* tokBinBits = nullptr; size_t nTokBinBits = 0;
  const int32_t* posLpOff = nullptr; size_t nPosLpOff = 0;
  const uint8_t* posLpBits = nullptr; size_t nPosLpBits = 0;
  const int32_t* posBytesOff = nullptr; size_t nPosBytesOff = 0;
  const uint8_t* posBytesBits = nullptr; size_t nPosBytesBits = 0;
  const int32_t* binOff = nullptr; size_t nBinOff = 0;
  const uint8_t* binBits = nullptr; size_t nBinBits = 0;
  const int32_t* topIdx = nullptr; size_t nTopIdx = 0;
  const float* lpVals = nullptr; size_t nLpVals = 0;
  const uint8_t* lpBits = nullptr; size_t nLpBits = 0;
  const double* ex = nullptr; size_t nEx = 0;
  long reported = 0;

  // arguments at..at+13: meta, tokIdx, tokBinBits?, posLpOff, posLpBits?, posBytesOff, posBytesBits?, binOff, binBits?, topIdx, lpVals, lpBits?, exp
  void read(Args& c, size_t at) {
    size_t nm = 0;
    const int32_t* m = c.array<int32_t>(at, napi_int32_array, &nm, "meta");
    if (c.ok && nm < 13) c.fail("meta is too short");
    if (!c.ok) return;
    n = m[0]; from = m[1]; tb0 = m[2]; tb1 = m[3]; tokBinBase = m[4]; pLo = m[5]; pHi = m[6]; posLpBase = m[7]; bpLo = m[8]; bpHi = m[9];
    posBytesBase = m[10]; binBase = m[11]; lpBase = m[12];
    tokIdx = c.array<int32_t>(at + 1, napi_int32_array, &nTokIdx, "tokIdx");
    tokBinBits = c.array<uint8_t>(at + 2, napi_uint8_array, &nTokBinBits, "tokBinBits", true);
    posLpOff = c.array<int32_t>(at + 3, napi_int32_array, &nPosLpOff, "posLpOff");
    posLpBits = c.array<uint8_t>(at + 4, napi_uint8_array, &nPosLpBits, "posLpBits", true);
    posBytesOff = c.array<int32_t>(at + 5, napi_int32_array, &nPosBytesOff, "posBytesOff");
    posBytesBits = c.array<uint8_t>(at + 6, napi_uint8_array, &nPosBytesBits, "posBytesBits", true);
    binOff = c.array<int32_t>(at + 7, napi_int32_array, &nBinOff, "binOff");
    binBits = c.array<uint8_t>(at + 8, napi_uint8_array, &nBinBits, "binBits", true);
    topIdx = c.array<int32_t>(at + 9, napi_int32_array, &nTopIdx, "topIdx");
    lpVals = c.array<float>(at + 10, napi_float32_array, &nLpVals, "lpVals");
    lpBits = c.array<uint8_t>(at + 11, napi_uint8_array, &nLpBits, "lpBits", true);
    ex = c.array<double>(at + 12, napi_float64_array, &nEx, "exp");
  }
  static bool bitIn(const uint8_t* bits, size_t nb, long j) { return bits == nullptr || (j >= 0 && (size_t)(j >> 3) < nb && ((bits[j >> 3] >> (j & 7)) & 1) != 0); }

  // position i's sampled token (its table index), or −2: not on the fast path
  int32_t posToken(long i) {
    if (tb0 < 0) return -2;
    const long k = tb0 + i;
    if (k >= tb1 || k < 0 || (size_t)k >= nTokIdx) return -2;
    const int32_t t = tokIdx[k];
    if (t < 0 || !bitIn(tokBinBits, nTokBinBits, tokBinBase + k)) return -2;
    reported++;
    return t;
  }

  // position i's usable alternatives into ts/lps/ps (capacity cap); their count, or −2: not on the fast path
  long alternatives(long i, int32_t* ts, float* lps, double* ps, long cap) {
    if (pLo < 0) return 0;
    const long p = pLo + i;
    if (p >= pHi || !bitIn(posLpBits, nPosLpBits, posLpBase + p)) return 0;
    if ((size_t)(posLpBase + p + 1) >= nPosLpOff) return -2;
    const long v0 = posLpOff[posLpBase + p], v1 = posLpOff[posLpBase + p + 1];
    long bLo = 0, bN = 0;
    if (bpLo >= 0) {
      const long q = bpLo + i;
      if (q < bpHi && bitIn(posBytesBits, nPosBytesBits, posBytesBase + q)) {
        if ((size_t)(posBytesBase + q + 1) >= nPosBytesOff) return -2;
        bLo = posBytesOff[posBytesBase + q];
        bN = posBytesOff[posBytesBase + q + 1] - bLo;
      }
    }
    if (v0 < 0 || v1 < v0 || (size_t)(lpBase + v1) > nLpVals || (size_t)v1 > nEx) return -2;
    long m = 0, rep = 0;
    for (long v = v0, j = 0; v < v1; v++, j++) {
      if (!bitIn(lpBits, nLpBits, lpBase + v)) continue;
      const double lp = lpVals[lpBase + v];
      if (!(lp > -9999.0 && lp < INFINITY)) continue;
      if (j >= bN) return -2;
      const long k = binBase + bLo + j;
      if (k < 0 || (size_t)(k + 1) >= nBinOff || (size_t)(k - binBase) >= nTopIdx) return -2;
      const int32_t s = binOff[k], e = binOff[k + 1];
      if (!(e > s) || !bitIn(binBits, nBinBits, k)) return -2;
      if (m >= cap) return -2;
      ts[m] = topIdx[k - binBase];
      ps[m] = ex[v];
      lps[m++] = (float)lp;
      rep++;
    }
    reported += rep;
    return m;
  }
};

// a thread's scratch of the row kernels (taken once a call: thread_local access costs a call in a shared library)
struct RowScratch {
  std::vector<int32_t> ts = std::vector<int32_t>(64), starts = std::vector<int32_t>(1024);
  std::vector<float> lps = std::vector<float>(64);
  std::vector<double> ps = std::vector<double>(64);
};
thread_local RowScratch tlRow;

inline long rowAlternatives(RowCols& rc, RowScratch& sc, long i) {
  for (;;) {
    const long m = rc.alternatives(i, sc.ts.data(), sc.lps.data(), sc.ps.data(), (long)sc.ts.size());
    if (m != -2 || sc.ts.size() >= (1u << 20)) return m;
    // maybe only the scratch was too short: retry once with room for the position's whole list
    const long need = rc.pLo >= 0 && rc.pLo + i < rc.pHi && (size_t)(rc.posLpBase + rc.pLo + i + 1) < rc.nPosLpOff
      ? rc.posLpOff[rc.posLpBase + rc.pLo + i + 1] - rc.posLpOff[rc.posLpBase + rc.pLo + i] : 0;
    if (need <= (long)sc.ts.size()) return -2;
    sc.ts.resize(need); sc.lps.resize(need); sc.ps.resize(need);
  }
}

// pass1Row(13 column arguments, events: Int32Array, p: Float64Array, io: Int32Array):
// io in [evN, pN], out [evN, pN, status, positions, reported]
napi_value Pass1Row(napi_env env, napi_callback_info info) {
  Args c(env, info, 16);
  RowCols rc;
  rc.read(c, 0);
  size_t ne = 0, np = 0, nio = 0;
  int32_t* ev = c.array<int32_t>(13, napi_int32_array, &ne, "events");
  double* pa = c.array<double>(14, napi_float64_array, &np, "p");
  int32_t* io = c.array<int32_t>(15, napi_int32_array, &nio, "io");
  if (c.ok && nio < 5) c.fail("io is too short");
  if (!c.ok) return c.done();
  long en = io[0], pn = io[1], positions = 0;
  io[2] = 1;
  RowScratch& sc = tlRow;
  for (long i = rc.from; i < rc.n; i++) {
    const int32_t t = rc.posToken(i);
    if (t < 0) return c.done();
    positions++;
    if ((size_t)en >= ne) return c.done();
    ev[en++] = -1 - t;
    const long m = rowAlternatives(rc, sc, i);
    if (m < 0 || (size_t)(en + m) > ne || (size_t)(pn + m) > np) return c.done();
    for (long a = 0; a < m; a++) { ev[en++] = sc.ts[a]; pa[pn++] = sc.ps[a]; }
  }
  io[0] = (int32_t)en; io[1] = (int32_t)pn; io[2] = 0; io[3] = (int32_t)positions; io[4] = (int32_t)rc.reported;
  return c.done();
}

// pass2Row(13 column arguments, cOff, cLen, cIds: Int32Array, cFirst: Int32Array, cOne: Uint8Array,
//          ids: Uint16Array, mask: Uint8Array, m0: Int32Array, pOff: Int32Array, first: Uint16Array, lps: Float32Array,
//          p: Float64Array, one: Uint8Array, io: Int32Array)
// io in [idBase, idsN, m0N, altN, pN], out [.., idsN, m0N, altN, pN, status, contextEnd, teacherPositions, labelled, noPredecessor, noAlternatives, reported]
napi_value Pass2Row(napi_env env, napi_callback_info info) {
  Args c(env, info, 27);
  RowCols rc;
  rc.read(c, 0);
  size_t nco = 0, ncl = 0, nci = 0, ncf = 0, nc1 = 0, nids = 0, nmask = 0, nm0 = 0, npo = 0, nfirst = 0, nlps = 0, np = 0, none = 0, nio = 0;
  const int32_t* cOff = c.array<int32_t>(13, napi_int32_array, &nco, "cOff");
  const int32_t* cLen = c.array<int32_t>(14, napi_int32_array, &ncl, "cLen");
  const int32_t* cIds = c.array<int32_t>(15, napi_int32_array, &nci, "cIds");
  const int32_t* cFirst = c.array<int32_t>(16, napi_int32_array, &ncf, "cFirst");
  const uint8_t* cOne = c.array<uint8_t>(17, napi_uint8_array, &nc1, "cOne");
  uint16_t* ids = c.array<uint16_t>(18, napi_uint16_array, &nids, "ids");
  uint8_t* mask = c.array<uint8_t>(19, napi_uint8_array, &nmask, "mask");
  int32_t* m0a = c.array<int32_t>(20, napi_int32_array, &nm0, "m0");
  int32_t* pOff = c.array<int32_t>(21, napi_int32_array, &npo, "pOff");
  uint16_t* first = c.array<uint16_t>(22, napi_uint16_array, &nfirst, "first");
  float* lpsOut = c.array<float>(23, napi_float32_array, &nlps, "lps");
  double* pa = c.array<double>(24, napi_float64_array, &np, "p");
  uint8_t* one = c.array<uint8_t>(25, napi_uint8_array, &none, "one");
  int32_t* io = c.array<int32_t>(26, napi_int32_array, &nio, "io");
  if (c.ok && nio < 14) c.fail("io is too short");
  if (!c.ok) return c.done();
  // the cache's tokens 0..encoded−1: the shortest of its arrays
  size_t encoded = nco < ncl ? nco : ncl;
  if (ncf < encoded) encoded = ncf;
  if (nc1 < encoded) encoded = nc1;
  const long idBase = io[0];
  long idsN = io[1], m0N = io[2], altN = io[3], pN = io[4];
  io[5] = 1;
  const long n = rc.n;
  RowScratch& sc = tlRow;
  if ((long)sc.starts.size() < n) sc.starts.resize(2 * n);
  int32_t* starts = sc.starts.data();
  long contextEnd = -1;
  for (long i = 0; i < n; i++) {
    const int32_t t = rc.posToken(i);
    if (t < 0 || (size_t)t >= encoded) return c.done();
    if (i >= rc.from && contextEnd < 0) contextEnd = idsN - idBase;
    starts[i] = (int32_t)(idsN - idBase);
    const long s0 = cOff[t], cnt = cLen[t];
    if (s0 < 0 || cnt < 0 || (size_t)(s0 + cnt) > nci || (size_t)(idsN + cnt) > nids) return c.done();
    for (long k = 0; k < cnt; k++) ids[idsN + k] = (uint16_t)cIds[s0 + k];
    idsN += cnt;
  }
  if (contextEnd < 0) contextEnd = idsN - idBase;
  if ((size_t)idsN > nmask) return c.done();
  std::memset(mask + idBase, 0, (size_t)(idsN - idBase));
  long teacherPositions = 0, labelled = 0, noPred = 0, noAlt = 0;
  for (long i = rc.from; i < n; i++) {
    teacherPositions++;
    const long m = rowAlternatives(rc, sc, i);
    if (m < 0 || (size_t)(pN + m) > np || (size_t)(pN + m) > none) return c.done();
    const int32_t* ts = sc.ts.data();
    const float* lps = sc.lps.data();
    const double* ps = sc.ps.data();
    for (long a = 0; a < m; a++) if ((size_t)ts[a] >= encoded) return c.done();
    const long p0 = pN;
    for (long a = 0; a < m; a++) { pa[pN] = ps[a]; one[pN++] = cOne[ts[a]]; }
    if (m == 0) { noAlt++; continue; }
    const long pos = starts[i] - 1;
    if (pos < 0) { noPred++; continue; }
    if ((size_t)m0N >= nm0 || (size_t)m0N >= npo || (size_t)(altN + m) > nfirst || (size_t)(altN + m) > nlps) return c.done();
    mask[idBase + pos] = 1;
    m0a[m0N] = (int32_t)m;
    pOff[m0N++] = (int32_t)p0;
    for (long a = 0; a < m; a++) { first[altN + a] = (uint16_t)cFirst[ts[a]]; lpsOut[altN + a] = lps[a]; }
    altN += m;
    labelled++;
  }
  io[1] = (int32_t)idsN; io[2] = (int32_t)m0N; io[3] = (int32_t)altN; io[4] = (int32_t)pN; io[5] = 0; io[6] = (int32_t)contextEnd;
  io[7] = (int32_t)teacherPositions; io[8] = (int32_t)labelled; io[9] = (int32_t)noPred; io[10] = (int32_t)noAlt; io[11] = (int32_t)rc.reported;
  return c.done();
}

// group1(events: Int32Array, p: Float64Array, nLocal, order: Int32Array, cnt: Int32Array, qOff: Int32Array,
//        qs: Float64Array) → the number of tokens the events name.
// A shard's pass 1 events (src/dataset/columnar.ts), grouped by token where they are made (a worker thread):
// order = the local tokens in the order the events first name them; per named token i its count events
// cnt[i] and its mass events' p in event order at qs[qOff[i]..qOff[i+1]). fold1 then adds them to the
// global sums with sequential reads, the same additions in the same order as event by event.
napi_value Group1(napi_env env, napi_callback_info info) {
  Args c(env, info, 7);
  size_t ne = 0, np = 0, no = 0, nc = 0, nq = 0, ns = 0;
  const int32_t* ev = c.array<int32_t>(0, napi_int32_array, &ne, "events");
  const double* p = c.array<double>(1, napi_float64_array, &np, "p");
  const long nl = c.count(2);
  int32_t* order = c.array<int32_t>(3, napi_int32_array, &no, "order");
  int32_t* cnt = c.array<int32_t>(4, napi_int32_array, &nc, "cnt");
  int32_t* qOff = c.array<int32_t>(5, napi_int32_array, &nq, "qOff");
  double* qs = c.array<double>(6, napi_float64_array, &ns, "qs");
  const size_t nLocal = nl > 0 ? (size_t)nl : 0;
  if (c.ok && (no < nLocal || nc < nLocal || nq < nLocal + 1 || ns < np)) c.fail("arrays too short");
  if (!c.ok) return c.done();
  thread_local std::vector<int32_t> rank, cur;
  rank.assign(nLocal, -1);
  int32_t named = 0;
  size_t k = 0;
  qOff[0] = 0;
  for (size_t e = 0; e < ne; e++) {
    const int32_t x = ev[e];
    const int32_t t = x < 0 ? -1 - x : x;
    if ((size_t)t >= nLocal || (x >= 0 && k++ >= np)) return c.fail("event outside the shard's tokens"), c.done();
    int32_t r = rank[t];
    if (r < 0) { r = rank[t] = named; order[named] = t; cnt[named] = 0; qOff[named + 1] = 0; named++; }
    if (x < 0) cnt[r]++;
    else qOff[r + 1]++;
  }
  for (int32_t i = 0; i < named; i++) qOff[i + 1] += qOff[i];
  cur.assign(qOff, qOff + named);
  k = 0;
  for (size_t e = 0; e < ne; e++) {
    const int32_t x = ev[e];
    if (x >= 0) qs[cur[rank[x]]++] = p[k++];
  }
  return c.number((double)named);
}

// fold1(global table, pool: Uint8Array, off: Int32Array, order, cnt, qOff, qs (group1's, `named` tokens), named,
//       p: Float64Array, count: Float64Array, mass: Float64Array, total: Float64Array) → the global table's size.
// ./build.ts BuildFold.addPass1: a shard's tokens join the global table in the order its events first name
// them; each one's mass goes on from the global one through its events' p in order, its count adds up its
// count events (integers: exact in any order), and total[0] adds every p in event order.
napi_value Fold1(napi_env env, napi_callback_info info) {
  Args c(env, info, 12);
  Table* g = tableArg(c, 0);
  size_t npool = 0, noff = 0, no = 0, nc = 0, nq = 0, ns = 0, np = 0, ncount = 0, nm = 0, nt = 0;
  const uint8_t* pool = c.array<uint8_t>(1, napi_uint8_array, &npool, "pool");
  const int32_t* off = c.array<int32_t>(2, napi_int32_array, &noff, "off");
  const int32_t* order = c.array<int32_t>(3, napi_int32_array, &no, "order");
  const int32_t* cnt = c.array<int32_t>(4, napi_int32_array, &nc, "cnt");
  const int32_t* qOff = c.array<int32_t>(5, napi_int32_array, &nq, "qOff");
  const double* qs = c.array<double>(6, napi_float64_array, &ns, "qs");
  const long nn = c.count(7);
  const double* p = c.array<double>(8, napi_float64_array, &np, "p");
  double* count = c.array<double>(9, napi_float64_array, &ncount, "count");
  double* mass = c.array<double>(10, napi_float64_array, &nm, "mass");
  double* total = c.array<double>(11, napi_float64_array, &nt, "total");
  const size_t nLocal = noff ? noff - 1 : 0, named = nn > 0 ? (size_t)nn : 0;
  if (c.ok && (named > nLocal || no < named || nc < named || nq < named + 1 || nt < 1 || ncount < g->size() + named || nm < g->size() + named)) c.fail("arrays too short");
  if (c.ok) for (size_t t = 0; t < nLocal; t++) if (off[t] < 0 || off[t + 1] < off[t] || (size_t)off[t + 1] > npool) { c.fail("offsets outside the pool"); break; }
  if (c.ok) for (size_t i = 0; i < named; i++) if ((size_t)order[i] >= nLocal || qOff[i] < 0 || qOff[i + 1] < qOff[i] || (size_t)qOff[i + 1] > ns) { c.fail("a group outside the shard"); break; }
  if (!c.ok) return c.done();
  for (size_t i = 0; i < named; i++) {
    const int32_t t = order[i];
    const int32_t gi = g->intern(pool + off[t], (uint32_t)(off[t + 1] - off[t]));
    double m = mass[gi];
    for (int32_t j = qOff[i]; j < qOff[i + 1]; j++) m += qs[j];
    mass[gi] = m;
    count[gi] += cnt[i];
  }
  double tot = total[0];
  for (size_t k = 0; k < np; k++) tot += p[k];
  total[0] = tot;
  return c.number((double)g->size());
}

// sums(x: Float64Array, flags: Uint8Array|null, acc: Float64Array, at): acc[at] += every x in order; with flags,
// also acc[at + 1] += the x whose flag is set (./build.ts BuildFold.addPass2's statistics)
napi_value Sums(napi_env env, napi_callback_info info) {
  Args c(env, info, 4);
  size_t nx = 0, nf = 0, na = 0;
  const double* x = c.array<double>(0, napi_float64_array, &nx, "x");
  const uint8_t* f = c.array<uint8_t>(1, napi_uint8_array, &nf, "flags", true);
  double* acc = c.array<double>(2, napi_float64_array, &na, "acc");
  const long at = c.count(3);
  if (c.ok && ((size_t)at + (f ? 2 : 1) > na || (f && nf < nx))) c.fail("arrays too short");
  if (!c.ok) return c.done();
  double s = acc[at];
  if (f) {
    double s1 = acc[at + 1];
    for (size_t k = 0; k < nx; k++) { s += x[k]; if (f[k]) s1 += x[k]; }
    acc[at + 1] = s1;
  } else {
    for (size_t k = 0; k < nx; k++) s += x[k];
  }
  acc[at] = s;
  return c.done();
}


// packRows(ids: Uint16Array, rowEnt: Int32Array, bits, out: Uint8Array, packOff: Int32Array): row r's ids
// ids[rowEnt[r]..rowEnt[r+1]) packed little-end first, `bits` bits each, into out[packOff[r]..packOff[r+1])
// (src/schema/lp8.ts packIds, row by row; packOff is filled here)
napi_value PackRows(napi_env env, napi_callback_info info) {
  Args c(env, info, 5);
  size_t ni = 0, nr = 0, no = 0, np = 0;
  const uint16_t* ids = c.array<uint16_t>(0, napi_uint16_array, &ni, "ids");
  const int32_t* rowEnt = c.array<int32_t>(1, napi_int32_array, &nr, "rowEnt");
  const long bits = c.count(2);
  uint8_t* out = c.array<uint8_t>(3, napi_uint8_array, &no, "out");
  int32_t* packOff = c.array<int32_t>(4, napi_int32_array, &np, "packOff");
  if (c.ok && (bits < 1 || bits > 16 || nr < 1 || np < nr)) c.fail("bad bits or offsets");
  if (!c.ok) return c.done();
  const size_t rows = nr - 1;
  size_t at = 0;
  packOff[0] = 0;
  for (size_t r = 0; r < rows; r++) {
    const int32_t e0 = rowEnt[r], e1 = rowEnt[r + 1];
    if (e0 < 0 || e1 < e0 || (size_t)e1 > ni) return c.fail("rowEnt outside ids"), c.done();
    const size_t len = ((size_t)(e1 - e0) * (size_t)bits + 7) / 8;
    if (at + len > no) return c.fail("out too short"), c.done();
    uint64_t acc = 0;
    long nAcc = 0;
    uint8_t* o = out + at;
    for (int32_t k = e0; k < e1; k++) {
      acc |= (uint64_t)(ids[k] & ((1u << bits) - 1)) << nAcc;
      nAcc += bits;
      while (nAcc >= 8) { *o++ = (uint8_t)acc; acc >>= 8; nAcc -= 8; }
    }
    if (nAcc > 0) *o++ = (uint8_t)acc;
    at += len;
    packOff[r + 1] = (int32_t)at;
  }
  return c.done();
}

// ---------------------------------------------------------------------------------------------
// a raw shard's bytes mapped read-only instead of read into a buffer (src/dataset/columnar.ts
// readRawShard): no copy out of the page cache. unmapFile detaches the ArrayBuffer before unmapping,
// so a view kept past it reads as empty instead of faulting.

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define KD_MMAP 1
struct Mapping {
  void* p;
  size_t n;
  int owners;  // the ArrayBuffer and the handle
  void release() {
    if (--owners == 0) {
      if (p) munmap(p, n);
      delete this;
    }
  }
};

// mapFile(path) → [ArrayBuffer, handle], or null when the file cannot be mapped (empty, not a regular file: the caller reads it)
napi_value MapFile(napi_env env, napi_callback_info info) {
  Args c(env, info, 1);
  if (!c.ok) return c.done();
  size_t len = 0;
  if (napi_get_value_string_utf8(env, c.v[0], nullptr, 0, &len) != napi_ok) return c.fail("expected a path"), c.done();
  std::string path(len, '\0');
  napi_get_value_string_utf8(env, c.v[0], &path[0], len + 1, &len);
  napi_value null;
  napi_get_null(env, &null);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return null;
  struct stat st;
  void* p = MAP_FAILED;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) p = mmap(nullptr, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return null;
  Mapping* m = new Mapping{p, (size_t)st.st_size, 2};
  // V8 counts an ArrayBuffer's bytes as external memory and starts a full GC each time that has grown by
  // ≈ 64 MiB: here every shard or two, for memory no garbage holds (the page cache's, unmapped by unmapFile,
  // not by a GC; measured: 4–6% of a build's CPU). They are taken off the count before the buffer adds them.
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)m->n, &ignored);
  napi_value ab, h;
  if (napi_create_external_arraybuffer(env, p, m->n, [](napi_env, void*, void* hint) { static_cast<Mapping*>(hint)->release(); }, m, &ab) != napi_ok) {
    munmap(p, m->n);
    delete m;
    return null;
  }
  napi_create_external(env, m, [](napi_env, void* d, void*) { static_cast<Mapping*>(d)->release(); }, nullptr, &h);
  return pair(env, ab, h);
}

// unmapFile(ArrayBuffer, handle): detaches the buffer, then unmaps the file
napi_value UnmapFile(napi_env env, napi_callback_info info) {
  Args c(env, info, 2);
  void* d = nullptr;
  if (c.ok && napi_get_value_external(env, c.v[1], &d) != napi_ok) c.fail("expected a mapping");
  if (!c.ok) return c.done();
  Mapping* m = static_cast<Mapping*>(d);
  if (m->p && napi_detach_arraybuffer(env, c.v[0]) == napi_ok) {
    munmap(m->p, m->n);
    m->p = nullptr;
    // (V8 takes the bytes off its count again when it sweeps the detached buffer: mapFile's, undone)
    int64_t ignored;
    napi_adjust_external_memory(env, (int64_t)m->n, &ignored);
  }
  return c.done();
}
#endif

}  // namespace

namespace kd {
// called from addon.cc's module init
bool register_build(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
    kd::method("tableNew", TableNew),
    kd::method("tableIntern", TableIntern),
    kd::method("tableDump", TableDump),
    kd::method("expF32", ExpF32),
    kd::method("mathF64", MathF64),
    kd::method("label", Label),
    kd::method("pass1Row", Pass1Row),
    kd::method("pass2Row", Pass2Row),
    kd::method("group1", Group1),
    kd::method("fold1", Fold1),
    kd::method("sums", Sums),
    kd::method("packRows", PackRows),
#ifdef KD_MMAP
    kd::method("mapFile", MapFile),
    kd::method("unmapFile", UnmapFile),
#endif
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
}  // namespace kd
