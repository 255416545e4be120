/**
 * IEEE 754 half precision (binary16) for compact teacher log-probs. Node 20 has no Float16Array or
 * Math.f16round, and Arrow JS stores Float16 columns as their raw Uint16 bits, so kd converts itself.
 *
 * Precision: 11 significant bits, so a normal value x comes back within |x|·2⁻¹¹ (round to nearest,
 * ties to even); log-probs in [−65504, −6.1e−5] are normal. Log-probs closer to 0 are subnormal and
 * come back within 2⁻²⁵ absolutely. Below −65504 they become −Infinity.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The binary16 bits of x, rounded to nearest, ties to even. */
export function toFloat16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → ±Inf
  if (e <= 0) {
    // subnormal half (or zero): shift the implicit 1 in, round to nearest even
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent: still correct
  return sign | h;
}

/** Every binary16 bit pattern decoded once: decoding is one table lookup. */
export const FLOAT16_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 0x1f ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

export function fromFloat16Bits(h: number): number {
  return FLOAT16_TABLE[h & 0xffff];
}

/** x rounded to the nearest float16 (as a number). */
export function float16Round(x: number): number {
  return FLOAT16_TABLE[toFloat16Bits(x)];
}
