/**
 * `kd dataset build --text`: texts the teacher was not asked about (outside a --budget-tokens pick)
 * join the dataset with their hard targets only; and `--tokenizer` reuses a student's tokenizer.
 */
import { RecordBatchFileReader } from 'apache-arrow';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDataset, buildDatasetParallel } from '../../src/dataset/build.js';
import { splitOf } from '../../src/dataset/convert.js';
import { openDataset } from '../../src/data/dataset.js';
import { type Split, readDatasetManifest } from '../../src/schema/dataset.js';
import { loadCheckpoint } from '../../src/schema/checkpoint.js';
import { inspectDataset } from '../../src/dataset/inspect.js';
import { kd } from '../helpers/kd.js';
import { builtDataset, paragraphs } from './fixtures.js';

interface Row { inputId: string; ids: number[]; mask: number[]; targetFrom: number }

function rows(dir: string, split: Split): Row[] {
  const out: Row[] = [];
  for (const s of readDatasetManifest(dir).splits[split].shards) {
    for (const b of RecordBatchFileReader.from(fs.readFileSync(path.join(dir, s.file)))) {
      for (let i = 0; i < b.numRows; i++) {
        out.push({
          inputId: String(b.getChild('input_id')!.get(i)), ids: [...b.getChild('ids')!.get(i)!], mask: [...b.getChild('mask')!.get(i)!],
          targetFrom: Number(b.getChild('target_from')!.get(i)),
        });
      }
    }
  }
  return out;
}
const allRows = (dir: string) => [...rows(dir, 'train'), ...rows(dir, 'val')];

describe('kd dataset build --text', () => {
  const fx = builtDataset({ texts: 24 });
  const base = { from: fx.raw, vocabSize: 500, valFraction: 0.3, seed: 5, shardBytes: 40_000, batchTokens: 900 };
  const plain = buildDataset({ ...base, out: fx.out });
  // two rows the teacher scored (their records are in raw), six it never saw
  const scoredIds = [...new Set(fx.records.filter((r) => r.mode === 'score').map((r) => r.input_id))].slice(0, 2);
  const fresh = paragraphs(7, 2001).slice(1).map((text, i) => ({ id: `unscored-${i}`, text }));
  const texts = [...scoredIds.map((id) => ({ id, text: 'ignored: this row has soft labels in raw' })), ...fresh, { id: 'unscored-0', text: 'a repeated id counts once' }];
  const withText = path.join(fx.root, 'with-text');
  const summary = buildDataset({ ...base, out: withText, text: texts });

  it('adds the unscored rows with hard targets only, skips the scored ones, keeps the rest unchanged', () => {
    expect(summary.counts.textSequences).toBe(fresh.length);
    expect(plain.counts.textSequences).toBeUndefined(); // (a build without --text: the manifest of before)
    const ins = inspectDataset(withText); // every shard read back through the loader's reader (batches with no soft label in them)
    expect(ins.splits.train.tokens + ins.splits.val.tokens).toBe(summary.splits.train.tokens + summary.splits.val.tokens);
    const tok = openDataset(withText).tokenizer;
    const got = allRows(withText);
    for (const f of fresh) {
      const r = got.filter((x) => x.inputId === f.id);
      expect(r).toHaveLength(1);
      expect(tok.decode(r[0].ids)).toBe(f.text); // lossless, in the student's tokenizer
      expect(r[0].mask.every((m) => m === 0)).toBe(true); // no soft label anywhere
      expect(r[0].targetFrom).toBe(0); // every next token is a hard target
    }
    // the scored rows appear as often as without --text, with their soft labels
    const count = (rs: Row[], id: string) => rs.filter((x) => x.inputId === id).length;
    for (const id of scoredIds) expect(count(got, id)).toBe(count(allRows(fx.out), id));
    expect(summary.counts.labelled).toBe(plain.counts.labelled);
    expect(summary.vocabSize).toBe(plain.vocabSize);
    expect(fs.readFileSync(path.join(withText, 'tokenizer.json'), 'utf8')).toBe(fs.readFileSync(path.join(fx.out, 'tokenizer.json'), 'utf8')); // the texts do not change the vocabulary
    const extraTokens = fresh.reduce((n, f) => n + tok.encode(f.text).length, 0);
    expect(summary.splits.train.tokens + summary.splits.val.tokens).toBe(plain.splits.train.tokens + plain.splits.val.tokens + extraTokens);
    expect(summary.splits.train.targeted + summary.splits.val.targeted).toBe(plain.splits.train.targeted + plain.splits.val.targeted + extraTokens - fresh.length);
  });

  it('splits the texts by the same hash of the id as the raw inputs', () => {
    const val = new Set(rows(withText, 'val').map((r) => r.inputId)), train = new Set(rows(withText, 'train').map((r) => r.inputId));
    for (const f of fresh) expect(splitOf(f.id, base.seed, base.valFraction) === 'val' ? val.has(f.id) : train.has(f.id)).toBe(true);
    expect(fresh.some((f) => val.has(f.id)) && fresh.some((f) => train.has(f.id))).toBe(true); // both splits exercised
  });

  it('gives the same bytes with worker threads', async () => {
    const par = path.join(fx.root, 'with-text-par');
    await buildDatasetParallel({ ...base, out: par, text: texts, workers: 2 });
    const shas = (dir: string) => Object.values(readDatasetManifest(dir).splits).flatMap((s) => s.shards.map((x) => x.sha256));
    expect(shas(par)).toEqual(shas(withText));
  });

  it('CLI: --text with --id-column/--text-column, --tokenizer from a dataset or a checkpoint-less file error', () => {
    const file = path.join(fx.root, 'texts.csv');
    fs.writeFileSync(file, 'key,body\n' + fresh.map((f) => `${f.id},"${f.text.replace(/"/g, '""')}"`).join('\n') + '\n');
    const small = buildDataset({ ...base, vocabSize: 300, out: path.join(fx.root, 'small') });
    const out = path.join(fx.root, 'cli');
    let r = kd(['dataset', 'build', '--from', fx.raw, '--out', out, '--text', file, '--text-column', 'body', '--id-column', 'key',
      '--tokenizer', path.join(fx.root, 'small', 'tokenizer.json'), '--val-fraction', '0.3', '--seed', '5', '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.counts.textSequences).toBe(fresh.length);
    expect(s.vocabSize).toBe(small.vocabSize); // the given tokenizer, not one derived at the default 8192
    expect(readDatasetManifest(out).tokenizer.hash).toBe(readDatasetManifest(path.join(fx.root, 'small')).tokenizer.hash);
    r = kd(['dataset', 'build', '--from', fx.raw, '--out', out, '--force', '--tokenizer', path.join(fx.root, 'nope.json')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^kd: missing-file: .*nope\.json/);
    r = kd(['dataset', 'build', '--from', fx.raw, '--out', out, '--force', '--text', file, '--text-column', 'missing']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/missing/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('a later round: build with --tokenizer CKPT, then kd train --init-from CKPT goes on from its weights', () => {
    const tiny = ['--d-model', '16', '--layers', '1', '--heads', '2', '--seq-len', '16', '--batch-size', '2', '--backend', 'cpu', '--workers', '1', '--json'];
    const r1 = path.join(fx.root, 'round1');
    let r = kd(['train', '--data', fx.out, '--out', r1, '--steps', '3', ...tiny]);
    expect(r.status, r.stderr).toBe(0);
    const d2 = path.join(fx.root, 'round2-data');
    r = kd(['dataset', 'build', '--from', fx.raw, '--out', d2, '--text', path.join(fx.root, 'texts.csv'), '--text-column', 'body', '--id-column', 'key', '--tokenizer', r1, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(readDatasetManifest(d2).tokenizer.hash).toBe(readDatasetManifest(fx.out).tokenizer.hash); // the checkpoint's tokenizer
    // a learning rate of ~0: the run's weights stay the round-1 student's (a fresh start would not)
    const still = ['--lr', '1e-12', '--min-lr', '1e-12', '--steps', '1', '--seed', '7'];
    const r2 = path.join(fx.root, 'round2'), fresh = path.join(fx.root, 'fresh');
    r = kd(['train', '--data', d2, '--out', r2, '--init-from', r1, ...still, ...tiny.map((x, i) => (tiny[i - 1] === '--d-model' ? '32' : x))]); // its architecture wins over the flags
    expect(r.status, r.stderr).toBe(0);
    r = kd(['train', '--data', d2, '--out', fresh, ...still, ...tiny]);
    expect(r.status, r.stderr).toBe(0);
    const w = (dir: string) => loadCheckpoint(dir).arrays.get('h0.mlp.fc')!.data as Float32Array;
    const a = w(r1), b = w(r2), c = w(fresh);
    expect(b.length).toBe(a.length);
    expect(Math.max(...a.map((x, i) => Math.abs(x - b[i])))).toBeLessThan(1e-6);
    expect(Math.max(...a.map((x, i) => Math.abs(x - c[i])))).toBeGreaterThan(1e-3);
    // data with another tokenizer, and --resume with --init-from: one line each, no stack trace
    const small = path.join(fx.root, 'small');
    r = kd(['train', '--data', small, '--out', path.join(fx.root, 'bad'), '--init-from', r1, ...still, ...tiny]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim()).toMatch(/^kd: tokenizer-mismatch: .*--tokenizer/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    r = kd(['train', '--data', d2, '--out', r2, '--init-from', r1, '--resume', ...still, ...tiny]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim()).toMatch(/^kd: bad-config: --init-from .*--resume/);
  });
});
