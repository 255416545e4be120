import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.js';
import { writableView } from '../../src/backend/io.js';
import { setNativeEnabled } from '../../src/backend/native.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { initModel, disposeModel } from '../../src/model/gpt.js';
import { resolveTrainConfig, type TrainConfig } from '../../src/train/config.js';
import { syntheticTeacher } from '../../src/data/synthetic.js';
import { train } from '../../src/train/trainer.js';
import { trainStep } from '../../src/train/step.js';
import { adamWStep, addInto, clipCoefficient, globalNorm, initAdamW, disposeAdamW, learningRate } from '../../src/train/optimizer.js';
import { loadCheckpoint } from '../../src/schema/checkpoint.js';
import type { Batch } from '../../src/data/batch.js';

const model = resolveModelConfig({ vocabSize: 48, seqLen: 12, dModel: 16, nLayers: 2, nHeads: 2 });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-train-'));
const cfg = (over: Partial<TrainConfig> = {}) => resolveTrainConfig({ steps: 8, batchSize: 4, seqLen: 12, lr: 3e-3, warmupSteps: 2, logEvery: 2, evalEvery: 0, checkpointEvery: 0, ...over });
const data = (seed = 1, batchSize = 4, split: 'train' | 'val' = 'train') => syntheticTeacher({ vocabSize: 48, seqLen: 12, batchSize, topK: 6, seed, split });

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('train', () => {
  it('learns the synthetic teacher: validation KL falls', async () => {
    const dir = tmp();
    const c = cfg({ steps: 40, lr: 1e-2, evalEvery: 40, evalBatches: 2, loss: { divergence: 'forward-kl', temperature: 1, alpha: 0, beta: 0.5, missingMass: 'tail', unlabelledWeight: 1, tailTarget: 0.5 } });
    const logs: number[] = [];
    const s = await train({ model, config: c, data: data(), val: data(1, 4, 'val'), outDir: dir, onLog: (r) => logs.push(r.loss) });
    expect(s.steps).toBe(40);
    expect(logs[logs.length - 1]).toBeLessThan(logs[0] * 0.8);
    expect(s.valLoss).toBeLessThan(logs[0]);
    const lines = fs.readFileSync(path.join(dir, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBe(20);
    expect(lines.at(-1)).toHaveProperty('valLoss');
  });

  it('resumes exactly: N steps straight equal N/2, then --resume for N/2, bit for bit', async () => {
    const a = tmp(), b = tmp();
    const c = cfg({ steps: 6, accumSteps: 2, checkpointEvery: 0 });
    await train({ model, config: c, data: data(), outDir: a });
    // interrupted after 3 of 6 steps (as Ctrl-C does): it checkpoints and stops
    const stop = new AbortController();
    await train({ model, config: c, data: data(), outDir: b, signal: stop.signal, onStep: (p) => { if (p.step === 3) stop.abort(); } });
    const half = loadCheckpoint(b);
    expect((half.header.state as { step: number }).step).toBe(3);
    await train({ model, config: c, data: data(), outDir: b, resume: true });
    const A = loadCheckpoint(a).arrays, B = loadCheckpoint(b).arrays;
    expect([...A.keys()]).toEqual([...B.keys()]);
    for (const [name, arr] of A) expect(Buffer.from(B.get(name)!.data.buffer).equals(Buffer.from(arr.data.buffer)), name).toBe(true);
    expect(loadCheckpoint(b).header.state).toMatchObject({ step: 6, cursor: 12 });
  });

  it('refuses to overwrite an existing run without --resume, and rejects a resume with another config', async () => {
    const dir = tmp();
    await train({ model, config: cfg({ steps: 2 }), data: data(), outDir: dir });
    await expect(train({ model, config: cfg({ steps: 2 }), data: data(), outDir: dir, resume: undefined })).rejects.toThrow(/pass --resume/);
    await expect(train({ model, config: cfg({ steps: 4, lr: 1e-3 }), data: data(), outDir: dir, resume: true })).rejects.toThrow(/differs from this run's in lr/);
    await expect(train({ model: { ...model, dModel: 32 }, config: cfg({ steps: 4 }), data: data(), outDir: dir, resume: true })).rejects.toThrow(/model config differs/);
  });

  it('a corrupt checkpoint gives a clear error', async () => {
    const dir = tmp();
    await train({ model, config: cfg({ steps: 1 }), data: data(), outDir: dir });
    const file = path.join(dir, 'checkpoint.kdc');
    const buf = fs.readFileSync(file);
    buf[buf.length - 5] ^= 0xff;
    fs.writeFileSync(file, buf);
    await expect(train({ model, config: cfg({ steps: 2 }), data: data(), outDir: dir, resume: true })).rejects.toThrow(/checksum mismatch/);
    fs.writeFileSync(file, buf.subarray(0, 100));
    expect(() => loadCheckpoint(file)).toThrow(/not a valid kd checkpoint/);
  });
});

const batches = (n: number, B = 4): Batch[] => { const s = data(5, B).open(); return [...Array(n)].map(() => s.next()); };

describe('trainStep', () => {
  const concat = (a: Batch, b: Batch): Batch => {
    const cat = <T extends Int32Array | Float32Array>(x: T, y: T) => { const r = new (x.constructor as new (n: number) => T)(x.length + y.length); r.set(x); r.set(y, x.length); return r; };
    return { B: a.B + b.B, T: a.T, K: a.K, inputIds: cat(a.inputIds, b.inputIds), topIds: cat(a.topIds, b.topIds), topLogprobs: cat(a.topLogprobs, b.topLogprobs), mask: cat(a.mask, b.mask), targets: cat(a.targets, b.targets) };
  };

  it('holds no tensors across steps (tf.memory().numTensors is flat)', () => {
    const m = initModel(model, 3);
    const opt = initAdamW(m.params);
    const c = cfg({ loss: { divergence: 'jsd', temperature: 2, alpha: 0.5, beta: 0.5, missingMass: 'tail', unlabelledWeight: 1, tailTarget: 0.5 } });
    const bs = batches(4);
    trainStep(m, opt, [bs[0]], c, 1e-3); // first step creates cached constants (causal mask)
    const before = tf.memory().numTensors;
    for (const b of bs.slice(1)) trainStep(m, opt, [b], c, 1e-3);
    trainStep(m, opt, bs.slice(0, 2), { ...c, accumSteps: 2 }, 1e-3);
    expect(tf.memory().numTensors).toBe(before);
    disposeAdamW(opt);
    disposeModel(m);
  });

  it('gradient accumulation over two micro-batches equals one step on both together', () => {
    const [b1, b2] = batches(2);
    b1.mask.fill(0, 0, 30); // uneven labelled counts: the step mean must still weigh positions equally
    b2.targets.fill(-1, 5, 9);
    const c = cfg({ gradClip: 0, loss: { divergence: 'forward-kl', temperature: 2, alpha: 0.3, beta: 0.5, missingMass: 'tail', unlabelledWeight: 1, tailTarget: 0.5 } });
    const m1 = initModel(model, 4), m2 = initModel(model, 4);
    const o1 = initAdamW(m1.params), o2 = initAdamW(m2.params);
    const r1 = trainStep(m1, o1, [b1, b2], { ...c, accumSteps: 2 }, 1e-2);
    const r2 = trainStep(m2, o2, [concat(b1, b2)], c, 1e-2);
    expect(r1.loss).toBeCloseTo(r2.loss, 5);
    expect(r1.gradNorm).toBeCloseTo(r2.gradNorm, 4);
    for (const [name, v] of m1.params) {
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(v, m2.params.get(name)!))).dataSync()[0]);
      expect(d, name).toBeLessThan(1e-6);
    }
    [o1, o2].forEach(disposeAdamW); [m1, m2].forEach(disposeModel);
  });

  it('clips the global gradient norm', () => {
    const m = initModel(model, 5);
    const opt = initAdamW(m.params);
    const before = m.params.get('h0.mlp.fc')!.dataSync().slice();
    const r = trainStep(m, opt, batches(1), cfg({ gradClip: 1e-3 }), 0);
    expect(r.gradNorm).toBeGreaterThan(1e-3); // reported before clipping
    // lr 0: nothing moves, but Adam's moments saw the clipped gradient
    expect(m.params.get('h0.mlp.fc')!.dataSync()).toEqual(before);
    const mNorm = Math.sqrt([...opt.m.values()].reduce((s, v) => s + tf.tidy(() => tf.sum(tf.square(v)).dataSync()[0]), 0));
    expect(mNorm / (1 - 0.9)).toBeCloseTo(1e-3, 6);
    disposeAdamW(opt); disposeModel(m);
  });
});

describe('AdamW and the schedule', () => {
  it('one AdamW step matches the formula (decoupled decay on matrices only)', () => {
    const m = initModel(model, 6);
    const opt = initAdamW(m.params);
    const c = cfg({ gradClip: 0, weightDecay: 0.1 });
    const w0 = m.params.get('h0.attn.proj')!.dataSync().slice();
    const g0 = m.params.get('h0.ln1.g')!.dataSync().slice();
    trainStep(m, opt, batches(1), c, 0.01);
    // first step: m̂ = g, v̂ = g², so the update is lr·g/(|g|+ε) ≈ ±lr, plus decay lr·wd·w
    const w1 = m.params.get('h0.attn.proj')!.dataSync();
    for (let i = 0; i < 20; i++) {
      const step = w0[i] * (1 - 0.01 * 0.1) - w1[i];
      expect(Math.abs(Math.abs(step) - 0.01)).toBeLessThan(1e-4);
    }
    const g1 = m.params.get('h0.ln1.g')!.dataSync();
    for (let i = 0; i < 8; i++) expect(Math.abs(Math.abs(g0[i] - g1[i]) - 0.01)).toBeLessThan(1e-4); // no decay on LayerNorm gain
    disposeAdamW(opt); disposeModel(m);
  });

  it('the fused in-place AdamW pass (native, and JS) equals the tfjs-ops pass, step after step; shared data is never written', () => {
    const c = cfg({ weightDecay: 0.1 });
    const [nat, js, ops] = [initModel(model, 8), initModel(model, 8), initModel(model, 8)];
    const [on, oj, oo] = [initAdamW(nat.params), initAdamW(js.params), initAdamW(ops.params)];
    // Holding a clone of every weight shares its data: the optimizer must then leave it alone and
    // fall back to tfjs ops, which is how the reference path is exercised here.
    const clones = [...ops.params.values()].map((v) => tf.clone(v));
    const before = clones.map((t) => t.dataSync().slice());
    for (const name of ['wte', 'h0.ln1.g']) {
      expect(writableView(nat.params.get(name)!)).not.toBeNull();
      expect(writableView(ops.params.get(name)!)).toBeNull();
    }
    let size = 0;
    for (const v of nat.params.values()) size += v.size;
    for (let step = 0; step < 3; step++) {
      const flat = Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.37 + step) * (i % 7));
      const scale = clipCoefficient(globalNorm(flat), 1);
      expect(scale).toBeLessThan(1);
      adamWStep(nat.params, flat, on, c, 0.01, scale);
      setNativeEnabled(false);
      adamWStep(js.params, flat, oj, c, 0.01, scale);
      setNativeEnabled(true);
      adamWStep(ops.params, flat, oo, c, 0.01, scale);
    }
    for (const [m, o] of [[nat, on], [js, oj]] as const) {
      for (const name of m.params.keys()) {
        const [a, b] = [m.params.get(name)!.dataSync(), ops.params.get(name)!.dataSync()];
        for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-6);
        const [ma, mb] = [o.m.get(name)!.dataSync(), oo.m.get(name)!.dataSync()];
        for (let i = 0; i < ma.length; i++) expect(Math.abs(ma[i] - mb[i])).toBeLessThan(1e-7);
      }
      expect(o.t).toBe(3);
    }
    clones.forEach((t, i) => expect(t.dataSync()).toEqual(before[i]));
    // …and the reference path did move the weights (its data was replaced, not written)
    expect(ops.params.get('wte')!.dataSync()[0]).not.toBe(before[0][0]);
    tf.dispose(clones);
    [on, oj, oo].forEach(disposeAdamW); [nat, js, ops].forEach(disposeModel);
  });

  it('clips like torch.nn.utils.clip_grad_norm_', () => {
    expect(globalNorm(new Float32Array([3, 4]))).toBe(5);
    const big = Float32Array.from({ length: 100003 }, (_, i) => Math.sin(i));
    const native = globalNorm(big);
    setNativeEnabled(false);
    expect(Math.abs(globalNorm(big) - native) / native).toBeLessThan(1e-12);
    const [a, b] = [big.slice(), big.slice()];
    addInto(a, big);
    setNativeEnabled(true);
    addInto(b, big);
    expect(a).toEqual(b);
    expect(a[7]).toBeCloseTo(2 * big[7], 6);
    expect(clipCoefficient(5, 1)).toBeCloseTo(1 / (5 + 1e-6), 12);
    expect(clipCoefficient(0.5, 1)).toBe(1);
    expect(clipCoefficient(5, 0)).toBe(1);
    expect(clipCoefficient(Infinity, 1)).toBe(1);
  });

  it('warms up linearly then decays along a cosine to minLr', () => {
    const s = { lr: 1, minLr: 0.1, warmupSteps: 10, steps: 110 };
    expect(learningRate(0, s)).toBeCloseTo(0.1);
    expect(learningRate(9, s)).toBeCloseTo(1);
    expect(learningRate(60, s)).toBeCloseTo(0.55);
    expect(learningRate(110, s)).toBeCloseTo(0.1);
  });

  it('rejects bad training configs with one clear line', () => {
    expect(() => resolveTrainConfig({ steps: 0 })).toThrow(/steps must be a positive integer/);
    expect(() => resolveTrainConfig({ minLr: 1 })).toThrow(/minLr/);
    expect(() => resolveTrainConfig({ bogus: 1 } as never)).toThrow(/unknown field "bogus"/);
  });
});
