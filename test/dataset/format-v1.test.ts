import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/dataset/build.js';
import { inspectDataset } from '../../src/dataset/inspect.js';
import { datasetSource } from '../../src/data/loader.js';
import { readDatasetManifest } from '../../src/schema/dataset.js';
import { LP8_RANGE } from '../../src/schema/lp8.js';
import type { Batch } from '../../src/data/batch.js';
import { kd } from '../helpers/kd.js';
import { builtDataset } from './fixtures.js';

const golden = path.join(import.meta.dirname, 'golden');
const v1 = path.join(golden, 'v1-dataset');
const want = JSON.parse(fs.readFileSync(path.join(golden, 'v1-dataset-batches.json'), 'utf8'));

const batchHash = (b: Batch) => {
  const h = createHash('sha256');
  for (const a of [b.inputIds, b.topIds, b.topLogprobs, b.mask, b.targets]) h.update(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex');
};

describe('format version 1 datasets (built by kd before issue 17) still read', () => {
  it.each(['train', 'val'] as const)('%s: the loader gives the same batches, bit for bit, as the kd that built it', (split) => {
    expect(readDatasetManifest(v1).version).toBe(1);
    const src = datasetSource(v1, { split, batchSize: want.batchSize, seqLen: want.seqLen, seed: want.seed, shuffleWindow: want.shuffleWindow }).open();
    expect(Array.from({ length: want.batches[split].length }, () => batchHash(src.next()))).toEqual(want.batches[split]);
  });

  it('inspect (library and CLI, human and --json) shows the version and bytes per top-k entry', () => {
    const r = inspectDataset(v1);
    expect(r.version).toBe(1);
    expect(r.bytesPerEntry).toBeGreaterThan(4);
    expect(r.splits.train.entries).toBeGreaterThan(0);
    const j = kd(['dataset', 'inspect', v1, '--json']);
    expect(j.status).toBe(0);
    expect(JSON.parse(j.stdout).bytesPerEntry).toBeCloseTo(r.bytesPerEntry, 9);
    const h = kd(['dataset', 'inspect', v1]);
    expect(h.stdout).toMatch(/kd-dataset v1/);
    expect(h.stdout).toMatch(new RegExp(`${r.bytesPerEntry.toFixed(2)} bytes per top-k entry`));
  });
});

describe('version 2 against version 1 from the same raw data', () => {
  const fx = builtDataset({ texts: 30 });
  const o = { from: fx.raw, vocabSize: 500, valFraction: 0.2, seed: 1, batchTokens: 700 };
  const a = buildDataset({ ...o, out: path.join(fx.root, 'v1'), formatVersion: 1 });
  const b = buildDataset({ ...o, out: path.join(fx.root, 'v2') });

  it('takes < 65% of version 1\'s bytes per top-k entry, and says so in the build summary (human and --json)', () => {
    expect(a.formatVersion).toBe(1);
    expect(b.formatVersion).toBe(2);
    expect(a.bytesPerEntry).toBeGreaterThan(4);
    expect(b.bytesPerEntry / a.bytesPerEntry).toBeLessThan(0.65);
    expect(readDatasetManifest(path.join(fx.root, 'v2')).bytesPerEntry).toBeCloseTo(b.bytesPerEntry, 9);
    expect(inspectDataset(path.join(fx.root, 'v2')).bytesPerEntry).toBeCloseTo(b.bytesPerEntry, 9);
    const j = kd(['dataset', 'build', '--from', fx.raw, '--out', path.join(fx.root, 'cli-v1'), '--vocab-size', '500', '--format-version', '1', '--json']);
    expect(j.status).toBe(0);
    const js = JSON.parse(j.stdout);
    expect(js.formatVersion).toBe(1);
    expect(js.bytesPerEntry).toBeGreaterThan(4);
    const h = kd(['dataset', 'build', '--from', fx.raw, '--out', path.join(fx.root, 'cli-v2'), '--vocab-size', '500']);
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/format v2: [\d.]+ bytes per labelled token .*, [\d.]+ bytes per top-k entry/);
    const bad = kd(['dataset', 'build', '--from', fx.raw, '--out', path.join(fx.root, 'cli-v3'), '--format-version', '3']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^kd: bad-option: --format-version must be 1 or 2, got 3/);
  });

  it('the loader gives identical batches but for the log-probs, which stay within the 8-bit bound; the top-k mass within 0.01', () => {
    for (const split of ['train', 'val'] as const) {
      const s1 = datasetSource(path.join(fx.root, 'v1'), { split, batchSize: 3, seqLen: 50, seed: 2 }).open();
      const s2 = datasetSource(path.join(fx.root, 'v2'), { split, batchSize: 3, seqLen: 50, seed: 2 }).open();
      let worst = 0;
      for (let n = 0; n < 12; n++) {
        const x = s1.next(), y = s2.next();
        expect(y.K).toBe(x.K);
        for (const k of ['inputIds', 'targets', 'mask', 'topIds'] as const) expect(y[k]).toEqual(x[k]);
        for (let p = 0; p < x.B * x.T; p++) {
          if (!x.mask[p]) continue;
          const base = p * x.K;
          expect(y.topLogprobs[base]).toBe(x.topLogprobs[base]); // the best: float16 in both
          let m1 = 0, m2 = 0;
          for (let k = 0; k < x.K; k++) {
            const l1 = x.topLogprobs[base + k], l2 = y.topLogprobs[base + k];
            if (l1 === -9999) { expect(l2).toBe(-9999); continue; }
            const d = Math.min(LP8_RANGE, x.topLogprobs[base] - l1);
            expect(Math.abs(l2 - l1)).toBeLessThanOrEqual(2 * Math.sqrt(LP8_RANGE * d) / 255 + 0.002 + Math.abs(l1) / 2048);
            m1 += Math.exp(l1); m2 += Math.exp(l2);
          }
          worst = Math.max(worst, Math.abs(m1 - m2));
        }
      }
      expect(worst).toBeLessThan(0.01);
    }
  });
});
