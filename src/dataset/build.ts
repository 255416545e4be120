/**
 * `kd dataset build`: raw teacher shards (or a JSONL/CSV of saved chat-completion responses) → a
 * soft-label dataset (format: src/schema/dataset.ts).
 *
 * Two streaming passes over the raw shards, one shard in memory at a time: pass 1 counts how useful
 * each teacher token is and derives the student tokenizer; pass 2 converts every record and writes
 * train/val shards. Everything goes to a temp directory inside --out first; files are then renamed
 * into place with manifest.json last, so an interrupted build leaves no dataset rather than half of
 * one, and a failed build overwrites nothing.
 */
import { sha256File } from '../core/hash.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeJsonAtomic } from '../core/atomic.js';
import { KD_VERSION } from '../core/version.js';
import { KdError } from '../core/errors.js';
import {
  DATASET_FORMAT, DATASET_FORMAT_VERSION, DATASET_MANIFEST, DATASET_TOKENIZER, type DatasetManifest, MAX_STUDENT_VOCAB, SPLITS,
  type Split, type SplitStats,
} from '../schema/dataset.js';
import { listRawShards } from '../schema/raw.js';
import { TeacherMap, VocabCounter, deriveVocab } from '../tokenizer/derive.js';
import { type ConvertStats, convertRecord, newConvertStats, splitOf } from './convert.js';
import { importResponses } from './import.js';
import { readRawRecords } from './raw-columns.js';
import { ShardWriter } from '../data/shards.js';

export interface BuildOptions {
  /** a raw directory (datasets/NAME/raw), or a .jsonl/.csv file of saved chat-completion responses */
  from: string;
  out: string;
  vocabSize?: number;
  valFraction?: number;
  seed?: number;
  /** bound on a shard's size (default 64 MiB) */
  shardBytes?: number;
  /** positions per Arrow record batch, the loader's shuffle unit (default 16384) */
  batchTokens?: number;
  /** replace an existing dataset in --out */
  force?: boolean;
  /** called after each raw shard of each pass: (done, total) */
  onProgress?: (done: number, total: number) => void;
}

export interface BuildSummary {
  out: string;
  vocabSize: number;
  topK: number;
  massKept: number;
  bytesPerLabelled: number;
  /** the budget: 6·topK + 16 bytes per labelled position */
  targetBytesPerLabelled: number;
  teacherModels: string[];
  counts: Record<string, number>;
  splits: Record<Split, Omit<SplitStats, 'shards'> & { shards: number }>;
  seconds: number;
}

export const BUILD_DEFAULTS = { vocabSize: 8192, valFraction: 0.05, seed: 0, shardBytes: 64 * 1024 * 1024 };

function checkOptions(o: BuildOptions): Required<Omit<BuildOptions, 'onProgress' | 'force' | 'batchTokens'>> {
  const r = { ...BUILD_DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as Required<BuildOptions>;
  if (!Number.isInteger(r.vocabSize) || r.vocabSize < 256 || r.vocabSize > MAX_STUDENT_VOCAB) throw new KdError('bad-option', `--vocab-size must be an integer in [256, ${MAX_STUDENT_VOCAB}], got ${r.vocabSize}`);
  if (!(r.valFraction >= 0 && r.valFraction < 1)) throw new KdError('bad-option', `--val-fraction must be in [0, 1), got ${r.valFraction}`);
  if (!Number.isInteger(r.seed) || r.seed < 0) throw new KdError('bad-option', `--seed must be an integer ≥ 0, got ${r.seed}`);
  if (!(r.shardBytes >= 1024)) throw new KdError('bad-option', `--shard-mb must give at least 1 KiB per shard, got ${r.shardBytes} bytes`);
  return r;
}


/** The raw shards to read: the directory's, or those of a temp import of a responses file. */
function resolveSource(from: string): { dir: string; files: string[]; cleanup: () => void; imported?: string } {
  let st: fs.Stats;
  try {
    st = fs.statSync(from);
  } catch {
    throw new KdError('missing-file', `${from}: no such raw directory or responses file`);
  }
  if (st.isDirectory()) {
    const files = listRawShards(from);
    if (files.length === 0) throw new KdError('no-raw', `${from}: no raw shards (raw-NNNNN.arrows); run kd collect or kd dataset import first`);
    return { dir: from, files, cleanup: () => {} };
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-import-'));
  try {
    importResponses({ from, out: tmp });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir: tmp, files: listRawShards(tmp), cleanup: () => fs.rmSync(tmp, { recursive: true, force: true }), imported: from };
}

function splitStats(c: ConvertStats, shards: SplitStats['shards']): SplitStats {
  const bytes = shards.reduce((s, x) => s + x.bytes, 0);
  const tokens = shards.reduce((s, x) => s + x.tokens, 0);
  return {
    sequences: c.sequences, tokens, labelled: c.labelled, targeted: 0,
    meanEntropy: c.labelled ? c.entropySum / c.labelled : 0,
    bytesPerLabelled: c.labelled ? bytes / c.labelled : 0,
    massKept: c.topMass > 0 ? c.oneToOneMass / c.topMass : 1,
    bytes, shards,
  };
}

export function buildDataset(opts: BuildOptions): BuildSummary {
  const t0 = performance.now();
  const o = checkOptions(opts);
  const out = o.out;
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new KdError('bad-out', `${out}: exists and is not a directory`);
  if (fs.existsSync(path.join(out, DATASET_MANIFEST)) && !opts.force) {
    throw new KdError('would-overwrite', `${path.join(out, DATASET_MANIFEST)}: a dataset already exists in ${out}; pass --force to replace it`);
  }
  const src = resolveSource(o.from);
  fs.mkdirSync(out, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(out, '.kd-build-'));
  try {
    const total = src.files.length * 2;
    let done = 0;
    // pass 1: usefulness of every teacher token → the student tokenizer
    const counter = new VocabCounter();
    for (const f of src.files) {
      for (const r of readRawRecords(f)) counter.add(r);
      opts.onProgress?.(++done, total);
    }
    const { tokenizer, massKept } = deriveVocab(counter, o.vocabSize);
    const hash = tokenizer.hash();
    const map = new TeacherMap(tokenizer);
    // pass 2: convert and write
    const writers = Object.fromEntries(SPLITS.map((s) => [s, new ShardWriter(tmp, s, hash, { shardBytes: o.shardBytes, batchTokens: opts.batchTokens })])) as Record<Split, ShardWriter>;
    const stats = Object.fromEntries(SPLITS.map((s) => [s, newConvertStats()])) as Record<Split, ConvertStats>;
    const targeted = { train: 0, val: 0 };
    let records = 0;
    for (const f of src.files) {
      for (const r of readRawRecords(f)) {
        records++;
        const split = splitOf(r.input_id, o.seed, o.valFraction);
        const q = convertRecord(r, map, stats[split]);
        if (!q) continue;
        targeted[split] += Math.max(0, q.ids.length - 1 - q.targetFrom);
        writers[split].add(q);
      }
      opts.onProgress?.(++done, total);
    }
    const splits = Object.fromEntries(SPLITS.map((s) => [s, { ...splitStats(stats[s], writers[s].close()), targeted: targeted[s] }])) as Record<Split, SplitStats>;
    const labelled = splits.train.labelled + splits.val.labelled;
    const bytes = splits.train.bytes + splits.val.bytes;
    const topK = Math.max(stats.train.maxK, stats.val.maxK);
    const sum = (k: keyof ConvertStats) => (stats.train[k] as number) + (stats.val[k] as number);
    const counts = {
      records, sequences: sum('sequences'), emptySequences: sum('emptySequences'), teacherPositions: sum('teacherPositions'), labelled,
      noPredecessor: sum('noPredecessor'), noAlternatives: sum('noAlternatives'), missingTokens: sum('missingTokens'),
      bytesFromString: stats.train.bytes.fromString + stats.val.bytes.fromString, bytesEscaped: stats.train.bytes.escaped + stats.val.bytes.escaped,
    };
    const teacherModels = [...counter.models].sort();
    const manifest: DatasetManifest = {
      format: DATASET_FORMAT, version: DATASET_FORMAT_VERSION, kdVersion: KD_VERSION, createdAt: new Date().toISOString(),
      topK, teacher: { models: teacherModels },
      tokenizer: { file: DATASET_TOKENIZER, hash, vocabSize: tokenizer.vocabSize, massKept },
      params: { vocabSize: o.vocabSize, valFraction: o.valFraction, seed: o.seed, shardBytes: o.shardBytes },
      source: {
        dir: src.imported ?? o.from,
        files: src.imported ? [{ file: path.basename(src.imported), sha256: sha256File(src.imported), bytes: fs.statSync(src.imported).size }]
          : src.files.map((f) => ({ file: path.basename(f), sha256: sha256File(f), bytes: fs.statSync(f).size })),
      },
      counts, bytesPerLabelled: labelled ? bytes / labelled : 0, splits,
    };
    if (splits.train.tokens === 0) throw new KdError('dataset-empty', `${o.from}: no usable sequences for the train split (${records} records, ${counts.emptySequences} with nothing to learn)`);
    fs.writeFileSync(path.join(tmp, DATASET_TOKENIZER), JSON.stringify(tokenizer.toJSON()) + '\n');
    commit(tmp, out, manifest);
    return {
      out, vocabSize: tokenizer.vocabSize, topK, massKept, bytesPerLabelled: manifest.bytesPerLabelled, targetBytesPerLabelled: 6 * topK + 16,
      teacherModels, counts,
      splits: Object.fromEntries(SPLITS.map((s) => [s, { ...splits[s], shards: splits[s].shards.length }])) as BuildSummary['splits'],
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    src.cleanup();
  }
}

/**
 * Moves the new files into `out`. The old manifest goes first and the new one comes last: at every
 * moment `out` is either the old dataset, the new one, or (between) no dataset at all.
 */
function commit(tmp: string, out: string, manifest: DatasetManifest): void {
  fs.rmSync(path.join(out, DATASET_MANIFEST), { force: true });
  for (const f of fs.readdirSync(out)) if (/^(train|val)-\d{5,}\.arrow$/.test(f)) fs.rmSync(path.join(out, f));
  for (const f of fs.readdirSync(tmp)) fs.renameSync(path.join(tmp, f), path.join(out, f));
  writeJsonAtomic(path.join(out, DATASET_MANIFEST), manifest);
}
