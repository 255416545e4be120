import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.js';
import { REFERENCE_CONFIG, flopsPerToken, parameterCount, resolveModelConfig } from '../../src/model/config.js';
import { countParams, disposeModel, forwardLogits, initModel, nextTokenLogProbs } from '../../src/model/gpt.js';

beforeAll(async () => { await initBackend({ backend: 'cpu' }); });

describe('student transformer', () => {
  it('has the parameter count of bench/torch_reference.py at the reference config', () => {
    // torch_reference.py prints "params": 1459456 for its DEFAULT config
    expect(parameterCount(REFERENCE_CONFIG)).toBe(1_459_456);
    const m = initModel(resolveModelConfig({ vocabSize: 50, seqLen: 10, dModel: 12, nLayers: 3, nHeads: 3 }), 1);
    expect(countParams(m)).toBe(parameterCount(m.config));
    disposeModel(m);
  });

  it('counts training FLOPs from the matmuls, attention and the tied head', () => {
    const c = REFERENCE_CONFIG;
    const perLayer = 2 * (3 * 128 * 128 + 128 * 128 + 2 * 128 * 512) + 4 * 128 * 128;
    expect(flopsPerToken(c)).toBe(2 * perLayer + 2 * 128 * 8192);
  });

  it('is causal: later tokens never change earlier logits', () => {
    const m = initModel(resolveModelConfig({ vocabSize: 40, seqLen: 8, dModel: 16, nLayers: 2, nHeads: 4 }), 2);
    const a = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
    const b = tf.tensor2d([[1, 2, 3, 9, 9, 9]], [1, 6], 'int32');
    const la = forwardLogits(m, a).arraySync()[0];
    const lb = forwardLogits(m, b).arraySync()[0];
    for (let t = 0; t < 3; t++) for (let v = 0; v < 40; v++) expect(lb[t][v]).toBeCloseTo(la[t][v], 5);
    expect(Math.abs(lb[4][0] - la[4][0]) + Math.abs(lb[5][1] - la[5][1])).toBeGreaterThan(1e-6);
    tf.dispose([a, b]);
    disposeModel(m);
  });

  it('generation gives the log-softmax of the last position, tempered, and keeps the last seqLen tokens of a long context', () => {
    const m = initModel(resolveModelConfig({ vocabSize: 30, seqLen: 4, dModel: 8, nLayers: 1, nHeads: 2 }), 3);
    const ids = tf.tensor2d([[3, 1, 4, 1], [5, 9, 2, 6]], [2, 4], 'int32');
    const full = forwardLogits(m, ids);
    const want = tf.logSoftmax(tf.div(tf.squeeze(tf.slice(full, [0, 3, 0], [2, 1, 30]), [1]), 2)).arraySync() as number[][];
    const got = nextTokenLogProbs(m, ids, 2).arraySync();
    for (let b = 0; b < 2; b++) for (let v = 0; v < 30; v++) expect(got[b][v]).toBeCloseTo(want[b][v], 5);
    const long = tf.tensor2d([[7, 7, 3, 1, 4, 1]], [1, 6], 'int32');
    const g2 = nextTokenLogProbs(m, long).arraySync()[0];
    const g1 = nextTokenLogProbs(m, tf.tensor2d([[3, 1, 4, 1]], [1, 4], 'int32')).arraySync()[0];
    for (let v = 0; v < 30; v++) expect(g2[v]).toBeCloseTo(g1[v], 5);
    expect(g1.reduce((s, x) => s + Math.exp(x), 0)).toBeCloseTo(1, 5);
    disposeModel(m);
  });

  it('initialisation is deterministic per seed', () => {
    const c = resolveModelConfig({ vocabSize: 20, seqLen: 4, dModel: 8, nLayers: 1, nHeads: 2 });
    const a = initModel(c, 5), b = initModel(c, 5), d = initModel(c, 6);
    expect(a.params.get('wte')!.dataSync()).toEqual(b.params.get('wte')!.dataSync());
    expect(a.params.get('wte')!.dataSync()).not.toEqual(d.params.get('wte')!.dataSync());
    [a, b, d].forEach(disposeModel);
  });

  it('rejects sequences longer than seqLen', () => {
    const m = initModel(resolveModelConfig({ vocabSize: 20, seqLen: 4, dModel: 8, nLayers: 1, nHeads: 2 }), 1);
    expect(() => forwardLogits(m, tf.zeros([1, 5], 'int32') as tf.Tensor2D)).toThrow(/exceeds the model's seqLen 4/);
    disposeModel(m);
  });
});
