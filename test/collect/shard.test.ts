/**
 * Fan-out end to end: two `collect --shard i/2` runs against the fault-injecting teacher, then
 * `dataset merge`, then `dataset build`, must give what one unsharded collection gives.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, type CollectInput } from '../../src/collect/index.js';
import { shardOf } from '../../src/collect/partition.js';
import { buildDataset } from '../../src/dataset/build.js';
import { mergeRaw } from '../../src/dataset/merge.js';
import { openDataset } from '../../src/data/dataset.js';
import { openShard } from '../../src/data/shards.js';
import { SPLITS } from '../../src/schema/dataset.js';
import { readRawDir } from '../../src/schema/raw.js';
import { startTeacherServer, type TeacherServer } from './teacher-server.js';

const N = 30;
const rows = [...Array.from({ length: N }, (_, i) => ({ id: `p${i}`, prompt: `Question number ${i}? ${'and more words '.repeat(i % 4)}` })), { id: 'empty', prompt: ' ' }];
const dir = mkdtempSync(join(tmpdir(), 'kd-shard-'));
const input = join(dir, 'in.jsonl');
writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
const outOf = (i: number) => join(dir, `raw-shard-${i}-of-2`);

let server: TeacherServer;
let base: CollectInput;
beforeAll(async () => {
  // row 7 is always answered without log-probs (a reject); every 3rd first attempt fails (retried)
  server = await startTeacherServer({
    retryAfterMs: '5',
    fault: (c) => {
      const i = Number(/number (\d+)/.exec(JSON.stringify(c.body.messages))![1]);
      if (i === 7) return 'nologprobs';
      if (c.attempt === 1 && i % 3 === 0) return (['503', '429', 'reset'] as const)[i % 9 / 3]!;
      return null;
    },
  });
  base = { teacherUrl: server.url, model: 'test-teacher', input, out: '', topK: 3, concurrency: 3 };
});
afterAll(() => server.close());

const ids = (out: string) => [...readRawDir(out)].map((r) => r.input_id).sort();
const rejectIds = (out: string) => readFileSync(join(out, 'rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).id as string).sort();

function datasetIds(out: string): string[] {
  const ds = openDataset(out);
  const found: string[] = [];
  for (const split of SPLITS) {
    for (const info of ds.manifest.splits[split].shards) {
      for (const batch of openShard(out, info, ds.manifest.tokenizer.hash, true)) found.push(...[...batch.getChild('input_id')!].map(String));
    }
  }
  return found.sort();
}

describe('collect --shard i/n → dataset merge → dataset build', () => {
  it('each shard collects only its rows, resumes per shard, and the merge builds like one collection', async () => {
    const mine = (i: number) => rows.filter((r) => shardOf(r.id, 2) === i).map((r) => r.id).sort();
    expect(mine(0).length).toBeGreaterThan(5);
    expect(mine(1).length).toBeGreaterThan(5);

    const sums = [];
    for (const i of [0, 1]) {
      const receivedBefore = server.received.size;
      const s = await collect({ ...base, out: outOf(i), shard: { index: i, count: 2 } }, { backoffBaseMs: 2 });
      const expectedRows = mine(i);
      const rejected = expectedRows.filter((id) => id === 'p7' || id === 'empty').length;
      expect(s).toMatchObject({ shard: `${i}/2`, stopReason: 'complete', rows: expectedRows.length, requestsTotal: expectedRows.length, pending: 0, rejected });
      expect(s.answered).toBe(expectedRows.length - rejected);
      // only this shard's rows reached the teacher (the empty prompt is rejected before sending)
      expect(server.received.size - receivedBefore).toBe(expectedRows.filter((id) => id !== 'empty').length);
      expect([...ids(outOf(i)), ...(rejected ? rejectIds(outOf(i)) : [])].sort()).toEqual(expectedRows);
      const m = JSON.parse(readFileSync(join(outOf(i), 'manifest.json'), 'utf8'));
      expect(m).toMatchObject({ status: 'complete', shard: { index: i, count: 2 }, counts: { requests_total: expectedRows.length, pending: 0 } });
      sums.push(s);
    }
    expect(sums[0]!.rows + sums[1]!.rows).toBe(rows.length);

    // resume is per shard: nothing more to send; another shard into the same --out is refused
    const totalBefore = server.total();
    expect(await collect({ ...base, out: outOf(0), shard: { index: 0, count: 2 } })).toMatchObject({ sent: 0, alreadyDone: mine(0).length });
    expect(server.total()).toBe(totalBefore);
    await expect(collect({ ...base, out: outOf(0), shard: { index: 1, count: 2 } })).rejects.toThrow(/holds shard 0\/2, not shard 1\/2; give each shard its own --out/);
    await expect(collect({ ...base, out: outOf(0) })).rejects.toThrow(/holds shard 0\/2, not an unsharded one/);

    const whole = join(dir, 'raw-all');
    const s = await collect({ ...base, out: whole }, { backoffBaseMs: 2 });
    expect(s).toMatchObject({ shard: null, stopReason: 'complete', rows: rows.length });

    const merged = join(dir, 'raw-merged');
    const m = mergeRaw({ from: [outOf(0), outOf(1)], out: merged });
    expect(m.counts).toMatchObject({ records: N - 1, requests: rows.length - 2, duplicate_requests: 0, duplicate_records: 0, rejects: 2, pending: 0 });
    expect(m.notes).toEqual([]);
    expect(ids(merged)).toEqual(ids(whole));
    expect(rejectIds(merged)).toEqual(rejectIds(whole));
    const manifest = JSON.parse(readFileSync(join(merged, 'manifest.json'), 'utf8'));
    expect(manifest.sources.map((x: { manifest: { shard: unknown } }) => x.manifest.shard)).toEqual([{ index: 0, count: 2 }, { index: 1, count: 2 }]);
    expect(manifest.tokens.completion).toBe((N - 1) * 4); // the server generates 4 tokens per answer
    expect(manifest.cost_usd).toBe(sums[0]!.totalCostUsd + sums[1]!.totalCostUsd);

    const build = (from: string, out: string) => buildDataset({ from, out, vocabSize: 300, valFraction: 0.2 });
    const a = build(merged, join(dir, 'ds-merged'));
    const b = build(whole, join(dir, 'ds-whole'));
    expect(a.counts.records).toBe(N - 1);
    expect(datasetIds(join(dir, 'ds-merged'))).toEqual(datasetIds(join(dir, 'ds-whole')));
    expect(datasetIds(join(dir, 'ds-merged'))).toEqual(rows.map((r) => r.id).filter((id) => id !== 'p7' && id !== 'empty').sort());
    expect(a.splits.val.sequences).toBe(b.splits.val.sequences);
  });
});
