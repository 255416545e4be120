/**
 * kd's optional native kernels (native/*.cc, built by `npm install` with node-gyp when a C++ compiler
 * is there): a matmul and the fused ops of a training step (LayerNorm, GELU, causal attention, the
 * loss's softmax rows, AdamW). They work in place on tensor memory — the wasm heap, or the cpu backend's arrays. On this
 * project's machines the matmul runs 2-3× faster than XNNPACK's 128-bit wasm SIMD with AVX2 (48-64 GFLOP/s a core) and 4-6× with AVX-512 (89-159). When the
 * addon is missing (no compiler at install time, an unsupported platform) or KD_NATIVE=0, every caller
 * falls back to tfjs ops (XNNPACK for matmuls) and nothing else changes. The addon also carries the
 * dataset build's kernels (native/build.cc, typed in src/dataset/label.ts): without them the build runs
 * its JavaScript path, which writes the same bytes.
 */
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeKernels {
  /**
   * For each batch element i: c[cOffset + i·M·N, +M·N) = op(A at a[aOffsets[i]]) · op(B at b[bOffsets[i]]),
   * row-major float32, offsets in elements. a, b, c may view the same memory; c must not overlap a or b.
   */
  gemm(a: Float32Array, aOffsets: Int32Array, b: Float32Array, bOffsets: Int32Array, c: Float32Array, cOffset: number,
    M: number, N: number, K: number, transposeA: boolean, transposeB: boolean): void;
  /**
   * One product c = op(a)·op(b) of attention's causal shapes, what the fused attention runs: causal 1, only c's
   * entries on and below the diagonal are computed (M = N; whole tiles above it are left as they were); 2, op(a)
   * is 0 above its diagonal; 3, op(a) is 0 below it (M = K). What is computed equals the full product bit for bit.
   */
  gemmCausal?(a: Float32Array, b: Float32Array, c: Float32Array, M: number, N: number, K: number, transposeA: boolean,
    transposeB: boolean, causal: 0 | 1 | 2 | 3): void;
  /** the micro-kernel in use: avx512, avx2 or generic */
  kernel(): string;
  /** the micro-kernels this CPU supports, best first (the best is used) */
  kernels(): string[];
  /** use another supported micro-kernel (tests, benchmarks); false if unsupported */
  useKernel(name: string): boolean;
  /** y = 0.5·x·(1 + erf(x/√2)) */
  geluForward(x: Float32Array, y: Float32Array): void;
  /** dx = dy · d gelu(x)/dx */
  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array): void;
  /** rows of d: y = (x − μ)·rstd·γ + β, rstd = 1/√(σ² + ε); writes mean and rstd per row */
  layerNormForward(x: Float32Array, gamma: Float32Array, beta: Float32Array, y: Float32Array, mean: Float32Array,
    rstd: Float32Array, d: number, eps: number): void;
  /** dx, and dγ, dβ summed over rows (overwritten) */
  layerNormBackward(dy: Float32Array, x: Float32Array, gamma: Float32Array, mean: Float32Array, rstd: Float32Array,
    dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array, d: number): void;
  /** rows of V: lse[n] = log Σ exp(c·s), g (+)= scale[n]·softmax(c·s) */
  softmaxRows(s: Float32Array, g: Float32Array, lse: Float64Array, c: number, scale: Float32Array, accumulate: boolean, V: number): void;
  /** rows of V: g[n·V + v] *= scale[n] */
  scaleRows(g: Float32Array, scale: Float32Array, V: number): void;
  /**
   * Causal self-attention over a fused qkv [B·T, 3·H·hd] (each row q | k | v, heads side by side):
   * out [B·T, H·hd] = softmax(scale·QKᵀ, causal)·V per head; P [B·H, T, T] receives the probabilities.
   */
  attentionForward(qkv: Float32Array, out: Float32Array, P: Float32Array, B: number, T: number, H: number, hd: number, scale: number): void;
  /** dqkv [B·T, 3·H·hd] from dout [B·T, H·hd], with P from the forward pass */
  attentionBackward(qkv: Float32Array, P: Float32Array, dout: Float32Array, dqkv: Float32Array, B: number, T: number, H: number,
    hd: number, scale: number): void;
  /**
   * The same attention keeping only each row's softmax statistics, stats [B·H, T, 2] (row max, 1/sum),
   * for the backward pass, which recomputes the probabilities a row at a time, bit for bit the forward's:
   * O(B·H·T) memory instead of P's O(B·H·T²). Absent in kd_native builds before it (then P is kept).
   */
  attentionForwardStats?(qkv: Float32Array, out: Float32Array, stats: Float32Array, B: number, T: number, H: number, hd: number, scale: number): void;
  attentionBackwardRecompute?(qkv: Float32Array, stats: Float32Array, dout: Float32Array, dqkv: Float32Array, B: number, T: number, H: number,
    hd: number, scale: number): void;
  /**
   * Attention of t new tokens per batch row against a KV cache kept transposed, kt and vt [B, H, hd, cap]
   * (row (b, h, c): component c of head h at positions 0..cap): writes the new tokens' keys and values from
   * qkv [B·t, 3·H·hd] at positions L..L+t−1, then out [B·t, H·hd] = softmax(scale·q·Kᵀ)·V of new query i
   * over positions 0..L+i. Absent in kd_native builds before it (src/model/kv.ts then uses tfjs ops).
   */
  decodeAttention?(qkv: Float32Array, kt: Float32Array, vt: Float32Array, out: Float32Array, B: number, t: number, L: number, cap: number,
    H: number, hd: number, scale: number): void;
  /** Σ x², accumulated in float64 */
  sumSquares(x: Float32Array): number;
  /** dst += src */
  addInto(dst: Float32Array, src: Float32Array): void;
  /** m ← β1·m + (1−β1)·g', v ← β2·v + (1−β2)·g'², p ← p·decay − step·m/(√(v·rbc2) + ε), with g' = g·scale */
  adamw(p: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, step: number, rbc2: number, beta1: number,
    beta2: number, eps: number, decay: number, scale: number): void;
}

export interface NativeStatus {
  loaded: boolean;
  /** micro-kernel name when loaded, else why not */
  detail: string;
  path: string;
}

const ADDON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../build/Release/kd_native.node');
let cached: { addon: NativeKernels | null; status: NativeStatus } | undefined;

function load(): { addon: NativeKernels | null; status: NativeStatus } {
  const off = process.env.KD_NATIVE;
  if (off !== undefined && ['0', 'false', 'off', 'no'].includes(off.toLowerCase())) {
    return { addon: null, status: { loaded: false, detail: 'disabled by KD_NATIVE', path: ADDON } };
  }
  if (!fs.existsSync(ADDON)) {
    return { addon: null, status: { loaded: false, detail: 'not built (run `npm run build:native`; needs a C++ compiler)', path: ADDON } };
  }
  try {
    const addon = createRequire(import.meta.url)(ADDON) as NativeKernels;
    return { addon, status: { loaded: true, detail: addon.kernel(), path: ADDON } };
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    return { addon: null, status: { loaded: false, detail: `failed to load: ${msg}`, path: ADDON } };
  }
}

let enabled = true;

/** The addon, or null when it is unavailable or disabled (see nativeStatus for why). */
export function nativeKernels(): NativeKernels | null {
  cached ??= load();
  return enabled ? cached.addon : null;
}

/** Turn the native kernels off (or back on) in this thread, e.g. to compare them with tfjs ops. */
export function setNativeEnabled(on: boolean): void {
  enabled = on;
}

export function nativeStatus(): NativeStatus {
  cached ??= load();
  return cached.status;
}
