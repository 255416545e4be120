import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.js';
import { nativeKernels, setNativeEnabled } from '../../src/backend/native.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { type Model, disposeModel, forwardLogits, initModel } from '../../src/model/gpt.js';
import { type KvCache, KvDecoder, disposeCache, extendCache, selectRows } from '../../src/model/kv.js';

beforeAll(async () => { await initBackend({ backend: 'cpu' }); });

// heads of size 4 with per-block head counts and MLP widths, as structured pruning leaves them
const CONFIGS = {
  dense: resolveModelConfig({ vocabSize: 40, seqLen: 10, dModel: 16, nLayers: 2, nHeads: 4 }),
  pruned: resolveModelConfig({ vocabSize: 40, seqLen: 10, dModel: 16, nLayers: 2, nHeads: 4, headDim: 4, layers: [{ nHeads: 3, ffnDim: 20 }, { nHeads: 1, ffnDim: 7 }] }),
};
// the two ways of running a step (see src/model/kv.ts)
const PATHS = [...(nativeKernels()?.decodeAttention ? ['native'] : []), 'tfjs'];
const ROWS = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], [2, 7, 1, 8, 2, 8, 1, 8, 2, 8]];

describe.each(Object.entries(CONFIGS))('KV-cached forward (%s)', (_, config) => {
  it('a prompt then one token at a time gives the full forward\'s logits at every position', () => {
    const m = initModel(config, 5);
    const full = tf.tidy(() => forwardLogits(m, tf.tensor2d(ROWS, [2, 10], 'int32')).arraySync()); // [2][10][V]
    const P = 4;
    let { logits, cache } = extendCache(m, null, tf.tensor2d(ROWS.map((r) => r.slice(0, P)), [2, P], 'int32'), { all: true });
    const prompt = logits.arraySync(); // [2·P][V]
    logits.dispose();
    for (let b = 0; b < 2; b++) for (let t = 0; t < P; t++) for (let v = 0; v < 40; v++) expect(prompt[b * P + t][v]).toBeCloseTo(full[b][t][v], 4);
    for (let t = P; t < 10; t++) {
      const step = extendCache(m, cache, tf.tensor2d(ROWS.map((r) => [r[t]]), [2, 1], 'int32'));
      disposeCache(cache);
      cache = step.cache;
      expect(cache.length).toBe(t + 1);
      const lg = step.logits.arraySync();
      step.logits.dispose();
      for (let b = 0; b < 2; b++) for (let v = 0; v < 40; v++) expect(lg[b][v]).toBeCloseTo(full[b][t][v], 4);
    }
    // the same repeated step, from the same cache, gives the same answer (a cache is immutable)
    const c0 = extendCache(m, null, tf.tensor2d([[1, 2], [3, 4]], [2, 2], 'int32'));
    const a = extendCache(m, c0.cache, tf.tensor2d([[3], [5]], [2, 1], 'int32')), b = extendCache(m, c0.cache, tf.tensor2d([[3], [5]], [2, 1], 'int32'));
    expect(b.logits.arraySync()).toEqual(a.logits.arraySync());
    for (const x of [c0, a, b]) { x.logits.dispose(); disposeCache(x.cache); }
    expect(() => extendCache(m, cache, tf.tensor2d([[1], [1]], [2, 1], 'int32'))).toThrow(/exceeds the model's seqLen 10/);
    disposeCache(cache);
    disposeModel(m);
  });
});

describe.each(PATHS)('KvDecoder, %s step', (path) => {
  beforeAll(() => setNativeEnabled(path === 'native'));
  afterAll(() => setNativeEnabled(true));

  it('gives the log-probabilities at a temperature', () => {
    const m = initModel(CONFIGS.pruned, 8);
    const d = new KvDecoder(m);
    const row = ROWS[0];
    for (const [from, to] of [[0, 4], [4, 5], [5, 6]]) {
      const lp = d.next([row.slice(from, to)], 0.7);
      const want = tf.tidy(() => tf.logSoftmax(tf.div(forwardLogits(m, tf.tensor2d([row.slice(0, to)], [1, to], 'int32')), 0.7)).arraySync() as number[][][]);
      const got = lp.arraySync();
      lp.dispose();
      for (let v = 0; v < 40; v++) expect(got[0][v]).toBeCloseTo(want[0][to - 1][v], 4);
    }
    d.dispose();
    disposeModel(m);
  });

  it('decodes like the full forward, drops finished rows, runs the last seqLen tokens once past seqLen, and leaks nothing', () => {
    const m = initModel(CONFIGS.dense, 7);
    // without the native kernels, the full forward caches a causal mask per length: make them first
    for (let T = 1; T <= 10; T++) tf.tidy(() => { forwardLogits(m, tf.zeros([1, T], 'int32') as tf.Tensor2D); });
    const before = tf.memory().numTensors;
    const d = new KvDecoder(m);
    const lp0 = d.next(ROWS.map((r) => r.slice(0, 3)));
    const want0 = tf.tidy(() => tf.logSoftmax(forwardLogits(m, tf.tensor2d(ROWS.map((r) => r.slice(0, 3)), [2, 3], 'int32'))).arraySync());
    const got0 = lp0.arraySync();
    lp0.dispose();
    for (let b = 0; b < 2; b++) for (let v = 0; v < 40; v++) expect(got0[b][v]).toBeCloseTo(want0[b][2][v], 4);
    // row 1 finishes; row 0 goes on alone
    d.select([1]);
    const row = ROWS[1];
    for (let t = 3; t < 10; t++) {
      const lp = d.next([[row[t]]]);
      const want = tf.tidy(() => tf.logSoftmax(forwardLogits(m, tf.tensor2d([row.slice(0, t + 1)], [1, t + 1], 'int32'))).arraySync());
      const got = lp.arraySync();
      lp.dispose();
      for (let v = 0; v < 40; v++) expect(got[0][v]).toBeCloseTo(want[0][t][v], 4);
    }
    expect(d.length).toBe(10);
    // past seqLen: each step is the full forward over the last 10 tokens (the sliding window)
    const hist = [...row];
    for (const tok of [4, 0, 7]) {
      hist.push(tok);
      const lp = d.next([[tok]]);
      expect(d.length).toBe(10);
      const want = tf.tidy(() => tf.logSoftmax(forwardLogits(m, tf.tensor2d([hist.slice(-10)], [1, 10], 'int32'))).arraySync());
      const got = lp.arraySync();
      lp.dispose();
      for (let v = 0; v < 40; v++) expect(got[0][v]).toBeCloseTo(want[0][9][v], 4);
    }
    d.dispose();
    expect(tf.memory().numTensors).toBe(before);
    disposeModel(m);
  });
});

// The native step (kd's kernels, a transposed in-place store) and the tfjs ops' step, against the full forward
// pass: a longer context (the store grows past 64 and 128 positions, up to seqLen), prompts of more and fewer
// than 5 tokens (the kernel's blocked and row-by-row paths) before and after cached ones, batches, sibling
// extensions of one cache and selected rows.
const LONG = {
  dense: resolveModelConfig({ vocabSize: 50, seqLen: 150, dModel: 16, nLayers: 2, nHeads: 4 }),
  pruned: resolveModelConfig({ vocabSize: 50, seqLen: 150, dModel: 16, nLayers: 2, nHeads: 4, headDim: 4, layers: [{ nHeads: 3, ffnDim: 20 }, { nHeads: 1, ffnDim: 7 }] }),
};

function tokens(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % 50);
}
const ids = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');
/** logits of the full forward at position p of each row, [B][V] */
function fullAt(m: Model, rows: number[][], p: number): number[][] {
  return tf.tidy(() => (forwardLogits(m, ids(rows.map((r) => r.slice(0, p + 1)))).arraySync() as number[][][]).map((r) => r[p]));
}
function expectClose(got: number[][], want: number[][], what: string): void {
  let worst = 0;
  got.forEach((r, b) => r.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - want[b][j])); }));
  expect(worst, what).toBeLessThan(5e-5);
}
/** extendCache that reads and disposes the logits */
function step(m: Model, cache: KvCache | null, rows: number[][], all = false): { logits: number[][]; cache: KvCache } {
  const x = ids(rows);
  const r = extendCache(m, cache, x, { all });
  x.dispose();
  const logits = r.logits.arraySync();
  r.logits.dispose();
  return { logits, cache: r.cache };
}

describe.each(PATHS)('KV-cached forward, %s step', (path) => {
  beforeAll(() => setNativeEnabled(path === 'native'));
  afterAll(() => setNativeEnabled(true));

  it.each(Object.entries(LONG))('%s: prompts and single tokens up to seqLen give the full forward\'s logits', (_, config) => {
    const m = initModel(config, 3);
    const rows = [tokens(150, 1), tokens(150, 2)];
    const full = tf.tidy(() => forwardLogits(m, ids(rows)).arraySync());
    const before = tf.memory().numTensors;
    // a prompt of 7 (blocked), then 3 (row by row) and 6 (blocked) more after cached ones, then one at a time
    let at = 0, cache: KvCache | null = null;
    for (const t of [7, 3, 6, ...Array.from({ length: 150 - 16 }, () => 1)]) {
      const r = step(m, cache, rows.map((row) => row.slice(at, at + t)), true);
      disposeCache(cache);
      cache = r.cache;
      for (let i = 0; i < t; i++) expectClose([0, 1].map((b) => r.logits[b * t + i]), [0, 1].map((b) => full[b][at + i]), `position ${at + i}`);
      at += t;
      expect(cache.length).toBe(at);
      expect(!!cache.store).toBe(path === 'native');
    }
    const over = ids([[1], [1]]);
    expect(() => extendCache(m, cache, over)).toThrow(/exceeds the model's seqLen 150/);
    over.dispose();
    disposeCache(cache);
    expect(tf.memory().numTensors).toBe(before);
    disposeModel(m);
  });

  it('extensions of one cache leave it and each other intact (a cache is immutable)', () => {
    const m = initModel(LONG.dense, 4);
    const base = tokens(70, 3);
    const c = step(m, null, [base]).cache;
    const a = step(m, c, [[11]]); // in place
    const b = step(m, c, [[12]]); // a reads past 70: b copies first
    const a2 = step(m, a.cache, [[13, 14]]);
    const b2 = step(m, b.cache, [[15]]);
    expectClose(a.logits, fullAt(m, [[...base, 11]], 70), 'a');
    expectClose(b.logits, fullAt(m, [[...base, 12]], 70), 'b');
    expectClose(a2.logits, fullAt(m, [[...base, 11, 13, 14]], 72), 'a2');
    expectClose(b2.logits, fullAt(m, [[...base, 12, 15]], 71), 'b2');
    // the same step from c again, before and after its siblings are gone, gives the same answer
    const again = step(m, c, [[11]]);
    expect(again.logits).toEqual(a.logits);
    for (const x of [a, b, a2, b2, again]) disposeCache(x.cache);
    const last = step(m, c, [[11]]);
    expect(last.logits).toEqual(a.logits);
    // and c's own prefix is still what it was: a longer run from it matches the full forward
    const run = step(m, c, [[9, 8, 7, 6, 5, 4]]);
    expectClose(run.logits, fullAt(m, [[...base, 9, 8, 7, 6, 5, 4]], 75), 'run');
    for (const x of [c, last.cache, run.cache]) disposeCache(x);
    expect(() => extendCache(m, c, ids([[1]]))).toThrow(/the cache was disposed/);
    disposeModel(m);
  });

  it('selectRows keeps the chosen rows (in that order) and leaves the cache usable', () => {
    const m = initModel(LONG.pruned, 5);
    const rows = [tokens(40, 4), tokens(40, 5), tokens(40, 6)];
    const c = step(m, null, rows).cache;
    const s = selectRows(c, [2, 0]);
    expect(s.B).toBe(2);
    const r = step(m, s, [[1], [2]]);
    expectClose(r.logits, [fullAt(m, [[...rows[2], 1]], 40)[0], fullAt(m, [[...rows[0], 2]], 40)[0]], 'selected');
    const o = step(m, c, [[3], [4], [5]]);
    expectClose(o.logits, fullAt(m, rows.map((row, i) => [...row, 3 + i]), 40), 'original');
    for (const x of [c, s, r.cache, o.cache]) disposeCache(x);
    disposeModel(m);
  });
});

describe('a native cache', () => {
  it.runIf(PATHS.includes('native'))('cannot be extended once the native kernels are off', () => {
    const m = initModel(LONG.dense, 6);
    const c = step(m, null, [[1, 2, 3]]).cache;
    setNativeEnabled(false);
    try {
      expect(() => extendCache(m, c, ids([[4]]))).toThrow(/native kernels/);
    } finally {
      setNativeEnabled(true);
      disposeCache(c);
      disposeModel(m);
    }
  });
});

describe.each(PATHS)('decoding two models turn by turn, %s step', (path) => {
  beforeAll(() => setNativeEnabled(path === 'native'));
  afterAll(() => setNativeEnabled(true));
  it('gives each model exactly what it gives decoding alone (a step\'s reused scratch holds nothing over)', () => {
    const a = initModel(CONFIGS.dense, 11), b = initModel(CONFIGS.pruned, 12);
    // alone: a prompt (many rows, fresh arrays) then single tokens (small steps, reused scratch)
    const alone = (m: Model) => {
      let c = step(m, null, [[1, 2, 3, 4], [5, 6, 7, 8]]);
      const out: number[][][] = [];
      for (let t = 0; t < 4; t++) {
        const n = step(m, c.cache, [[t + 1], [t + 2]]);
        disposeCache(c.cache);
        c = n;
        out.push(c.logits);
      }
      disposeCache(c.cache);
      return out;
    };
    const wantA = alone(a), wantB = alone(b);
    let ca = step(a, null, [[1, 2, 3, 4], [5, 6, 7, 8]]), cb = step(b, null, [[1, 2, 3, 4], [5, 6, 7, 8]]);
    for (let t = 0; t < 4; t++) {
      const na = step(a, ca.cache, [[t + 1], [t + 2]]);
      const nb = step(b, cb.cache, [[t + 1], [t + 2]]);
      disposeCache(ca.cache);
      disposeCache(cb.cache);
      ca = na;
      cb = nb;
      expect(ca.logits).toEqual(wantA[t]);
      expect(cb.logits).toEqual(wantB[t]);
    }
    disposeCache(ca.cache);
    disposeCache(cb.cache);
    disposeModel(a);
    disposeModel(b);
  });
});
