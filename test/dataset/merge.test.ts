import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Schema } from 'apache-arrow';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { capture } from '../helpers/capture.js';
import { main } from '../../src/cli.js';
import { subcommands } from '../../src/cli/index.js';
import { mergeRaw } from '../../src/dataset/merge.js';
import { IPC_EOS, RAW_FIELDS, RawStreamEncoder, type RawRecord, rawShardName, readRawDir } from '../../src/schema/raw.js';
import { paragraphs, rawRecords, tmpDir, writeRaw } from './fixtures.js';

afterEach(() => vi.restoreAllMocks());

const texts = paragraphs(9);
/** Records of inputs in-from … in-(to-1), two choices each (two records share a request hash). */
const recs = (from: number, to: number): RawRecord[] => rawRecords(texts.slice(0, to), { choices: 2, k: 4 }).filter((r) => Number(r.input_id.slice(3)) >= from);
const reject = (id: string, at: string) => JSON.stringify({ id, row: 1, reason: 'empty_prompt', detail: 'x', request_hash: `r-${id}`, at });

/** A: in-0…in-5 in one shard; B: in-3…in-8 in three shards (all duplicates / some / none). */
function sources() {
  const root = tmpDir('kd-merge-');
  const a = writeRaw(path.join(root, 'a'), recs(0, 6), 100);
  const b = writeRaw(path.join(root, 'b'), recs(3, 9), 4);
  fs.writeFileSync(path.join(a, 'rejects.jsonl'), reject('e1', '1') + '\n');
  fs.writeFileSync(path.join(b, 'rejects.jsonl'), reject('e1', '2') + '\n' + reject('e2', '3') + '\n');
  return { root, a, b };
}

/** name → sha256 of every file in a directory. */
const snapshot = (dir: string) => Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex')]));
const key = (r: RawRecord) => `${r.input_id}/${r.choice_index}`;


describe('kd dataset merge', () => {
  it('keeps each request once (the first source wins), copies clean shards, re-encodes the rest, leaves the inputs alone', () => {
    const { root, a, b } = sources();
    const before = [snapshot(a), snapshot(b)];
    const out = path.join(root, 'nested', 'merged');
    const s = mergeRaw({ from: [a, b], out });
    expect(s.counts).toEqual({ records: 18, requests: 9, duplicate_requests: 3, duplicate_records: 6, rejects: 2, duplicate_rejects: 1, pending: 0 });
    expect(s.shards.map((x) => [x.file, path.basename(x.source), x.source_file, x.records, x.copied])).toEqual([
      [rawShardName(1), 'a', rawShardName(1), 12, true],
      [rawShardName(2), 'b', rawShardName(2), 2, false], // in-5 dropped, in-6 kept
      [rawShardName(3), 'b', rawShardName(3), 4, true], // B's first shard (in-3, in-4) held only duplicates
    ]);
    expect(s.sources.map((x) => [x.records, x.duplicate_records, x.rejects])).toEqual([[12, 0, 1], [6, 6, 1]]);
    expect(s.teacher.models).toEqual(['gpt-4o-mini-2024-07-18']);
    // every record of A and B exactly once (A's copy of an overlap), values intact through the re-encode
    const merged = [...readRawDir(out)];
    const expected = new Map([...readRawDir(b), ...readRawDir(a)].map((r) => [key(r), r]));
    expect(merged.map(key).sort()).toEqual([...expected.keys()].sort());
    for (const r of merged) expect(r).toEqual(expected.get(key(r)));
    expect(fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8')).toBe(reject('e1', '1') + '\n' + reject('e2', '3') + '\n');
    expect(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'))).toMatchObject({ format: 'kd-raw-merge', version: 1, counts: s.counts, sources: [{ manifest: null }, { manifest: null }] });
    expect([snapshot(a), snapshot(b)]).toEqual(before);
    expect(fs.readdirSync(path.dirname(out))).toEqual(['merged']); // no temp dir left behind
  });

  it('refuses to overwrite without --force, replaces with it, and merges a merged directory again', () => {
    const { root, a, b } = sources();
    const out = path.join(root, 'm');
    mergeRaw({ from: [a], out });
    expect(() => mergeRaw({ from: [a, b], out })).toThrow(/m: already exists and is not empty; pass --force to replace it/);
    expect(mergeRaw({ from: [a, b], out, force: true }).counts.requests).toBe(9);
    expect([...readRawDir(out)]).toHaveLength(18);
    const again = mergeRaw({ from: [out, a], out: path.join(root, 'm2') });
    expect(again.counts).toMatchObject({ requests: 9, duplicate_requests: 6, duplicate_records: 12 });
    expect(again.sources[0]!.manifest).toMatchObject({ format: 'kd-raw-merge' });
    expect(() => mergeRaw({ from: [a, out], out })).toThrow(/is also a --from/);
  });

  it('refuses an unfinished collection, naming the .partial shard, and writes nothing', () => {
    const { root, a, b } = sources();
    fs.renameSync(path.join(b, rawShardName(3)), path.join(b, rawShardName(3, true)));
    const out = path.join(root, 'out');
    expect(() => mergeRaw({ from: [a, b], out })).toThrow(`${path.join(b, 'raw-00003.arrows.partial')}: an unfinished collection`);
    expect(fs.existsSync(out)).toBe(false);
    fs.renameSync(path.join(b, rawShardName(3, true)), path.join(b, rawShardName(3)));
    fs.writeFileSync(path.join(b, 'manifest.json'), JSON.stringify({ format: 'kd-collect-manifest', status: 'running' }));
    expect(() => mergeRaw({ from: [a, b], out })).toThrow(/the collection is still running \(or was killed\)/);
  });

  it('refuses shards of another format or version, and torn shards, naming the file', () => {
    const { root, a } = sources();
    const write = (name: string, meta: [string, string][], cut = 0) => {
      const dir = path.join(root, name);
      fs.mkdirSync(dir);
      const enc = new RawStreamEncoder(new Schema(RAW_FIELDS, new Map(meta)));
      const bytes = Buffer.concat([enc.start(), enc.batch(recs(7, 8)), IPC_EOS]);
      fs.writeFileSync(path.join(dir, rawShardName(1)), bytes.subarray(0, bytes.length - cut));
      return path.join(dir, rawShardName(1));
    };
    const v2 = write('v2', [['kd.format', 'kd-raw'], ['kd.format_version', '2']]);
    expect(() => mergeRaw({ from: [a, path.dirname(v2)], out: path.join(root, 'o') })).toThrow(`${v2}: raw format version 2 is not supported`);
    const other = write('other', [['kd.format', 'something-else'], ['kd.format_version', '1']]);
    expect(() => mergeRaw({ from: [path.dirname(other)], out: path.join(root, 'o') })).toThrow(`${other}: not a kd raw shard`);
    const torn = write('torn', [['kd.format', 'kd-raw'], ['kd.format_version', '1']], 20);
    expect(() => mergeRaw({ from: [path.dirname(torn)], out: path.join(root, 'o') })).toThrow(`${torn}: ends in a torn batch`);
    expect(fs.existsSync(path.join(root, 'o'))).toBe(false);
  });

  it('CLI: kd dataset merge --from … --out … [--json], one kd: line on errors; a pipeline can use it', async () => {
    const { root, a, b } = sources();
    let io = capture();
    expect(await main(['dataset', 'merge', '--from', a, '--from', b, '--out', path.join(root, 'cli'), '--json'])).toBe(0);
    expect(JSON.parse(io.out())).toMatchObject({ counts: { requests: 9, duplicate_requests: 3 } });
    vi.restoreAllMocks();
    io = capture();
    // a shell glob expands to `--from dir1 dir2 …`
    expect(await main(['dataset', 'merge', '--from', a, b, '--out', path.join(root, 'glob'), '--json'])).toBe(0);
    expect(JSON.parse(io.out()).sources.map((x: { dir: string }) => x.dir)).toEqual([a, b]);
    vi.restoreAllMocks();
    io = capture();
    expect(await main(['dataset', 'merge', '--from', a, '--out', path.join(root, 'cli2')])).toBe(0);
    expect(io.out()).toMatch(/^kd dataset merge → .*cli2: 12 records \(6 requests\) in 1 shard from 1 source\n/);
    vi.restoreAllMocks();
    io = capture();
    expect(await main(['dataset', 'merge', '--from', a, '--from', path.join(root, 'nope'), '--out', path.join(root, 'cli3')])).toBe(1);
    expect(io.err()).toBe(`kd: missing-file: ${path.join(root, 'nope')}: no such raw directory\n`);
    expect(subcommands.dataset!.map((c) => String(c.command))).toContain('merge');
  });
});
