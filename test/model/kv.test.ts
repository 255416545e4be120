import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { disposeModel, forwardLogits, initModel } from '../../src/model/gpt.js';
import { KvDecoder, disposeCache, extendCache } from '../../src/model/kv.js';

beforeAll(async () => { await initBackend({ backend: 'cpu' }); });

// heads of size 4 with per-block head counts and MLP widths, as structured pruning leaves them
const CONFIGS = {
  dense: resolveModelConfig({ vocabSize: 40, seqLen: 10, dModel: 16, nLayers: 2, nHeads: 4 }),
  pruned: resolveModelConfig({ vocabSize: 40, seqLen: 10, dModel: 16, nLayers: 2, nHeads: 4, headDim: 4, layers: [{ nHeads: 3, ffnDim: 20 }, { nHeads: 1, ffnDim: 7 }] }),
};
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

describe('KvDecoder', () => {
  it('decodes like the full forward, drops finished rows, runs the last seqLen tokens once past seqLen, and leaks nothing', () => {
    const m = initModel(CONFIGS.dense, 7);
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
