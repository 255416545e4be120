/**
 * kd dataset export: the plain-typed copy holds exactly the source's values. Exports are read back
 * with parquet-wasm (Parquet) and apache-arrow (Arrow IPC) and compared with the source read through
 * apache-arrow's own row accessors (its own float16 decoding), not through kd's loader.
 */
import { Binary, Float16, type Table, tableFromIPC } from 'apache-arrow';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/dataset/build.js';
import { type ExportFormat, exportDataset, readParquetTable } from '../../src/dataset/export.js';
import type { RawRecord } from '../../src/schema/raw.js';
import { kd } from '../helpers/kd.js';
import { builtDataset, paragraphs, rawRecords, tmpDir, writeRaw } from './fixtures.js';

/** Arrow values → plain JS (vectors → arrays, Uint8Array → number arrays). */
function plain(v: unknown): unknown {
  if (v == null) return v ?? null;
  if (v instanceof Uint8Array) return Array.from(v);
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'object' && typeof (v as { toArray?: unknown }).toArray === 'function' && Symbol.iterator in (v as object)) {
    return Array.from(v as Iterable<unknown>, plain);
  }
  return v;
}

function rows(t: Table): Record<string, unknown>[] {
  const names = t.schema.fields.map((f) => f.name);
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const r = t.get(i)!;
    out.push(Object.fromEntries(names.map((n) => [n, plain((r as unknown as Record<string, unknown>)[n])])));
  }
  return out;
}

const readExport = (file: string): Table => (file.endsWith('.parquet') ? readParquetTable(fs.readFileSync(file)) : tableFromIPC(fs.readFileSync(file)));

/** Every type in a schema, nested ones included. */
function types(t: Table): string[] {
  const walk = (ty: { children?: { type: unknown }[] | null }): string[] => [String(ty), ...((ty.children ?? []) as { type: { children?: [] } }[]).flatMap((c) => walk(c.type))];
  return t.schema.fields.flatMap((f) => walk(f.type as never));
}

const fx = builtDataset({ texts: 40 });
// format version 1 (float16 log-probs): its values are checked against apache-arrow's own float16 decoding
const built = buildDataset({ from: fx.raw, out: fx.out, vocabSize: 500, valFraction: 0.2, shardBytes: 40_000, batchTokens: 800, formatVersion: 1 });

describe('kd dataset export of a built dataset', () => {
  it('has several shards and record batches to export (the fixture exercises them)', () => {
    expect(built.splits.train.shards).toBeGreaterThan(1);
    expect(built.splits.val.shards).toBeGreaterThan(0);
    const m = JSON.parse(fs.readFileSync(path.join(fx.out, 'manifest.json'), 'utf8'));
    expect(m.splits.train.shards.some((s: { batches: number }) => s.batches > 1)).toBe(true);
  });

  for (const format of ['parquet', 'arrow-float32'] as ExportFormat[]) {
    it(`${format}: every value of every shard, float32 log-probs and int32 ids`, () => {
      const out = path.join(fx.root, `export-${format}`);
      const s = exportDataset({ from: fx.out, out, format });
      const m = JSON.parse(fs.readFileSync(path.join(fx.out, 'manifest.json'), 'utf8'));
      const ext = format === 'parquet' ? '.parquet' : '.arrow';
      expect(s.kind).toBe('dataset');
      const sources = [...m.splits.train.shards, ...m.splits.val.shards].map((x: { file: string }) => x.file);
      expect(s.files.map((f) => f.source)).toEqual(sources);
      expect(s.files.map((f) => f.file)).toEqual(sources.map((f: string) => f.replace('.arrow', ext)));
      expect(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8')).toBe(fs.readFileSync(path.join(fx.out, 'tokenizer.json'), 'utf8'));
      expect(JSON.parse(fs.readFileSync(path.join(out, 'export.json'), 'utf8'))).toMatchObject({ kind: 'dataset', format, files: s.files });

      let labelled = 0, sequences = 0;
      for (const f of s.files) {
        const src = tableFromIPC(fs.readFileSync(path.join(fx.out, f.source)));
        expect(src.schema.fields.find((x) => x.name === 'top_logprobs')!.type.toString()).toMatch(/Float16/);
        const got = readExport(path.join(out, f.file));
        expect(types(got).some((t) => /Float16|Uint16|Binary/.test(t))).toBe(false);
        expect(String(got.schema.fields.find((x) => x.name === 'top_logprobs')!.type)).toBe('List<List<Float32>>');
        expect(String(got.schema.fields.find((x) => x.name === 'ids')!.type)).toBe('List<Int32>');
        expect(got.schema.metadata.get('kd.split')).toBe(f.split);
        const want = rows(src), have = rows(got);
        expect(have.length).toBe(f.rows);
        expect(have).toEqual(want); // float16 → float32 is exact: equal, not close
        sequences += have.length;
        for (const r of have) labelled += (r.top_ids as unknown[]).length;
      }
      expect(sequences).toBe(m.splits.train.sequences + m.splits.val.sequences);
      expect(labelled).toBe(m.splits.train.labelled + m.splits.val.labelled);
      expect(labelled).toBeGreaterThan(100);
    });
  }

  it('a format-version-2 dataset (8-bit log-probs, packed ids) exports the same values, log-probs within the 8-bit bound', () => {
    const v2 = path.join(fx.root, 'data-v2');
    buildDataset({ from: fx.raw, out: v2, vocabSize: 500, valFraction: 0.2, shardBytes: 40_000, batchTokens: 800, formatVersion: 2 });
    expect(JSON.parse(fs.readFileSync(path.join(v2, 'manifest.json'), 'utf8')).format_version ?? 2).toBe(2);
    const a = exportDataset({ from: fx.out, out: path.join(fx.root, 'exp-v1'), format: 'arrow-float32' });
    const b = exportDataset({ from: v2, out: path.join(fx.root, 'exp-v2'), format: 'arrow-float32' });
    // v2 shards are smaller, so the split may fall into fewer files: compare the rows of each split in order
    const splitRows = (s: typeof a, dir: string, split: string) => s.files.filter((f) => f.split === split).flatMap((f) => rows(readExport(path.join(fx.root, dir, f.file))));
    let entries = 0, worst = 0;
    for (const split of ['train', 'val']) {
      const ra = splitRows(a, 'exp-v1', split), rb = splitRows(b, 'exp-v2', split);
      expect(rb.length).toBe(ra.length);
      rb.forEach((r, j) => {
        const { top_logprobs: la, ...restA } = ra[j];
        const { top_logprobs: lb, ...restB } = r;
        expect(restB).toEqual(restA); // ids, mask, targets, top ids: identical
        (lb as number[][]).forEach((pos, p) => pos.forEach((x, k) => {
          worst = Math.max(worst, Math.abs(x - (la as number[][])[p][k])); entries++;
        }));
      });
    }
    expect(entries).toBeGreaterThan(100);
    expect(worst).toBeGreaterThan(0); // really quantized...
    expect(worst).toBeLessThan(0.15); // ...within the 8-bit scheme's bound (src/schema/lp8.ts)
  });

  it('an empty split still gets one readable, empty file', () => {
    const f2 = builtDataset({ texts: 12 });
    buildDataset({ from: f2.raw, out: f2.out, vocabSize: 300, valFraction: 0 });
    const m = JSON.parse(fs.readFileSync(path.join(f2.out, 'manifest.json'), 'utf8'));
    expect(m.splits.val.shards).toEqual([]);
    const out = path.join(f2.root, 'pq');
    const s = exportDataset({ from: f2.out, out, format: 'parquet' });
    const val = s.files.find((f) => f.split === 'val')!;
    expect(val).toMatchObject({ file: 'val-00000.parquet', rows: 0 });
    const t = readExport(path.join(out, val.file));
    expect(t.numRows).toBe(0);
    expect(t.schema.fields.map((x) => x.name)).toEqual(['input_id', 'ids', 'mask', 'target_from', 'top_ids', 'top_logprobs']);
  });

  it('--force replaces an earlier export, and only its own files', () => {
    const out = path.join(fx.root, 'export-replace');
    exportDataset({ from: fx.out, out, format: 'arrow-float32' });
    fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
    expect(() => exportDataset({ from: fx.out, out, format: 'parquet' })).toThrow(/an export already exists .* pass --force/);
    exportDataset({ from: fx.out, out, format: 'parquet', force: true });
    const names = fs.readdirSync(out).sort();
    expect(names.filter((n) => n.endsWith('.arrow'))).toEqual([]);
    expect(names).toContain('notes.txt');
    expect(names.filter((n) => n.endsWith('.parquet')).length).toBe(built.splits.train.shards + built.splits.val.shards);
  });
});

describe('kd dataset export of a raw directory', () => {
  const records: RawRecord[] = [...rawRecords(paragraphs(8), { k: 5 }), ...rawRecords(paragraphs(6, 1995), { k: 4, mode: 'score', seed: 3 })];
  const root = tmpDir();
  const raw = writeRaw(path.join(root, 'raw'), records, 5);

  for (const format of ['parquet', 'arrow-float32'] as ExportFormat[]) {
    it(`${format}: bytes as uint8 lists, nulls kept, float32 log-probs`, () => {
      const out = path.join(root, `raw-${format}`);
      const s = exportDataset({ from: raw, out, format });
      expect(s.kind).toBe('raw');
      expect(s.files.length).toBe(Math.ceil(records.length / 5));
      const have = s.files.flatMap((f) => {
        const t = readExport(path.join(out, f.file));
        expect(t.schema.fields.some((x) => x.type instanceof Binary || x.type instanceof Float16)).toBe(false);
        expect(types(t).some((ty) => /Binary|Float16/.test(ty))).toBe(false);
        expect(String(t.schema.fields.find((x) => x.name === 'top_bytes')!.type)).toBe('List<List<List<Uint8>>>');
        return rows(t);
      });
      expect(have.length).toBe(records.length);
      const f32 = (v: unknown): unknown => (Array.isArray(v) ? v.map(f32) : typeof v === 'number' ? Math.fround(v) : v);
      records.forEach((r, i) => {
        const h = have[i];
        expect(h.input_id).toBe(r.input_id);
        expect(h.mode).toBe(r.mode);
        expect(h.chunk_start).toBe(r.chunk_start);
        expect(h.tokens).toEqual(r.tokens);
        expect(h.token_bytes).toEqual(r.token_bytes.map((b) => (b ? Array.from(b) : null)));
        expect(h.top_bytes).toEqual(r.top_bytes.map((p) => p && p.map((b) => (b ? Array.from(b) : null))));
        expect(h.top_tokens).toEqual(r.top_tokens);
        expect(h.token_logprobs).toEqual(f32(r.token_logprobs));
        expect(h.top_logprobs).toEqual(f32(r.top_logprobs));
        expect(h.prompt ?? null).toBe(r.prompt ?? null);
      });
      // the fixture's quirks made it through: missing bytes and sentinel log-probs stay null
      expect(have.some((h) => (h.token_bytes as unknown[]).includes(null))).toBe(true);
      expect(have.some((h) => (h.top_logprobs as unknown[][]).some((p) => p.includes(null)))).toBe(true);
    });
  }
});

describe('kd dataset export, the command', () => {
  it('writes the export and prints a summary (text and --json)', () => {
    const out = path.join(fx.root, 'cli-export');
    let r = kd(['dataset', 'export', '--from', fx.out, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^kd dataset export → .*: parquet copy of the dataset/);
    expect(r.stdout).toMatch(/train-00000\.parquet +\d+ rows/);
    r = kd(['dataset', 'export', '--from', fx.out, '--out', out, '--format', 'arrow-float32', '--force', '--json']);
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ format: 'arrow-float32', kind: 'dataset' });
    expect(fs.existsSync(path.join(out, 'train-00000.arrow'))).toBe(true);
  });

  it('bad input: one line naming the problem, non-zero exit, nothing written', () => {
    const root = tmpDir();
    const cases: [string[], RegExp][] = [
      [['--from', path.join(root, 'nope'), '--out', path.join(root, 'o1')], /nope: no such directory/],
      [['--from', root, '--out', path.join(root, 'o2')], /neither a dataset \(no manifest\.json\) nor a raw directory/],
      [['--from', fx.out, '--out', path.join(root, 'o3'), '--format', 'csv'], /--format "csv" is not an export format \(parquet or arrow-float32\)/],
      [['--from', fx.out, '--out', fx.raw], /holds no export\.json \(not a kd export\); choose another --out/],
      [['--from', fx.out, '--out', fx.out], /--out must not be the source directory/],
    ];
    for (const [args, msg] of cases) {
      const r = kd(['dataset', 'export', ...args]);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
    }
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('a corrupted shard: one line naming the file, and no export', () => {
    const f2 = builtDataset({ texts: 12 });
    buildDataset({ from: f2.raw, out: f2.out, vocabSize: 300, valFraction: 0.25 });
    const shard = path.join(f2.out, 'train-00000.arrow');
    const bytes = fs.readFileSync(shard);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    fs.writeFileSync(shard, bytes);
    const out = path.join(f2.root, 'pq');
    const r = kd(['dataset', 'export', '--from', f2.out, '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/train-00000\.arrow: sha256 checksum mismatch/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.existsSync(path.join(out, 'export.json'))).toBe(false);
    expect(fs.existsSync(out)).toBe(false); // the directory it had made goes too
  });
});
