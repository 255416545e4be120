import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readInput } from '../../src/collect/input.js';
import { resolveCollectOptions } from '../../src/collect/options.js';
import { inShard, parseShardSpec, shardOf } from '../../src/collect/partition.js';
import { KdError } from '../../src/core/errors.js';

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `row-${from + i}`);

describe('--shard i/n', () => {
  it('parses i/n', () => {
    expect(parseShardSpec('3/8')).toEqual({ index: 3, count: 8 });
    expect(parseShardSpec(' 0 / 1 ')).toEqual({ index: 0, count: 1 });
  });

  it.each(['3/2', '2/2', '-1/4', '1/0', 'a/b', '1.5/4', '1/2/3', '', '4', '0x1/4', '0/70000'])('refuses %j with one KdError line', (v) => {
    let err: unknown;
    try {
      parseShardSpec(v);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KdError);
    const msg = (err as KdError).message;
    expect(msg).toContain(`--shard: ${JSON.stringify(v)} is not valid`);
    expect(msg).toContain('want i/n with 0 ≤ i < n');
    expect(msg).not.toContain('\n');
  });

  it('checks specs given programmatically too', () => {
    expect(() => resolveCollectOptions({ model: 'm', input: 'i', out: 'o', shard: { index: 2, count: 2 } })).toThrow(/--shard: "2\/2" is not valid \(i must be in 0\.\.1\)/);
    expect(resolveCollectOptions({ model: 'm', input: 'i', out: 'o', shard: { index: 1, count: 2 } }).shard).toEqual({ index: 1, count: 2 });
  });
});

describe('shard assignment', () => {
  it.each([1, 2, 3, 8])('is a partition over %i shards: every id in exactly one', (n) => {
    for (const id of ids(500)) {
      const owners = Array.from({ length: n }, (_, i) => i).filter((i) => inShard(id, { index: i, count: n }));
      expect(owners).toEqual([shardOf(id, n)]);
    }
  });

  it('is roughly balanced (8 shards of 4000 ids: each within 15% of 500)', () => {
    const sizes = new Array<number>(8).fill(0);
    for (const id of ids(4000)) sizes[shardOf(id, 8)]!++;
    for (const s of sizes) expect(Math.abs(s - 500)).toBeLessThan(75);
  });

  it('depends on the id, not the position: rows keep their shard when rows are appended (row-number ids too)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-part-'));
    const rowsOf = async (n: number, shard: number) => {
      const file = join(dir, `in-${n}.csv`);
      writeFileSync(file, 'prompt\n' + Array.from({ length: n }, (_, i) => `q${i}`).join('\n') + '\n');
      const out: string[] = [];
      for await (const r of readInput({ file, mode: 'chat' })) if (inShard(r.id, { index: shard, count: 3 })) out.push(r.id);
      return out;
    };
    for (let s = 0; s < 3; s++) {
      const before = await rowsOf(60, s);
      const after = await rowsOf(90, s);
      expect(before.length).toBeGreaterThan(5);
      expect(after.filter((id) => Number(id) <= 60)).toEqual(before);
    }
    // and the same ids in another order land in the same shards
    const shuffled = [...ids(200)].reverse();
    expect(shuffled.map((id) => shardOf(id, 5))).toEqual(ids(200).map((id) => shardOf(id, 5)).reverse());
  });
});
