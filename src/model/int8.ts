/**
 * Symmetric integer weight quantization, pure arithmetic (no tfjs):
 *   scale_c = max_i |w_ic| / qmax,   q = clamp(round(w / scale_c), −qmax, qmax),   w ≈ q · scale_c
 * with qmax = 2^(bits−1) − 1 (127 for 8 bits, 7 for 4 bits; both stored in int8 containers).
 * Zero stays exactly zero, so pruned weights survive quantization.
 *
 * Channel axis (one scale per index along it), chosen so that a scale belongs to one output unit:
 *   - [in, out] matrices (qkv, proj, fc, out): the last axis — one scale per output channel;
 *   - embeddings wte [V, d] and wpe [T, d]: axis 0 — one scale per row, i.e. per token / position.
 *     wte is also the tied output head (logits = h·wteᵀ), where a row is again an output channel.
 */
import { KdError } from '../core/errors.js';

export type QuantScheme = 'per-channel' | 'per-tensor';
export const QUANT_BITS = [4, 8] as const;
export const QUANT_SCHEMES: QuantScheme[] = ['per-channel', 'per-tensor'];

export interface Quantized {
  q: Int8Array;
  /** float32 scales: one (per tensor) or one per index along `axis` */
  scales: Float32Array;
  axis?: number;
}

/** Embeddings are quantized per row, matrices per output column. */
export function channelAxis(name: string, shape: number[]): number {
  return name === 'wte' || name === 'wpe' ? 0 : shape.length - 1;
}

export function checkBits(bits: number): 4 | 8 {
  if (bits !== 4 && bits !== 8) throw new KdError('bad-option', `--bits ${bits}: only 8 and 4 bits are supported (4-bit values are stored in int8 containers)`);
  return bits;
}

/** Index of `i` (flat, row-major) along `axis` of a rank-2 `shape`. */
function channelOf(i: number, shape: number[], axis: number): number {
  return axis === 0 ? Math.floor(i / shape[1]) : i % shape[1];
}

export function quantizeArray(w: Float32Array, shape: number[], o: { bits: number; scheme: QuantScheme; axis: number }): Quantized {
  const qmax = 2 ** (checkBits(o.bits) - 1) - 1;
  const perChannel = o.scheme === 'per-channel' && shape.length === 2;
  const C = perChannel ? shape[o.axis] : 1;
  const maxAbs = new Float64Array(C);
  for (let i = 0; i < w.length; i++) {
    const c = perChannel ? channelOf(i, shape, o.axis) : 0;
    const a = Math.abs(w[i]);
    if (a > maxAbs[c]) maxAbs[c] = a;
  }
  // An all-zero channel (fully pruned) gets scale 0: every q is 0 and dequantizes to exactly 0.
  const scales = Float32Array.from(maxAbs, (m) => m / qmax);
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const s = scales[perChannel ? channelOf(i, shape, o.axis) : 0];
    q[i] = s > 0 ? Math.max(-qmax, Math.min(qmax, Math.round(w[i] / s))) : 0;
  }
  return { q, scales, ...(perChannel ? { axis: o.axis } : {}) };
}

/**
 * q · scale in float32 (Math.fround of the exact product: the same number a float32 multiply gives,
 * so the exported graph's Cast-free Mul reproduces it bit for bit).
 */
export function dequantizeArray(q: Int8Array, shape: number[], scales: ArrayLike<number>, axis?: number): Float32Array {
  const out = new Float32Array(q.length);
  const perChannel = scales.length > 1 || (axis !== undefined && shape.length === 2 && shape[axis] === 1);
  const ax = axis ?? shape.length - 1;
  for (let i = 0; i < q.length; i++) out[i] = q[i] * scales[perChannel ? channelOf(i, shape, ax) : 0];
  return out;
}

/** Which weights are quantized: matrices and embeddings (rank 2) with enough entries to matter. */
export function isQuantizable(shape: number[]): boolean {
  return shape.length === 2 && shape[0] * shape[1] >= 256;
}
