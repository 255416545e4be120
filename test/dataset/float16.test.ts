import { describe, expect, it } from 'vitest';
import { float16Round, fromFloat16Bits, toFloat16Bits } from '../../src/schema/float16.js';

describe('float16', () => {
  it('encodes reference bit patterns (IEEE 754 binary16)', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [-65504, 0xfbff],
      [2 ** -14, 0x0400], [2 ** -24, 0x0001], [-Infinity, 0xfc00], [1e6, 0x7c00], [-0.333251953125, 0xb555],
    ];
    for (const [x, h] of cases) {
      expect(toFloat16Bits(x), String(x)).toBe(h);
      expect(fromFloat16Bits(h)).toBe(x === 1e6 ? Infinity : x);
    }
    expect(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN)))).toBe(true);
  });

  it('rounds to nearest, ties to even', () => {
    expect(toFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even (down)
    expect(toFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(toFloat16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above the tie → up
    expect(toFloat16Bits(2047.9)).toBe(toFloat16Bits(2048)); // carry into the exponent
  });

  it('keeps log-probs within the stated precision: |x − f16(x)| ≤ |x|·2⁻¹¹ (normal), ≤ 2⁻²⁵ (subnormal)', () => {
    for (let i = 0; i < 20000; i++) {
      const x = -Math.exp(Math.sin(i * 12.9898) * 11); // −e^−11 … −e^11, log-spaced
      const err = Math.abs(float16Round(x) - x);
      expect(err).toBeLessThanOrEqual(Math.abs(x) >= 2 ** -14 ? Math.abs(x) * 2 ** -11 : 2 ** -25);
    }
  });

  it('decodes every bit pattern to a value that encodes back to itself (except NaNs)', () => {
    for (let h = 0; h < 65536; h++) {
      const x = fromFloat16Bits(h);
      if (!Number.isNaN(x)) expect(toFloat16Bits(x)).toBe(h);
    }
  });
});
