import { RecordBatchFileReader } from 'apache-arrow';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/dataset/build.js';
import { type Sequence, convertRecord, splitOf } from '../../src/dataset/convert.js';
import { inspectDataset } from '../../src/dataset/inspect.js';
import { datasetSource } from '../../src/data/loader.js';
import { openDataset } from '../../src/data/dataset.js';
import { type Split, readDatasetManifest } from '../../src/schema/dataset.js';
import { decodeLp8, encodeLp8 } from '../../src/schema/lp8.js';
import { listRawShards } from '../../src/schema/raw.js';
import { readRawRecords } from '../../src/dataset/raw-columns.js';
import { TeacherMap } from '../../src/tokenizer/derive.js';
import type { Batch } from '../../src/data/batch.js';
import { builtDataset } from './fixtures.js';

const fx = builtDataset();
const summary = buildDataset({ from: fx.raw, out: fx.out, vocabSize: 700, valFraction: 0.25, seed: 3, shardBytes: 60_000, batchTokens: 1500 });

/** The sequences a split should hold, converted independently of the writer. */
function expected(split: Split): Sequence[] {
  const map = new TeacherMap(openDataset(fx.out).tokenizer);
  // the records as stored (Float32 log-probs), not fx.records (float64): 8-bit rounding can tell them apart
  const records = listRawShards(fx.raw).flatMap((f) => readRawRecords(f));
  return records.filter((r) => splitOf(r.input_id, 3, 0.25) === split).map((r) => convertRecord(r, map)).filter((q): q is Sequence => q !== null);
}

/** A position's log-probs as the loader gives them: format version 2's 8-bit codes (the default build), exactly. */
function stored(lps: number[]): Float32Array {
  const codes = new Uint8Array(lps.length), out = new Float32Array(lps.length);
  decodeLp8(encodeLp8(lps, 0, lps.length, codes, 0), codes, 0, lps.length, out, 0);
  return out;
}

/** One epoch of the loader's stream, flattened to positions. */
function epochStream(split: Split, tokens: number, B = 3, T = 40) {
  const src = datasetSource(fx.out, { split, batchSize: B, seqLen: T, seed: 9, shuffleWindow: 2 }).open();
  const batches: Batch[] = [];
  while (batches.length * B * T < tokens) batches.push(src.next());
  const K = batches[0].K;
  const at = (n: number) => { const b = batches[Math.floor(n / (B * T))]; return { b, i: n % (B * T) }; };
  return { K, at, length: tokens };
}

describe('kd dataset build → loader round trip', () => {
  it('summarises the build and meets the size budget (≤ 6·k + 16 bytes per labelled token)', () => {
    expect(summary.topK).toBe(20);
    expect(summary.vocabSize).toBe(700);
    expect(summary.formatVersion).toBe(2);
    // 10-bit ids + 8-bit log-probs + per-position overhead (≤ 3 at k 20 on teacher-like data: bench/data.ts;
    // here the small vocabulary merges alternatives, so positions hold fewer entries)
    expect(summary.bytesPerEntry).toBeGreaterThan(1.5);
    expect(summary.bytesPerEntry).toBeLessThan(3.5);
    expect(summary.bytesPerLabelled).toBeGreaterThan(0);
    expect(summary.bytesPerLabelled).toBeLessThanOrEqual(6 * 20 + 16);
    expect(summary.splits.train.shards).toBeGreaterThan(1);
    expect(summary.massKept).toBeGreaterThan(0.3);
    expect(summary.massKept).toBeLessThan(1);
    const m = readDatasetManifest(fx.out);
    expect(m.tokenizer.hash).toBe(openDataset(fx.out).tokenizer.hash());
    expect(m.source.files.map((f) => f.file)).toEqual(Array.from({ length: Math.ceil(fx.records.length / 25) }, (_, i) => `raw-0000${i + 1}.arrows`));
    expect(m.source.files[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(m.teacher.models).toEqual(['gpt-4o-mini-2024-07-18']);
    expect(fs.readdirSync(fx.out).filter((f) => f.startsWith('.kd-build'))).toEqual([]);
  });

  it.each(['train', 'val'] as const)('%s: every sequence comes out exactly once per epoch, ids, targets, masks and encoded log-probs intact', (split) => {
    const want = expected(split);
    const total = want.reduce((s, q) => s + q.ids.length, 0);
    expect(readDatasetManifest(fx.out).splits[split].tokens).toBe(total);
    const { K, at } = epochStream(split, total);
    const used = new Set<number>();
    let p = 0;
    const matches = (q: Sequence, p0: number): boolean => {
      let label = 0, v = 0;
      for (let t = 0; t < q.ids.length; t++) {
        const { b, i } = at(p0 + t);
        const target = t >= q.targetFrom && t < q.ids.length - 1 ? q.ids[t + 1] : -1;
        if (b.inputIds[i] !== q.ids[t] || b.targets[i] !== target || b.mask[i] !== q.mask[t]) return false;
        if (q.mask[t]) {
          const c = q.topCounts[label++];
          for (let k = 0; k < K; k++) {
            const id = k < c ? q.topIds[v + k] : 0, lp = k < c ? stored(q.topLogprobs.slice(v, v + c))[k] : -9999;
            if (b.topIds[i * K + k] !== id || b.topLogprobs[i * K + k] !== Math.fround(lp)) return false;
          }
          v += c;
        }
      }
      return true;
    };
    while (p < total) {
      const j = want.findIndex((q, j) => !used.has(j) && matches(q, p));
      expect(j, `no unused sequence matches the stream at position ${p}`).toBeGreaterThanOrEqual(0);
      used.add(j);
      p += want[j].ids.length;
    }
    expect(used.size).toBe(want.length);
  });

  it('splits by input id: no input in both splits, all chunks and choices of an input together', () => {
    const ids = (split: Split) => {
      const out = new Set<string>();
      for (const s of readDatasetManifest(fx.out).splits[split].shards) {
        const r = RecordBatchFileReader.from(fs.readFileSync(path.join(fx.out, s.file)));
        for (const b of r) for (const v of b.getChild('input_id')!) out.add(String(v));
      }
      return out;
    };
    const train = ids('train'), val = ids('val');
    expect(val.size).toBeGreaterThan(0);
    expect([...val].filter((id) => train.has(id))).toEqual([]);
    const seqs = readDatasetManifest(fx.out).splits;
    expect(seqs.train.sequences + seqs.val.sequences).toBe(fx.records.length); // nothing lost
  });

  it('is deterministic for a seed: identical shards; another seed splits differently', () => {
    const again = path.join(fx.root, 'again'), other = path.join(fx.root, 'other');
    buildDataset({ from: fx.raw, out: again, vocabSize: 700, valFraction: 0.25, seed: 3, shardBytes: 60_000, batchTokens: 1500 });
    buildDataset({ from: fx.raw, out: other, vocabSize: 700, valFraction: 0.25, seed: 4, shardBytes: 60_000, batchTokens: 1500 });
    const shas = (dir: string) => Object.values(readDatasetManifest(dir).splits).flatMap((s) => s.shards.map((x) => x.sha256));
    expect(shas(again)).toEqual(shas(fx.out));
    expect(shas(other)).not.toEqual(shas(fx.out));
    expect(fs.readFileSync(path.join(again, 'tokenizer.json'), 'utf8')).toBe(fs.readFileSync(path.join(fx.out, 'tokenizer.json'), 'utf8'));
  });

  it('inspect recomputes the build figures from the shards', () => {
    const r = inspectDataset(fx.out);
    for (const s of ['train', 'val'] as const) {
      expect(r.splits[s]).toMatchObject({
        sequences: summary.splits[s].sequences, tokens: summary.splits[s].tokens, labelled: summary.splits[s].labelled,
        targeted: summary.splits[s].targeted, bytes: summary.splits[s].bytes, massKept: summary.splits[s].massKept,
      });
      expect(r.splits[s].meanEntropy).toBeCloseTo(summary.splits[s].meanEntropy, 2); // float16 vs float64
      expect(r.splits[s].bytesPerToken).toBeCloseTo(summary.splits[s].bytes / summary.splits[s].tokens, 9);
    }
    expect(r.tokenizer.vocabSize).toBe(700);
  });

  it('keeps chat text lossless: prompt + answer decode back exactly', () => {
    const tok = openDataset(fx.out).tokenizer;
    const r = fx.records[0];
    const q = convertRecord(r, new TeacherMap(tok))!;
    expect(tok.decode(q.ids)).toBe(r.prompt + Buffer.concat(r.tokens.map((t, i) => r.token_bytes[i] ?? Buffer.from(t!, 'utf8'))).toString('utf8'));
  });
});
