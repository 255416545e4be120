import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { resolveTrainArgs } from '../../src/train/options.js';
import { buildDataset } from '../../src/dataset/build.js';
import { openDataset } from '../../src/data/dataset.js';
import { loadCheckpoint } from '../../src/schema/checkpoint.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { trainData as openData } from '../../src/train/data.js';
import { train } from '../../src/train/trainer.js';
import { builtDataset, tmpDir } from './fixtures.js';

const fx = builtDataset({ texts: 16 });
buildDataset({ from: fx.raw, out: fx.out, vocabSize: 320, valFraction: 0.25, batchTokens: 600 });
const args = (over: Record<string, unknown> = {}) => resolveTrainArgs({
  data: fx.out, out: tmpDir('kd-run-'), dModel: 16, layers: 1, heads: 2, seqLen: 16, batchSize: 2, steps: 6, lr: 3e-3, warmupSteps: 1,
  logEvery: 2, evalEvery: 3, evalBatches: 1, checkpointEvery: 0, seed: 7, ...over,
});

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('kd train --data DIR', () => {
  it('a dataset without soft labels (top-k 0): the build and kd train say so, and training still learns from the hard targets', async () => {
    const { writeRaw, rawRecords, paragraphs } = await import('./fixtures.js');
    const { formatBuild } = await import('../../src/cli/dataset.js');
    const { kd } = await import('../helpers/kd.js');
    const records = rawRecords(paragraphs(8), { mode: 'score', seed: 4 }).map((r) => ({ ...r, top_tokens: r.top_tokens.map(() => []), top_bytes: r.top_bytes.map(() => []), top_logprobs: r.top_logprobs.map(() => []) }));
    const root = tmpDir('kd-nolabels-');
    const out = path.join(root, 'ds');
    const summary = buildDataset({ from: writeRaw(path.join(root, 'raw'), records), out, vocabSize: 300, valFraction: 0 });
    expect(summary.counts.labelled).toBe(0);
    expect(formatBuild(summary)).toMatch(/warning: no position has a teacher log-prob/);
    const r = kd(['train', '--data', out, '--out', path.join(root, 'run'), '--d-model', '16', '--layers', '1', '--heads', '2', '--seq-len', '16', '--batch-size', '2', '--steps', '3', '--backend', 'cpu', '--workers', '1', '--json']);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/kd train: warning: .* has no soft labels \(0 labelled positions/);
    const end = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(end.loss).toBeGreaterThan(0); // not a silent no-op: the hard targets train
  });

  it('takes the vocabulary from the dataset tokenizer; refuses a different --vocab-size', () => {
    const d = openData(args());
    expect(d.model.vocabSize).toBe(320);
    expect(d.tokenizer!.hash()).toBe(openDataset(fx.out).tokenizer.hash());
    expect(d.val).toBeDefined();
    expect(openData(args({ vocabSize: 320 })).model.vocabSize).toBe(320);
    expect(() => openData(args({ vocabSize: 8192 }))).toThrow(/--vocab-size 8192 does not match .*tokenizer \(320 ids\)/);
    expect(() => openData(args({ data: fx.raw }))).toThrow(/not a kd dataset directory/);
  });

  it('resumes exactly: N steps straight equal N/2, then --resume for N/2, bit for bit; the tokenizer is in the checkpoint', async () => {
    const r = args();
    const run = async (outDir: string, o: { stopAt?: number; resume?: boolean } = {}) => {
      const d = openData(r);
      const stop = new AbortController();
      await train({
        model: d.model, config: r.config, data: d.train, val: d.val, outDir, tokenizer: d.tokenizer?.toJSON(), resume: o.resume, signal: stop.signal,
        onStep: (p) => { if (p.step === o.stopAt) stop.abort(); },
      });
    };
    const a = tmpDir('kd-run-'), b = tmpDir('kd-run-');
    await run(a);
    await run(b, { stopAt: 3 });
    expect((loadCheckpoint(path.join(b, 'checkpoint.kdc')).header.state as { step: number }).step).toBe(3);
    await run(b, { resume: true });
    const A = loadCheckpoint(path.join(a, 'checkpoint.kdc')), B = loadCheckpoint(path.join(b, 'checkpoint.kdc'));
    expect([...A.arrays.keys()]).toEqual([...B.arrays.keys()]);
    for (const [name, arr] of A.arrays) expect(Buffer.from(B.arrays.get(name)!.data.buffer).equals(Buffer.from(arr.data.buffer)), name).toBe(true);
    expect(B.header.state).toMatchObject({ step: 6, cursor: (A.header.state as { cursor: unknown }).cursor });
    expect((A.header.state as { cursor: { offset: number } }).cursor).toHaveProperty('offset');
    expect(Tokenizer.fromJSON(A.header.tokenizer).hash()).toBe(openDataset(fx.out).tokenizer.hash());
    // the val split was used: the log has a validation loss
    const log = fs.readFileSync(path.join(a, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.some((l) => typeof l.valLoss === 'number' && Number.isFinite(l.valLoss))).toBe(true);

    // resuming on a dataset rebuilt with another vocabulary of the same size is refused
    const other = path.join(fx.root, 'other');
    buildDataset({ from: fx.raw, out: other, vocabSize: 320, valFraction: 0.25, seed: 1 });
    const t = JSON.parse(fs.readFileSync(path.join(other, 'tokenizer.json'), 'utf8'));
    t.tokens[300] = 'ffffff';
    await expect(train({ model: openData(r).model, config: r.config, data: openData(r).train, outDir: b, tokenizer: t, resume: true })).rejects.toThrow(/trained with another tokenizer/);
  });
});
