import { describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/dataset/build.js';
import { datasetSource } from '../../src/data/loader.js';
import type { Batch } from '../../src/data/batch.js';
import { builtDataset } from '../dataset/fixtures.js';

const fx = builtDataset({ texts: 40 });
const s = buildDataset({ from: fx.raw, out: fx.out, vocabSize: 500, valFraction: 0.1, shardBytes: 40_000, batchTokens: 800 });
const opts = { split: 'train' as const, batchSize: 4, seqLen: 64, seed: 5, shuffleWindow: 3 };
const tokensPerEpoch = s.splits.train.tokens;
const same = (a: Batch, b: Batch) => {
  for (const k of ['inputIds', 'topIds', 'topLogprobs', 'mask', 'targets'] as const) expect(Buffer.from(a[k].buffer).equals(Buffer.from(b[k].buffer)), k).toBe(true);
};

describe('streaming dataset loader', () => {
  it('yields [B, T] batches of the trainer interface', () => {
    const b = datasetSource(fx.out, opts).open().next();
    expect([b.B, b.T, b.K]).toEqual([4, 64, 20]);
    expect(b.inputIds.length).toBe(256);
    expect(b.topIds.length).toBe(256 * 20);
    expect(b.mask.some((m) => m === 1)).toBe(true);
    for (let n = 0; n < 256; n++) if (b.mask[n]) expect(b.targets[n]).toBeGreaterThanOrEqual(0);
  });

  it('resumes at exactly the next batch from a JSON cursor, across window and epoch edges', () => {
    const f = datasetSource(fx.out, opts);
    const steps = Math.ceil((2.5 * tokensPerEpoch) / 256); // two and a half epochs
    const a = f.open();
    const straight: Batch[] = [];
    const cursors: unknown[] = [];
    for (let i = 0; i < steps; i++) {
      straight.push(a.next());
      cursors.push(JSON.parse(JSON.stringify(a.cursor())));
    }
    expect((cursors.at(-1) as { epoch: number }).epoch).toBe(2);
    for (const at of [0, 1, Math.floor(steps / 3), Math.floor(steps / 2), steps - 3]) {
      const b = f.open(cursors[at]);
      for (let i = at + 1; i < Math.min(at + 3, steps); i++) same(b.next(), straight[i]);
    }
  });

  it('shuffles deterministically: same seed same order, another seed or epoch another order', () => {
    const first = (seed: number) => datasetSource(fx.out, { ...opts, seed }).open().next();
    same(first(5), first(5));
    expect(Buffer.from(first(6).inputIds.buffer).equals(Buffer.from(first(5).inputIds.buffer))).toBe(false);
    const src = datasetSource(fx.out, opts).open();
    const perEpoch = Math.floor(tokensPerEpoch / 256);
    const e0 = src.next();
    for (let i = 1; i < perEpoch + 1; i++) src.next();
    expect(Buffer.from(src.next().inputIds.buffer).equals(Buffer.from(e0.inputIds.buffer))).toBe(false);
  });

  it('rejects a cursor from other data with a clear error', () => {
    const f = datasetSource(fx.out, opts);
    expect(() => f.open(12)).toThrow(/not a dataset cursor/);
    expect(() => f.open({ epoch: 0, window: 999, seq: 0, offset: 0 })).toThrow(/window 999 is past/);
  });
});
