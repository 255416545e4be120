// N-API bindings of kd's native kernels. Every array argument is a typed array (on the wasm backend, a
// view of the wasm heap); sizes are checked here so a wrong call throws instead of touching memory it
// does not own. See src/backend/native.ts for the JavaScript side.
#include <node_api.h>
#include <cstdint>
#include <string>
#include "args.h"
#include "kd.h"

namespace {

using kd::Args;


// gemm(a: Float32Array, aOffsets: Int32Array, b: Float32Array, bOffsets: Int32Array, c: Float32Array, cOffset,
//      M, N, K, transA, transB)
// For each batch element i: c[cOffset + i·M·N, +M·N) = op(A at a[aOffsets[i]]) · op(B at b[bOffsets[i]]), offsets
// in elements. a, b and c may be views of the same memory (the wasm heap); the output must not overlap the inputs.
napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info, 11);
  size_t aLen = 0, aoLen = 0, bLen = 0, boLen = 0, cLen = 0;
  const float* A = a.array<float>(0, napi_float32_array, &aLen, "a");
  const int32_t* ao = a.array<int32_t>(1, napi_int32_array, &aoLen, "aOffsets");
  const float* B = a.array<float>(2, napi_float32_array, &bLen, "b");
  const int32_t* bo = a.array<int32_t>(3, napi_int32_array, &boLen, "bOffsets");
  float* C = a.array<float>(4, napi_float32_array, &cLen, "c");
  const long cOff = a.count(5), M = a.count(6), N = a.count(7), K = a.count(8);
  const bool tA = a.flag(9), tB = a.flag(10);
  if (!a.ok) return a.done();
  if (aoLen != boLen) a.fail("aOffsets and bOffsets differ in length");
  const long batch = (long)aoLen;
  const auto inside = [](long off, long size, size_t len) { return off >= 0 && off + size <= (long)len; };
  bool in = inside(cOff, batch * M * N, cLen);
  for (long i = 0; in && i < batch; i++) in = inside(ao[i], M * K, aLen) && inside(bo[i], K * N, bLen);
  if (!in) a.fail("operand outside its array");
  if (!a.ok) return a.done();
  for (long i = 0; i < batch; i++) kd::gemm(A + ao[i], tA, B + bo[i], tB, C + cOff + i * M * N, M, N, K);
  return nullptr;
}

// gemmCausal(a, b, c: Float32Array, M, N, K, transA, transB, causal): one product c = op(a)·op(b) of a causal
// shape (kd.h's Causal: 0 none, 1 lower_c, 2 lower_a, 3 upper_a), what attention's products run; for tests
napi_value GemmCausal(napi_env env, napi_callback_info info) {
  Args a(env, info, 9);
  const long M = a.count(3), N = a.count(4), K = a.count(5);
  const bool tA = a.flag(6), tB = a.flag(7);
  const long causal = a.count(8);
  const float* A = a.f32(0, M * K, "a");
  const float* B = a.f32(1, K * N, "b");
  float* C = a.f32(2, M * N, "c");
  if (a.ok && causal > 3) a.fail("causal must be 0, 1, 2 or 3");
  if (a.ok && causal != 0 && (causal == 1 ? M != N : M != K)) a.fail("a causal product is square (M = N, or M = K)");
  if (!a.ok) return a.done();
  kd::gemm(A, tA, B, tB, C, M, N, K, static_cast<kd::Causal>(causal));
  return nullptr;
}

napi_value GemmKernel(napi_env env, napi_callback_info) {
  napi_value name;
  napi_create_string_utf8(env, kd::gemm_kernel(), NAPI_AUTO_LENGTH, &name);
  return name;
}

napi_value GemmKernels(napi_env env, napi_callback_info) {
  const auto names = kd::gemm_kernels();
  napi_value list, name;
  napi_create_array_with_length(env, names.size(), &list);
  for (size_t i = 0; i < names.size(); i++) {
    napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, list, (uint32_t)i, name);
  }
  return list;
}

// useKernel(name): switch the matmul micro-kernel (tests, benchmarks); false when unsupported
napi_value UseKernel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  char want[32] = {0};
  size_t len = 0;
  bool found = napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) == napi_ok && argc == 1 &&
    napi_get_value_string_utf8(env, argv[0], want, sizeof want, &len) == napi_ok && kd::gemm_use_kernel(want);
  napi_get_boolean(env, found, &result);
  return result;
}

// geluForward(x, y)
napi_value GeluForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 2);
  size_t n = 0;
  const float* x = a.array<float>(0, napi_float32_array, &n, "x");
  float* y = a.f32(1, n, "y");
  if (a.ok) kd::gelu_forward(x, y, (long)n);
  return a.done();
}

// geluBackward(x, dy, dx)
napi_value GeluBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 3);
  size_t n = 0;
  const float* x = a.array<float>(0, napi_float32_array, &n, "x");
  const float* dy = a.f32(1, n, "dy");
  float* dx = a.f32(2, n, "dx");
  if (a.ok) kd::gelu_backward(x, dy, dx, (long)n);
  return a.done();
}

// layerNormForward(x, gamma, beta, y, mean, rstd, d, eps)
napi_value LayerNormForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 8);
  size_t n = 0;
  const float* x = a.array<float>(0, napi_float32_array, &n, "x");
  const long d = a.count(6);
  const float eps = (float)a.num(7);
  if (a.ok && (d == 0 || n % d)) a.fail("x is not a whole number of rows");
  const long rows = a.ok ? (long)n / d : 0;
  const float* g = a.f32(1, d, "gamma");
  const float* b = a.f32(2, d, "beta");
  float* y = a.f32(3, n, "y");
  float* mean = a.f32(4, rows, "mean");
  float* rstd = a.f32(5, rows, "rstd");
  if (a.ok) kd::layer_norm_forward(x, g, b, y, mean, rstd, rows, d, eps);
  return a.done();
}

// layerNormBackward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, d)
napi_value LayerNormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 9);
  size_t n = 0;
  const float* dy = a.array<float>(0, napi_float32_array, &n, "dy");
  const long d = a.count(8);
  if (a.ok && (d == 0 || n % d)) a.fail("dy is not a whole number of rows");
  const long rows = a.ok ? (long)n / d : 0;
  const float* x = a.f32(1, n, "x");
  const float* g = a.f32(2, d, "gamma");
  const float* mean = a.f32(3, rows, "mean");
  const float* rstd = a.f32(4, rows, "rstd");
  float* dx = a.f32(5, n, "dx");
  float* dg = a.f32(6, d, "dgamma");
  float* db = a.f32(7, d, "dbeta");
  if (a.ok) kd::layer_norm_backward(dy, x, g, mean, rstd, dx, dg, db, rows, d);
  return a.done();
}

// softmaxRows(s, g, lse: Float64Array, c, scale, accumulate, V)
napi_value SoftmaxRows(napi_env env, napi_callback_info info) {
  Args a(env, info, 7);
  size_t n = 0, lseLen = 0;
  const float* s = a.array<float>(0, napi_float32_array, &n, "s");
  const long V = a.count(6);
  if (a.ok && (V == 0 || n % V)) a.fail("s is not a whole number of rows");
  const long rows = a.ok ? (long)n / V : 0;
  float* g = a.f32(1, n, "g");
  double* lse = a.array<double>(2, napi_float64_array, &lseLen, "lse");
  if (a.ok && (long)lseLen < rows) a.fail("lse is too short");
  const float c = (float)a.num(3);
  const float* scale = a.f32(4, rows, "scale");
  const bool acc = a.flag(5);
  if (a.ok) kd::softmax_rows(s, g, lse, c, scale, acc, rows, V);
  return a.done();
}

// scaleRows(g, scale, V): g[n·V + v] *= scale[n]
napi_value ScaleRows(napi_env env, napi_callback_info info) {
  Args a(env, info, 3);
  size_t n = 0;
  float* g = a.array<float>(0, napi_float32_array, &n, "g");
  const long V = a.count(2);
  if (a.ok && (V == 0 || n % V)) a.fail("g is not a whole number of rows");
  const long rows = a.ok ? (long)n / V : 0;
  const float* scale = a.f32(1, rows, "scale");
  if (a.ok) kd::scale_rows(g, scale, rows, V);
  return a.done();
}

// attentionForward(qkv, out, P, B, T, H, hd, scale)
napi_value AttentionForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 8);
  const long B = a.count(3), T = a.count(4), H = a.count(5), hd = a.count(6);
  const float scale = (float)a.num(7);
  const float* qkv = a.f32(0, B * T * 3 * H * hd, "qkv");
  float* out = a.f32(1, B * T * H * hd, "out");
  float* P = a.f32(2, B * H * T * T, "P");
  if (a.ok) kd::attention_forward(qkv, out, P, B, T, H, hd, scale);
  return a.done();
}

// attentionBackward(qkv, P, dout, dqkv, B, T, H, hd, scale)
napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 9);
  const long B = a.count(4), T = a.count(5), H = a.count(6), hd = a.count(7);
  const float scale = (float)a.num(8);
  const float* qkv = a.f32(0, B * T * 3 * H * hd, "qkv");
  const float* P = a.f32(1, B * H * T * T, "P");
  const float* dout = a.f32(2, B * T * H * hd, "dout");
  float* dqkv = a.f32(3, B * T * 3 * H * hd, "dqkv");
  if (a.ok) kd::attention_backward(qkv, P, dout, dqkv, B, T, H, hd, scale);
  return a.done();
}

// attentionForwardStats(qkv, out, stats, B, T, H, hd, scale)
napi_value AttentionForwardStats(napi_env env, napi_callback_info info) {
  Args a(env, info, 8);
  const long B = a.count(3), T = a.count(4), H = a.count(5), hd = a.count(6);
  const float scale = (float)a.num(7);
  const float* qkv = a.f32(0, B * T * 3 * H * hd, "qkv");
  float* out = a.f32(1, B * T * H * hd, "out");
  float* stats = a.f32(2, B * H * T * 2, "stats");
  if (a.ok) kd::attention_forward_stats(qkv, out, stats, B, T, H, hd, scale);
  return a.done();
}

// attentionBackwardRecompute(qkv, stats, dout, dqkv, B, T, H, hd, scale)
napi_value AttentionBackwardRecompute(napi_env env, napi_callback_info info) {
  Args a(env, info, 9);
  const long B = a.count(4), T = a.count(5), H = a.count(6), hd = a.count(7);
  const float scale = (float)a.num(8);
  const float* qkv = a.f32(0, B * T * 3 * H * hd, "qkv");
  const float* stats = a.f32(1, B * H * T * 2, "stats");
  const float* dout = a.f32(2, B * T * H * hd, "dout");
  float* dqkv = a.f32(3, B * T * 3 * H * hd, "dqkv");
  if (a.ok) kd::attention_backward_recompute(qkv, stats, dout, dqkv, B, T, H, hd, scale);
  return a.done();
}

// decodeAttention(qkv, kt, vt, out, B, t, L, cap, H, hd, scale)
napi_value DecodeAttention(napi_env env, napi_callback_info info) {
  Args a(env, info, 11);
  const long B = a.count(4), t = a.count(5), L = a.count(6), cap = a.count(7), H = a.count(8), hd = a.count(9);
  const float scale = (float)a.num(10);
  if (a.ok && (t == 0 || L + t > cap)) a.fail("need 1 <= t and L + t <= cap");
  const float* qkv = a.f32(0, B * t * 3 * H * hd, "qkv");
  float* kt = a.f32(1, B * H * hd * cap, "kt");
  float* vt = a.f32(2, B * H * hd * cap, "vt");
  float* out = a.f32(3, B * t * H * hd, "out");
  if (a.ok) kd::decode_attention(qkv, kt, vt, out, B, t, L, cap, H, hd, scale);
  return a.done();
}

// sumSquares(x) → Σ x² (double)
napi_value SumSquares(napi_env env, napi_callback_info info) {
  Args a(env, info, 1);
  size_t n = 0;
  const float* x = a.array<float>(0, napi_float32_array, &n, "x");
  if (!a.ok) return a.done();
  napi_value r;
  napi_create_double(env, kd::sum_squares(x, (long)n), &r);
  return r;
}

// addInto(dst, src): dst += src
napi_value AddInto(napi_env env, napi_callback_info info) {
  Args a(env, info, 2);
  size_t n = 0;
  float* dst = a.array<float>(0, napi_float32_array, &n, "dst");
  const float* src = a.f32(1, n, "src");
  if (a.ok) kd::add_into(dst, src, (long)n);
  return a.done();
}

// adamw(p, m, v, g, step, rbc2, beta1, beta2, eps, decay, scale)
napi_value AdamW(napi_env env, napi_callback_info info) {
  Args a(env, info, 11);
  size_t n = 0;
  float* p = a.array<float>(0, napi_float32_array, &n, "p");
  float* m = a.f32(1, n, "m");
  float* v = a.f32(2, n, "v");
  const float* g = a.f32(3, n, "g");
  const float step = (float)a.num(4), rbc2 = (float)a.num(5), b1 = (float)a.num(6), b2 = (float)a.num(7);
  const float eps = (float)a.num(8), decay = (float)a.num(9), scale = (float)a.num(10);
  if (a.ok) kd::adamw(p, m, v, g, (long)n, step, rbc2, b1, b2, eps, decay, scale);
  return a.done();
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
    kd::method("gemm", Gemm),
    kd::method("gemmCausal", GemmCausal),
    kd::method("kernel", GemmKernel),
    kd::method("kernels", GemmKernels),
    kd::method("useKernel", UseKernel),
    kd::method("geluForward", GeluForward),
    kd::method("geluBackward", GeluBackward),
    kd::method("layerNormForward", LayerNormForward),
    kd::method("layerNormBackward", LayerNormBackward),
    kd::method("softmaxRows", SoftmaxRows),
    kd::method("scaleRows", ScaleRows),
    kd::method("attentionForward", AttentionForward),
    kd::method("attentionBackward", AttentionBackward),
    kd::method("attentionForwardStats", AttentionForwardStats),
    kd::method("attentionBackwardRecompute", AttentionBackwardRecompute),
    kd::method("decodeAttention", DecodeAttention),
    kd::method("sumSquares", SumSquares),
    kd::method("addInto", AddInto),
    kd::method("adamw", AdamW),
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return nullptr;
  if (!kd::register_build(env, exports)) return nullptr;
  return exports;
}
