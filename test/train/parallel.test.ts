import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { syntheticTeacher } from '../../src/data/synthetic.js';
import { train } from '../../src/train/trainer.js';
import { sliceRows } from '../../src/train/parallel.js';
import { loadCheckpoint } from '../../src/schema/checkpoint.js';

const model = resolveModelConfig({ vocabSize: 64, seqLen: 8, dModel: 16, nLayers: 1, nHeads: 2 });
const config = resolveTrainConfig({ steps: 4, batchSize: 5, seqLen: 8, lr: 1e-2, warmupSteps: 1, logEvery: 1, evalEvery: 4, evalBatches: 1, checkpointEvery: 0, loss: { divergence: 'forward-kl', temperature: 2, alpha: 0.2, beta: 0.5 } });
const data = (split: 'train' | 'val' = 'train') => syntheticTeacher({ vocabSize: 64, seqLen: 8, batchSize: 5, topK: 4, seed: 3, split });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-par-'));

beforeAll(async () => { await initBackend({ backend: 'wasm' }); });

describe('data-parallel training over worker threads', () => {
  it('splits batch rows without losing any', () => {
    const b = data().open().next();
    const parts = [sliceRows(b, 0, 2), sliceRows(b, 2, 5)];
    expect(parts.map((p) => p.B)).toEqual([2, 3]);
    expect([...parts[0].inputIds, ...parts[1].inputIds]).toEqual([...b.inputIds]);
    expect([...parts[0].topLogprobs, ...parts[1].topLogprobs]).toEqual([...b.topLogprobs]);
  });

  it('two workers (uneven split) train the same model as one process, up to float summation order', async () => {
    const a = tmp(), b = tmp();
    const s1 = await train({ model, config, data: data(), val: data('val'), outDir: a, workers: 1 });
    const s2 = await train({ model, config, data: data(), val: data('val'), outDir: b, workers: 2, backend: 'wasm' });
    expect(s2.workers).toBe(2);
    expect(s2.loss).toBeCloseTo(s1.loss, 4);
    expect(s2.valLoss).toBeCloseTo(s1.valLoss!, 4);
    const A = loadCheckpoint(a).arrays, B = loadCheckpoint(b).arrays;
    for (const [name, arr] of A) {
      const other = B.get(name)!.data;
      const diff = (arr.data as Float32Array).reduce((m: number, v: number, i: number) => Math.max(m, Math.abs(v - other[i])), 0);
      expect(diff, name).toBeLessThan(1e-4);
    }
  });

  it('resumes exactly with workers too', async () => {
    const a = tmp(), b = tmp();
    await train({ model, config, data: data(), outDir: a, workers: 2, backend: 'wasm' });
    const stop = new AbortController();
    await train({ model, config, data: data(), outDir: b, workers: 2, backend: 'wasm', signal: stop.signal, onStep: (p) => { if (p.step === 2) stop.abort(); } });
    await train({ model, config, data: data(), outDir: b, workers: 2, backend: 'wasm', resume: true });
    const A = loadCheckpoint(a).arrays, B = loadCheckpoint(b).arrays;
    for (const [name, arr] of A) expect(Buffer.from(B.get(name)!.data.buffer).equals(Buffer.from(arr.data.buffer)), name).toBe(true);
  });

  it('a worker that cannot start fails the run with its reason', async () => {
    await expect(train({ model, config, data: data(), outDir: tmp(), workers: 2, backend: 'nonsense' })).rejects.toThrow(/unknown backend "nonsense"/);
  });
});
