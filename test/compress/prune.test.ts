import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.js';
import { type PruneOptions, prune } from '../../src/compress/prune.js';
import { loadCheckpoint } from '../../src/schema/checkpoint.js';
import { prunableNames } from '../../src/compress/masks.js';
import { parameterCount } from '../../src/model/config.js';
import { disposeModel, forwardLogits } from '../../src/model/gpt.js';
import { loadModel } from '../../src/model/load.js';
import { sha256File } from '../../src/core/hash.js';
import { tmpDir, trainedCheckpoint, tinyModel } from './fixture.js';

let ckpt: string;
beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  ckpt = await trainedCheckpoint(60);
});

const zerosOf = (a: Float32Array) => a.reduce((z, x) => z + (x === 0 ? 1 : 0), 0);

describe('kd prune', () => {
  it('magnitude, one-shot: exactly the asked sparsity per weight, held at 0 through KD fine-tuning, which recovers KL', async () => {
    const hash = sha256File(ckpt);
    const out = path.join(tmpDir(), 'pruned');
    const tensors = tf.memory().numTensors;
    const s = await prune({ checkpoint: ckpt, out, data: 'synthetic', method: 'magnitude', sparsity: 0.5, finetuneSteps: 20, lr: 3e-3 });
    expect(sha256File(ckpt)).toBe(hash); // the input is never modified
    expect(tf.memory().numTensors).toBe(tensors); // no tensor leaks through pruning and fine-tuning
    const { model } = loadModel(out);
    for (const name of prunableNames(model.config)) {
      const w = model.params.get(name)!.dataSync() as Float32Array;
      expect(zerosOf(w), name).toBe(Math.floor(0.5 * w.length));
    }
    expect(s.layers!.map((l) => l.sparsity)).toEqual(s.layers!.map((l) => Math.floor(0.5 * l.size) / l.size));
    expect(s.nonzeroAfter).toBeLessThan(s.nonzeroBefore);
    expect(s.paramsAfter).toBe(s.paramsBefore);
    expect(s.valKlAfter).toBeLessThan(s.valKlPruned); // fine-tuning recovers part of the damage
    expect(s.valKlPruned).toBeGreaterThan(s.valKlBefore);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'))).toMatchObject({ stage: 'prune', input: { sha256: hash } });
    disposeModel(model);
  });

  it('magnitude, gradual and global: the final sparsity over all prunable weights is as asked', async () => {
    const out = path.join(tmpDir(), 'gradual');
    const s = await prune({ checkpoint: ckpt, out, data: 'synthetic', method: 'magnitude', sparsity: 0.6, schedule: 'gradual', scope: 'global', finetuneSteps: 12 });
    const { model } = loadModel(out);
    const names = prunableNames(model.config);
    const total = names.reduce((n, k) => n + model.params.get(k)!.size, 0);
    const zeros = names.reduce((n, k) => n + zerosOf(model.params.get(k)!.dataSync() as Float32Array), 0);
    expect(zeros).toBe(Math.floor(0.6 * total));
    expect(new Set(s.layers!.map((l) => l.sparsity.toFixed(3))).size).toBeGreaterThan(1); // global: layers differ
    disposeModel(model);
  });

  it('masks stay exact in data-parallel worker replicas too', async () => {
    const out = path.join(tmpDir(), 'workers');
    await prune({ checkpoint: ckpt, out, data: 'synthetic', method: 'magnitude', sparsity: 0.3, finetuneSteps: 4, workers: 2, backend: 'cpu' });
    const { model } = loadModel(out);
    for (const name of prunableNames(model.config)) {
      const w = model.params.get(name)!.dataSync() as Float32Array;
      expect(zerosOf(w), name).toBe(Math.floor(0.3 * w.length));
    }
    disposeModel(model);
  });

  it('heads + neurons: removed physically, the model is smaller, loads and runs', async () => {
    const out = path.join(tmpDir(), 'structured');
    const tensors = tf.memory().numTensors;
    const s = await prune({ checkpoint: ckpt, out, data: 'synthetic', method: 'structured', sparsity: 0.25, finetuneSteps: 5 });
    expect(tf.memory().numTensors).toBe(tensors);
    const { model } = loadModel(out);
    expect(model.config.layers).toEqual([{ nHeads: 3, ffnDim: 48 }, { nHeads: 3, ffnDim: 48 }]);
    expect(model.config.headDim).toBe(tinyModel.dModel / tinyModel.nHeads);
    expect(s.paramsAfter).toBe(parameterCount(model.config));
    expect(s.paramsAfter).toBeLessThan(s.paramsBefore);
    expect(s.blocks).toEqual([0, 1].map((block) => ({ block, headsBefore: 4, headsAfter: 3, ffnBefore: 64, ffnAfter: 48 })));
    expect(model.params.get('h0.attn.qkv')!.shape).toEqual([32, 3 * 3 * 8]);
    const logits = tf.tidy(() => forwardLogits(model, tf.tensor2d([[1, 2, 3]], [1, 3], 'int32')).arraySync());
    expect(logits[0][2]).toHaveLength(64);
    expect(Number.isFinite(s.valKlAfter)).toBe(true);
    disposeModel(model);
  });

  it('refuses bad input with one clear error and leaves the input alone', async () => {
    const hash = sha256File(ckpt);
    const dir = tmpDir();
    const base = { checkpoint: ckpt, out: path.join(dir, 'x'), data: 'synthetic', method: 'magnitude' as const };
    await expect(prune({ ...base, sparsity: 1 })).rejects.toThrow(/--sparsity 1: must be in \[0, 1\)/);
    await expect(prune({ ...base, sparsity: -0.1 })).rejects.toThrow(/--sparsity/);
    await expect(prune({ ...base, sparsity: 0.5, checkpoint: path.join(dir, 'nope.kdc') })).rejects.toThrow(/no such checkpoint/);
    await expect(prune({ ...base, sparsity: 0.5, out: ckpt })).rejects.toThrow(/input is never modified/);
    await expect(prune({ ...base, sparsity: 0.5, data: path.join(dir, 'no-dataset') })).rejects.toThrow(/not a kd dataset/);
    fs.mkdirSync(path.join(dir, 'x'));
    fs.writeFileSync(path.join(dir, 'x', 'checkpoint.kdc'), 'old');
    await expect(prune({ ...base, sparsity: 0.5 })).rejects.toThrow(/pass --force/);
    expect(sha256File(ckpt)).toBe(hash);
  });
});

describe('kd prune, interrupted and resumed', () => {
  const arraysOf = (out: string) => [...loadCheckpoint(out).arrays.values()].map((a) => [a.name, Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).toString('base64')]);
  /** stops the fine-tuning once `at` steps (over all stages) are done */
  const stopAt = (at: number) => {
    const ctl = new AbortController();
    return { signal: ctl.signal, onStep: (p: { done: number }) => { if (p.done === at) ctl.abort(); } };
  };
  const cases: [string, Omit<PruneOptions, 'checkpoint' | 'out'>, number[]][] = [
    ['magnitude, one-shot', { data: 'synthetic', method: 'magnitude', sparsity: 0.5, finetuneSteps: 8 }, [3]],
    // 12 steps: 6 stages of 1 step, the last (at the target sparsity) 7: stopped in an early stage and in the last
    ['magnitude, gradual', { data: 'synthetic', method: 'magnitude', sparsity: 0.6, schedule: 'gradual', finetuneSteps: 12 }, [2, 9]],
    ['heads, Taylor importance (it draws batches before fine-tuning)', { data: 'synthetic', method: 'heads', sparsity: 0.5, finetuneSteps: 6 }, [2]],
  ];
  for (const [name, opts, stops] of cases) {
    it(`${name}: --resume gives bit for bit the uninterrupted result`, async () => {
      const dir = tmpDir();
      await prune({ ...opts, checkpoint: ckpt, out: path.join(dir, 'whole') });
      const want = arraysOf(path.join(dir, 'whole'));
      expect(fs.existsSync(path.join(dir, 'whole', 'prune-work'))).toBe(false); // removed once the output is written
      const out = path.join(dir, 'resumed');
      for (const at of stops) {
        await expect(prune({ ...opts, checkpoint: ckpt, out, resume: at !== stops[0], ...stopAt(at) })).rejects.toThrow(/stopped in fine-tuning stage \d+ of \d+ at step \d+ .*--resume/);
        expect(fs.existsSync(path.join(out, 'checkpoint.kdc'))).toBe(false);
        expect(fs.existsSync(path.join(out, 'prune-work', 'options.json'))).toBe(true);
      }
      const done: number[] = [];
      await prune({ ...opts, checkpoint: ckpt, out, resume: true, onStep: (p) => done.push(p.done) });
      expect(done[0]).toBe(stops.at(-1)! + 1); // no step is run twice
      expect(arraysOf(out)).toEqual(want);
      expect(fs.existsSync(path.join(out, 'prune-work'))).toBe(false);
    });
  }

  it('refuses to resume with other options, or to start over without --force', async () => {
    const out = path.join(tmpDir(), 'p');
    const base = { checkpoint: ckpt, out, data: 'synthetic', method: 'magnitude' as const, sparsity: 0.5, finetuneSteps: 6 };
    await expect(prune({ ...base, ...stopAt(2) })).rejects.toThrow(/stopped in fine-tuning/);
    await expect(prune({ ...base, sparsity: 0.4, resume: true })).rejects.toThrow(/the interrupted prune had other sparsity; rerun it as it was, or pass --force/);
    await expect(prune({ ...base })).rejects.toThrow(/holds an interrupted prune: pass --resume to continue it, or --force to start over/);
    const s = await prune({ ...base, sparsity: 0.4, resume: true, force: true }); // other options and --force: starts over
    expect(s.sparsity).toBe(0.4);
    expect(fs.existsSync(path.join(out, 'prune-work'))).toBe(false);
  });
});
