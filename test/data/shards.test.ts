/**
 * Shard writer edge cases, read back through the loader's own reader (loadShard): record batches in
 * which no position has a soft label (texts with hard targets only, kd dataset build --text) used to
 * come out 8 bytes short — apache-arrow's writer merged the two columns' shared offsets — and read back
 * as garbage or hung.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ShardWriter, loadShard } from '../../src/data/shards.js';
import type { Sequence } from '../../src/schema/dataset.js';

const plain = (id: string, n: number): Sequence => ({ inputId: id, ids: Array.from({ length: n }, (_, i) => (i * 7) % 50), mask: new Uint8Array(n), targetFrom: 0, topCounts: [], topIds: [], topLogprobs: [] });
const labelled = (id: string): Sequence => ({
  inputId: id, ids: [1, 2, 3, 4, 5, 6, 7, 8], mask: new Uint8Array([1, 0, 1, 0, 0, 0, 0, 0]), targetFrom: 0,
  topCounts: [2, 1], topIds: [3, 4, 9], topLogprobs: [-0.1, -2.5, -0.01],
});

describe('ShardWriter', () => {
  for (const version of [1, 2] as const) {
    for (const [name, seqs] of [
      ['only unlabelled rows', [plain('a', 8), plain('b', 9), plain('c', 8)]],
      ['an unlabelled batch first', [plain('a', 8), labelled('x'), plain('b', 8)]],
      ['an unlabelled batch last', [labelled('x'), plain('a', 8), plain('b', 8)]],
    ] as const) {
      it(`v${version}: ${name} read back exactly, one batch per row`, () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-shards-'));
        const w = new ShardWriter(dir, 'train', 'hash', { shardBytes: 1 << 30, batchTokens: 8, version, vocabSize: 64 });
        for (const q of seqs) w.add(q);
        const [info] = w.close();
        expect(fs.statSync(path.join(dir, info.file)).size).toBe(info.bytes);
        const batches = loadShard(dir, info, 'hash', true, 64);
        expect(batches).toHaveLength(seqs.length);
        batches.forEach((b, i) => {
          const q = seqs[i];
          expect(b.rows).toBe(1);
          expect([...b.ids.subarray(b.idOff[0], b.idOff[1])]).toEqual(q.ids);
          expect([...b.mask.subarray(b.idOff[0], b.idOff[1])]).toEqual([...q.mask]);
          expect(b.labOff[1] - b.labOff[0]).toBe(q.topCounts.length);
          const e0 = b.topOff[b.labOff[0]], e1 = b.topOff[b.labOff[1]];
          expect([...b.topIds.subarray(e0, e1)]).toEqual(q.topIds);
          [...b.topLogprobs.subarray(e0, e1)].forEach((lp, j) => expect(lp).toBeCloseTo(q.topLogprobs[j], 1));
        });
      });
    }
  }
});
