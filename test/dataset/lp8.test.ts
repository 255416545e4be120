import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/core/rng.js';
import { float16Round } from '../../src/schema/float16.js';
import { LP8_DELTA, LP8_RANGE, decodeLp8, encodeLp8, idBits, packIds, packedBytes, unpackIds } from '../../src/schema/lp8.js';

/** A teacher-like top-k: best first, log-probs of a softmax over k normal logits with a tail outside. */
function row(rng: Rng, k: number, spread: number): number[] {
  const logits = Array.from({ length: k }, () => rng.normal() * spread);
  const m = Math.max(...logits);
  const lse = m + Math.log(logits.reduce((s, x) => s + Math.exp(x - m), 0)) + 0.05 + rng.next();
  return logits.map((x) => x - lse).sort((a, b) => b - a);
}

const step = (d: number) => 2 * Math.sqrt(LP8_RANGE * Math.min(d, LP8_RANGE)) / 255 + LP8_RANGE / 255 ** 2;

describe('8-bit log-probs below the best (format version 2)', () => {
  it('codes are the square law: d̂(0) = 0, d̂(255) = D, increasing', () => {
    expect(LP8_DELTA[0]).toBe(0);
    expect(LP8_DELTA[255]).toBe(LP8_RANGE);
    for (let c = 1; c < 256; c++) expect(LP8_DELTA[c]).toBeGreaterThan(LP8_DELTA[c - 1]);
  });

  it('each entry within one step of its log-prob, the best as float16; the top-k mass within half the largest quantum', () => {
    const rng = new Rng(7);
    let worstMass = 0, sumMass = 0, worstLp = 0, n = 0;
    for (let t = 0; t < 1500; t++) {
      const k = 1 + rng.int(20);
      const lps = row(rng, k, [0.5, 2, 4][t % 3]);
      const codes = new Uint8Array(k), out = new Float32Array(k);
      const best = encodeLp8(lps, 0, k, codes, 0);
      decodeLp8(best, codes, 0, k, out, 0);
      expect(out[0]).toBe(Math.fround(float16Round(lps[0])));
      let quantum = 0;
      for (let j = 1; j < k; j++) {
        const d = out[0] - lps[j];
        const err = Math.abs(out[j] - lps[j]);
        if (d <= LP8_RANGE) expect(err).toBeLessThanOrEqual(step(d) + 1e-6);
        else expect(out[j]).toBeCloseTo(out[0] - LP8_RANGE, 5); // clipped: p < 2e-9 · p_best
        worstLp = Math.max(worstLp, d <= LP8_RANGE ? err : 0);
        quantum = Math.max(quantum, Math.exp(out[0] - Math.max(0, d - step(d))) - Math.exp(out[0] - d - step(d)));
      }
      const mass = lps.reduce((s, x) => s + Math.exp(x), 0), massQ = Array.from(out).reduce((s, x) => s + Math.exp(x), 0);
      const f16 = Math.abs(Math.exp(out[0]) - Math.exp(lps[0]));
      expect(Math.abs(massQ - mass)).toBeLessThanOrEqual(quantum / 2 + f16 + 1e-6);
      worstMass = Math.max(worstMass, Math.abs(massQ - mass));
      sumMass += Math.abs(massQ - mass);
      n++;
    }
    // what the README quotes: the tail 1 − Σp moves by well under a percent of the probability
    expect(worstMass).toBeLessThan(0.008);
    expect(sumMass / n).toBeLessThan(0.001);
    expect(worstLp).toBeLessThan(0.16);
  });

  it('mass-preserving rounding beats round-to-nearest on the top-k mass', () => {
    const rng = new Rng(3);
    let ours = 0, nearest = 0;
    for (let t = 0; t < 2000; t++) {
      const lps = row(rng, 20, 2);
      const codes = new Uint8Array(20), out = new Float32Array(20);
      decodeLp8(encodeLp8(lps, 0, 20, codes, 0), codes, 0, 20, out, 0);
      const mass = lps.reduce((s, x) => s + Math.exp(x), 0);
      ours += Math.abs(Array.from(out).reduce((s, x) => s + Math.exp(x), 0) - mass);
      const best = float16Round(lps[0]);
      let mq = Math.exp(best);
      for (let j = 1; j < 20; j++) {
        const c = Math.min(255, Math.round(255 * Math.sqrt(Math.max(0, best - lps[j]) / LP8_RANGE)));
        mq += Math.exp(best - LP8_DELTA[c]);
      }
      nearest += Math.abs(mq - mass);
    }
    expect(ours).toBeLessThan(nearest / 3);
  });
});

describe('bit-packed ids', () => {
  it('ceil(log2 V) bits', () => {
    expect(idBits(256)).toBe(8);
    expect(idBits(257)).toBe(9);
    expect(idBits(2048)).toBe(11);
    expect(idBits(8192)).toBe(13);
    expect(idBits(65536)).toBe(16);
  });

  it.each([8, 9, 11, 13, 16])('round-trips %i-bit ids at any offset', (bits) => {
    const rng = new Rng(bits);
    for (const n of [0, 1, 2, 7, 8, 33, 500]) {
      const ids = Array.from({ length: n }, () => rng.int(2 ** bits));
      const buf = new Uint8Array(3 + packedBytes(n, bits)).fill(0xaa);
      expect(packIds(ids, 0, n, bits, buf, 3)).toBe(packedBytes(n, bits));
      expect(buf[0]).toBe(0xaa);
      const out = new Uint16Array(n + 2);
      unpackIds(buf, 3, n, bits, out, 1);
      expect(Array.from(out.subarray(1, n + 1))).toEqual(ids);
    }
  });
});
