import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.js';
import { checkSparsity, cubicSparsity, keptPruning, magnitudeMasks, prunableNames } from '../../src/compress/masks.js';
import { importanceScores, keepIndices, removeUnits } from '../../src/compress/structured.js';
import { countParams, disposeModel, forwardLogits, initModel, modelFromArrays } from '../../src/model/gpt.js';
import { parameterCount, resolveModelConfig } from '../../src/model/config.js';

beforeAll(async () => { await initBackend({ backend: 'cpu' }); });

const c = resolveModelConfig({ vocabSize: 30, seqLen: 8, dModel: 16, nLayers: 2, nHeads: 4, ffnMult: 2 });
const arraysOf = (m: ReturnType<typeof initModel>) => new Map([...m.params].map(([n, v]) => [n, Float32Array.from(v.dataSync() as Float32Array)]));
const logits = (m: ReturnType<typeof initModel>) => tf.tidy(() => forwardLogits(m, tf.tensor2d([[1, 7, 3, 29, 0]], [1, 5], 'int32')).dataSync() as Float32Array);

describe('keeping a magnitude-pruned checkpoint pruned (kd train --init-from)', () => {
  it('masks its zeros only when its history says magnitude pruning, and keeps the history', () => {
    const m = initModel(c, 3);
    const w = arraysOf(m);
    disposeModel(m);
    const masks = magnitudeMasks(w, prunableNames(c), 0.5, 'layer');
    for (const [n, mk] of masks) w.get(n)!.forEach((_, i, a) => { a[i] *= mk[i]!; });
    const history = [{ stage: 'prune', method: 'magnitude', sparsity: 0.5 }, { stage: 'quantize', bits: 8 }];
    const k = keptPruning({ backend: 'cpu', compress: history }, () => w, c)!;
    expect(k.history).toEqual(history);
    expect([...k.masks.keys()]).toEqual(prunableNames(c));
    for (const [n, mk] of k.masks) expect(mk).toEqual(masks.get(n));
    expect(k.zeros).toBe([...masks.values()].reduce((a, mk) => a + mk.filter((x) => x === 0).length, 0));
    // structured pruning removes units (the architecture keeps them out); no history, nothing pruned: no masks
    expect(keptPruning({ compress: [{ stage: 'prune', method: 'heads' }] }, () => w, c)).toBeUndefined();
    expect(keptPruning({}, () => w, c)).toBeUndefined();
    const dense = new Map([...w].map(([n, a]) => [n, a.map((x) => x || 1)]));
    expect(keptPruning({ compress: history }, () => dense, c)).toBeUndefined();
  });
});

describe('magnitude masks', () => {
  const w = new Map([['a', Float32Array.from([0.1, -5, 0.3, 2])], ['b', Float32Array.from([-0.2, 0.05, 9, 1])]]);
  it('per weight: exactly ⌊s·n⌋ smallest |w| of each', () => {
    const m = magnitudeMasks(w, ['a', 'b'], 0.5, 'layer');
    expect([...m.get('a')!]).toEqual([0, 1, 0, 1]);
    expect([...m.get('b')!]).toEqual([0, 0, 1, 1]);
  });
  it('global: the smallest anywhere', () => {
    const m = magnitudeMasks(w, ['a', 'b'], 0.5, 'global');
    expect([...m.get('a')!, ...m.get('b')!]).toEqual([0, 1, 0, 1, 0, 0, 1, 1]);
    const g = magnitudeMasks(w, ['a', 'b'], 0.25, 'global');
    expect([...g.get('a')!, ...g.get('b')!]).toEqual([0, 1, 1, 1, 1, 0, 1, 1]);
  });
  it('cubic schedule and sparsity bounds', () => {
    expect(cubicSparsity(0, 10, 0.8)).toBe(0);
    expect(cubicSparsity(10, 10, 0.8)).toBeCloseTo(0.8, 12);
    expect(cubicSparsity(5, 10, 0.8)).toBeCloseTo(0.8 * (1 - 0.125), 12);
    expect(() => checkSparsity(1)).toThrow(/\[0, 1\)/);
    expect(() => checkSparsity(Number.NaN)).toThrow(/\[0, 1\)/);
    expect(checkSparsity(0)).toBe(0);
    expect(prunableNames(c)).toEqual(['h0.attn.qkv', 'h0.attn.proj', 'h0.mlp.fc', 'h0.mlp.out', 'h1.attn.qkv', 'h1.attn.proj', 'h1.mlp.fc', 'h1.mlp.out']);
  });
});

describe('structured removal', () => {
  it('removing heads/neurons equals zeroing their output weights in the full model', () => {
    const m = initModel(c, 4);
    const w = arraysOf(m);
    const keepH = [[0, 2, 3], [1, 2]];
    const keepN = [[...Array(32).keys()].filter((n) => n % 3 !== 0), [...Array(32).keys()].slice(8)];
    const r1 = removeUnits(c, w, 'heads', keepH);
    const r2 = removeUnits(r1.config, r1.arrays, 'neurons', keepN);
    expect(r2.config.layers).toEqual([{ nHeads: 3, ffnDim: keepN[0].length }, { nHeads: 2, ffnDim: 24 }]);
    const small = modelFromArrays(r2.config, r2.arrays);
    expect(countParams(small)).toBe(parameterCount(r2.config));
    // zero the removed heads' proj rows and the removed neurons' out rows: their contribution vanishes
    const z = arraysOf(m);
    for (let i = 0; i < 2; i++) {
      const proj = z.get(`h${i}.attn.proj`)!, out = z.get(`h${i}.mlp.out`)!;
      for (let h = 0; h < 4; h++) if (!keepH[i].includes(h)) proj.fill(0, h * 4 * 16, (h + 1) * 4 * 16);
      for (let n = 0; n < 32; n++) if (!keepN[i].includes(n)) out.fill(0, n * 16, (n + 1) * 16);
    }
    const zeroed = modelFromArrays(c, z);
    const a = logits(small), b = logits(zeroed);
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 5));
    expect(Math.max(...logits(m).map((v, i) => Math.abs(v - b[i])))).toBeGreaterThan(1e-4);
    [m, small, zeroed].forEach(disposeModel);
  });

  it('scores: norm ranks a zeroed head last; keeps at least one unit; taylor uses w·g', () => {
    const m = initModel(c, 5);
    const w = arraysOf(m);
    const proj = w.get('h0.attn.proj')!;
    proj.fill(0, 1 * 64, 2 * 64);
    const qkv = w.get('h0.attn.qkv')!;
    for (let r = 0; r < 16; r++) for (let p = 0; p < 3; p++) qkv.fill(0, r * 48 + p * 16 + 4, r * 48 + p * 16 + 8);
    const s = importanceScores(c, w, 'heads', 'norm');
    expect(s[0][1]).toBe(0);
    expect(keepIndices(s[0], 0.25)).toEqual([0, 2, 3]);
    expect(keepIndices([3, 1, 2], 0.99)).toEqual([0]);
    expect(keepIndices([3, 1, 2], 0)).toEqual([0, 1, 2]);
    const g = new Map([...w].map(([n, a]) => [n, new Float32Array(a.length).fill(1)]));
    const t = importanceScores(c, w, 'neurons', 'taylor', [g, g]);
    const fc = w.get('h1.mlp.fc')!, out = w.get('h1.mlp.out')!;
    let dot = 0;
    for (let r = 0; r < 16; r++) dot += fc[r * 32 + 5];
    for (let col = 0; col < 16; col++) dot += out[5 * 16 + col];
    expect(t[1][5]).toBeCloseTo(2 * dot * dot, 5);
    disposeModel(m);
  });
});

describe('per-block model config', () => {
  it('validates layers and headDim; absent = uniform (old checkpoints unchanged)', () => {
    expect(() => resolveModelConfig({ ...c, layers: [{ nHeads: 2, ffnDim: 8 }] })).toThrow(/layers must list 2 blocks/);
    expect(() => resolveModelConfig({ ...c, layers: [{ nHeads: 0, ffnDim: 8 }, { nHeads: 1, ffnDim: 8 }] })).toThrow(/layers\[0\]/);
    expect(() => resolveModelConfig({ ...c, headDim: 1.5 })).toThrow(/headDim/);
    expect(JSON.stringify(resolveModelConfig({ vocabSize: 30 }))).not.toMatch(/layers|headDim/);
  });
});
