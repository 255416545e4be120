import { RecordBatch, RecordBatchFileReader, RecordBatchFileWriter, Schema } from 'apache-arrow';
import { kd as runKd } from '../helpers/kd.js';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/dataset/build.js';
import { inspectDataset } from '../../src/dataset/inspect.js';
import { datasetSource } from '../../src/data/loader.js';
import { readDatasetManifest } from '../../src/schema/dataset.js';
import { builtDataset } from './fixtures.js';

const root = path.resolve(__dirname, '../..');
const kd = (...args: string[]) => runKd(args);
const fx = builtDataset({ texts: 24 });
const params = { from: fx.raw, vocabSize: 400, valFraction: 0.2, shardBytes: 30_000 };
buildDataset({ ...params, out: fx.out });
const open = (dir: string) => datasetSource(dir, { split: 'train', batchSize: 2, seqLen: 16, seed: 0 });

/** A fresh copy of the good dataset to damage. */
function copy(name: string): string {
  const dir = path.join(fx.root, name);
  fs.cpSync(fx.out, dir, { recursive: true });
  return dir;
}
const snapshot = (dir: string) => Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex')]));

describe('bad datasets: one clear error naming the file', () => {
  it('a truncated shard', () => {
    const dir = copy('truncated');
    const f = path.join(dir, 'train-00000.arrow');
    fs.truncateSync(f, fs.statSync(f).size - 100);
    expect(() => open(dir)).toThrow(/train-00000\.arrow: \d+ bytes, the manifest says \d+ \(truncated or replaced\)/);
    expect(() => inspectDataset(dir)).toThrow(/train-00000\.arrow/);
    const r = kd('dataset', 'inspect', dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^kd: .*train-00000\.arrow: .*truncated/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a corrupted shard of the right size (checksum mismatch)', () => {
    const dir = copy('flipped');
    const f = path.join(dir, 'train-00000.arrow');
    const buf = fs.readFileSync(f);
    buf[Math.floor(buf.length / 2)] ^= 0x40;
    fs.writeFileSync(f, buf);
    expect(() => open(dir)).toThrow(/train-00000\.arrow: sha256 checksum mismatch/);
  });

  it('a format version it does not know: in the manifest, and in a shard', () => {
    const dir = copy('v2');
    const mf = path.join(dir, 'manifest.json');
    const m = JSON.parse(fs.readFileSync(mf, 'utf8'));
    fs.writeFileSync(mf, JSON.stringify({ ...m, version: 3 }));
    expect(() => open(dir)).toThrow(/manifest\.json: dataset format version 3 is not supported \(this kd reads versions 1 and 2\)/);
    // a shard whose Arrow metadata says version 3 (manifest checksum updated so only the version is wrong)
    fs.writeFileSync(mf, JSON.stringify(m));
    const f = path.join(dir, 'train-00000.arrow');
    const reader = RecordBatchFileReader.from(fs.readFileSync(f)).open();
    const old = reader.schema; // the reader forgets it once drained
    const batches = [...reader];
    const meta = new Map(old.metadata);
    meta.set('kd.format_version', '3');
    const schema = new Schema(old.fields, meta);
    const bytes = RecordBatchFileWriter.writeAll(batches.map((b) => new RecordBatch(schema, b.data))).toUint8Array(true);
    fs.writeFileSync(f, bytes);
    m.splits.train.shards[0] = { ...m.splits.train.shards[0], bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
    fs.writeFileSync(mf, JSON.stringify(m));
    expect(() => open(dir)).toThrow(/train-00000\.arrow: dataset format version 3 is not supported/);
  });

  it('token ids outside the vocabulary (checksum recomputed): inspect and training name the file, row and input_id', () => {
    for (const column of ['ids', 'top_ids'] as const) {
      const dir = copy(`ids-${column}`);
      const mf = path.join(dir, 'manifest.json');
      const m = JSON.parse(fs.readFileSync(mf, 'utf8'));
      const f = path.join(dir, 'train-00000.arrow');
      const reader = RecordBatchFileReader.from(fs.readFileSync(f)).open();
      const schema = reader.schema;
      const batches = [...reader];
      const b = batches[0];
      let d = b.getChild(column)!.data[0];
      while (d.children.length) d = d.children[0];
      // the first id of the batch: in its first row (the buffer may be padded past the last). Format
      // version 2 packs teacher ids in ceil(log2 400) = 9 bits: the largest it can hold is 511.
      const bad = column === 'ids' ? 60_000 : 511;
      if (column === 'ids') (d.values as Uint16Array)[0] = bad;
      else { const v = d.values as Uint8Array; v[0] = 0xff; v[1] |= 1; }
      const bytes = RecordBatchFileWriter.writeAll(batches.map((x) => new RecordBatch(schema, x.data))).toUint8Array(true);
      fs.writeFileSync(f, bytes);
      m.splits.train.shards[0] = { ...m.splits.train.shards[0], bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
      fs.writeFileSync(mf, JSON.stringify(m));
      const row = 0;
      const inputId = b.getChild('input_id')!.get(row) as string;
      const what = column === 'ids' ? 'token id' : 'teacher top-k id';
      const msg = new RegExp(`train-00000\\.arrow: record batch 0, row ${row} \\(input_id "${inputId}"\\): ${what} ${bad} is outside the vocabulary \\(400 tokens\\)`);
      expect(() => inspectDataset(dir)).toThrow(msg);
      expect(() => { const src = open(dir).open(); for (let i = 0; i < 50; i++) src.next(); }).toThrow(msg);
      const r = kd('dataset', 'inspect', dir);
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
      if (column === 'ids') {
        // training with worker threads stops with the same line (it once hung: the workers had started
        // before the first shard was read, and nothing released them)
        const t = kd('train', '--data', dir, '--out', path.join(dir, 'run'), '--d-model', '16', '--layers', '1', '--heads', '2', '--seq-len', '16',
          '--batch-size', '2', '--steps', '2', '--workers', '2', '--backend', 'cpu');
        expect(t.status).toBe(1);
        expect(t.stderr.trim().split('\n')).toHaveLength(1);
        expect(t.stderr).toMatch(msg);
      }
    }
  });

  it('a tokenizer that does not match the dataset', () => {
    const dir = copy('tok');
    const tf = path.join(dir, 'tokenizer.json');
    const t = JSON.parse(fs.readFileSync(tf, 'utf8'));
    [t.tokens[256], t.tokens[257]] = [t.tokens[257], t.tokens[256]];
    fs.writeFileSync(tf, JSON.stringify(t));
    expect(() => open(dir)).toThrow(/tokenizer\.json: tokenizer [0-9a-f]{12}… does not match the dataset/);
    fs.writeFileSync(tf, '{"format": "kd-tokenizer", "version": 9, "tokens": []}');
    expect(() => open(dir)).toThrow(/tokenizer\.json: tokenizer version 9 is not supported/);
  });

  it('not a dataset at all', () => {
    expect(() => open(fx.raw)).toThrow(/raw\/manifest\.json: missing — .* is not a kd dataset/);
  });
});

describe('building never overwrites by accident', () => {
  it('refuses an existing dataset without --force; a failed --force build leaves the old one intact', () => {
    const dir = copy('keep');
    const before = snapshot(dir);
    expect(() => buildDataset({ ...params, out: dir })).toThrow(/a dataset already exists .* pass --force/);
    // a raw directory with a corrupt shard: the build fails naming it, nothing changes
    const bad = path.join(fx.root, 'bad-raw');
    fs.cpSync(fx.raw, bad, { recursive: true });
    fs.writeFileSync(path.join(bad, 'raw-00002.arrows'), 'not arrow at all');
    expect(() => buildDataset({ ...params, from: bad, out: dir, force: true })).toThrow(/raw-00002\.arrows: no Arrow IPC stream schema found/);
    expect(snapshot(dir)).toEqual(before);
    expect(() => open(dir).open().next()).not.toThrow();
    // --force with good input replaces it
    buildDataset({ ...params, valFraction: 0.5, out: dir, force: true });
    expect(readDatasetManifest(dir).params.valFraction).toBe(0.5);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.kd-build'))).toEqual([]);
  });

  it('the CLI reports bad options and missing input in one line with exit code 1', () => {
    let r = kd('dataset', 'build', '--from', fx.raw, '--out', path.join(fx.root, 'x'), '--vocab-size', '100');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^kd: bad-option: --vocab-size must be an integer in \[256, 65536\], got 100\n$/);
    r = kd('dataset', 'build', '--from', path.join(fx.root, 'nope'), '--out', path.join(fx.root, 'x'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/nope: no such raw directory or responses file/);
  });
});
