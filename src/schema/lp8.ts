/**
 * 8-bit teacher log-probs relative to the position's best (dataset format version 2) and bit-packed
 * top-k ids. Per labelled position the best log-prob is stored as float16 (./float16.ts, as in
 * version 1) and every other entry k as one byte c_k: the distance below the best,
 *
 *   d_k = best₁₆ − lp_k ≥ 0,   decoded  d̂(c) = D·(c/255)²,   D = {@link LP8_RANGE} = 20 nats.
 *
 * The square law spends codes where probabilities are large: the step at distance d is
 * d̂(c+1) − d̂(c) = D(2c+1)/255² ≈ 2·√(D·d)/255 (0.0003 nats at the best, 0.035 at d = 1, 0.078 at
 * d = 5, 0.157 at D); entries more than D nats below the best (p < 2·10⁻⁹·p_best) are clipped to D.
 *
 * Rounding is mass-preserving: each entry takes one of the two codes bracketing its d (so its
 * error is at most one step, |lp̂_k − lp_k| ≤ 2√(D·d_k)/255 + D/255²), chosen so that the running
 * error of Σ exp(lp) stays smallest. The top-k mass Σp — hence the tail 1 − Σp that the loss's tail
 * class gets (src/train/kd-kernel.ts) — is then off by at most half of the largest single-entry
 * quantum (≤ 0.008·p_best, reached only at d ≈ 0.5) plus the float16 error of the best, instead of
 * the sum of all entries' errors; in practice it ends within the last (smallest) entry's quantum.
 * Measured on the bench:data teacher (k 20): see README, "Soft-label storage".
 *
 * Entries keep their order (best first); two entries within one step of each other may decode in
 * swapped order, which changes nothing for the loss (a sum over the top-k classes).
 */
import { FLOAT16_TABLE, toFloat16Bits } from './float16.js';

export const LP8_RANGE = 20;
/** the scheme's name in a shard's `kd.lp_code` metadata */
export const LP8_CODE = 'best-f16+sq8-20';

/** d̂(c) for every code */
export const LP8_DELTA: Float64Array = (() => {
  const t = new Float64Array(256);
  for (let c = 0; c < 256; c++) t[c] = LP8_RANGE * (c / 255) ** 2;
  return t;
})();

/**
 * Encodes one position's log-probs lps[from..from+n) (best first): the best's float16 bits (returned)
 * and n − 1 codes written to codes[at..at+n−1). `ps`, when given, holds Math.exp of each log-prob
 * at the same indices (the same values this computes otherwise: a caller that has them saves the calls).
 */
export function encodeLp8(lps: ArrayLike<number>, from: number, n: number, codes: Uint8Array, at: number, ps?: ArrayLike<number>): number {
  const bits = toFloat16Bits(lps[from]);
  const best = FLOAT16_TABLE[bits];
  let err = Math.exp(best) - (ps ? ps[from] : Math.exp(lps[from])); // running Σ p̂ − Σ p
  for (let k = 1; k < n; k++) {
    const lp = lps[from + k];
    const p = ps ? ps[from + k] : Math.exp(lp);
    let d = best - lp;
    if (!(d > 0)) d = 0;
    let c: number, q: number; // the code, and its p̂
    if (d >= LP8_RANGE) {
      c = 255;
      q = Math.exp(best - LP8_DELTA[255]);
    } else {
      let lo = Math.floor(255 * Math.sqrt(d / LP8_RANGE));
      if (lo > 254) lo = 254;
      if (LP8_DELTA[lo] > d) lo--; // guard the sqrt's rounding: d̂(lo) ≤ d < d̂(lo + 1)
      else if (LP8_DELTA[lo + 1] <= d) lo++;
      const qLo = Math.exp(best - LP8_DELTA[lo]), qHi = Math.exp(best - LP8_DELTA[lo + 1]);
      // qLo ≥ qHi: the larger p̂; take the code that leaves the running error smaller
      if (Math.abs(err + qLo - p) <= Math.abs(err + qHi - p)) { c = lo; q = qLo; } else { c = lo + 1; q = qHi; }
    }
    codes[at + k - 1] = c;
    err += q - p;
  }
  return bits;
}

/** Decodes one position into out[o..o+n): the best, then best − d̂(code). */
export function decodeLp8(bestBits: number, codes: Uint8Array, at: number, n: number, out: Float32Array, o: number): void {
  const best = FLOAT16_TABLE[bestBits];
  out[o] = best;
  for (let k = 1; k < n; k++) out[o + k] = best - LP8_DELTA[codes[at + k - 1]];
}

/** Bits per packed id: ceil(log2 V), at least 1. */
export const idBits = (vocabSize: number): number => Math.max(1, Math.ceil(Math.log2(vocabSize)));

/** Bytes holding n packed ids of `bits` bits. */
export const packedBytes = (n: number, bits: number): number => Math.ceil((n * bits) / 8);

/** Packs ids[from..from+n) into out[at..), least significant bit first; returns the bytes written. */
export function packIds(ids: ArrayLike<number>, from: number, n: number, bits: number, out: Uint8Array, at: number): number {
  const len = packedBytes(n, bits);
  out.fill(0, at, at + len);
  let acc = 0, nAcc = 0, o = at;
  for (let k = 0; k < n; k++) {
    acc |= ids[from + k] << nAcc;
    nAcc += bits;
    while (nAcc >= 8) {
      out[o++] = acc & 0xff;
      acc >>>= 8;
      nAcc -= 8;
    }
  }
  if (nAcc > 0) out[o++] = acc & 0xff;
  return len;
}

/** Unpacks n ids of `bits` bits from buf[at..) into out[o..o+n). */
export function unpackIds(buf: Uint8Array, at: number, n: number, bits: number, out: Uint16Array, o: number): void {
  const mask = (1 << bits) - 1;
  let acc = 0, nAcc = 0, i = at;
  for (let k = 0; k < n; k++) {
    while (nAcc < bits) {
      acc |= buf[i++] << nAcc;
      nAcc += 8;
    }
    out[o + k] = acc & mask;
    acc >>>= bits;
    nAcc -= bits;
  }
}
