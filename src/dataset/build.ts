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
import { BUILD_DEFAULTS } from './options.js';
import {
  DATASET_FORMAT, DATASET_FORMAT_VERSION, DATASET_MANIFEST, DATASET_TOKENIZER, type DatasetManifest, type DatasetVersion, MAX_STUDENT_VOCAB, SPLITS,
  type Split, type SplitStats,
} from '../schema/dataset.js';
import { listRawShards } from '../schema/raw.js';
import type { RawRecord } from '../schema/raw.js';
import { TeacherMap, VocabCounter, bytesKey, deriveVocab } from '../tokenizer/derive.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { BuildPool, type BuildWorkerRequest } from './build-pool.js';
import { ByteTable, type Interner, NativeTable, type Pass1Result, type Pass2Result, SplitCache, pass1, pass2, readRawShard } from './columnar.js';
import { nativeBuild } from './label.js';
import { type ConvertStats, convertRecord, newConvertStats, splitOf } from './convert.js';
import { importResponses } from './import.js';
import { openRawStream, plainColumn, readRawRecords } from './raw-columns.js';
import { ShardWriter } from '../data/shards.js';
import { releaseArrays } from '../core/release.js';

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
  /** the dataset format version to write (default {@link DATASET_FORMAT_VERSION}; 1 for older kd) */
  formatVersion?: DatasetVersion;
  /** called after each raw shard of each pass: (done, total) */
  onProgress?: (done: number, total: number) => void;
  /** use this student tokenizer instead of deriving one (new data for an existing student: kd onpolicy) */
  tokenizer?: import('../tokenizer/tokenizer.js').Tokenizer;
  /** only records whose input id passes (kd onpolicy's on/off-policy mix) */
  keep?: (inputId: string) => boolean;
  /**
   * Texts to learn from the hard targets alone (score-mode rows: id and text). Those whose id no raw
   * record has — the rows the teacher was not asked about, e.g. outside a `--budget-tokens` pick — are
   * added as sequences without soft labels, in the student's tokenizer, split by the same hash of the
   * id; rows the teacher scored are skipped (their record has the soft labels).
   */
  text?: Iterable<{ id: string; text: string }>;
}

export interface BuildSummary {
  out: string;
  formatVersion: DatasetVersion;
  vocabSize: number;
  topK: number;
  massKept: number;
  bytesPerLabelled: number;
  /** shard bytes per top-k (id, log-prob) entry */
  bytesPerEntry: number;
  /** the budget: 6·topK + 16 bytes per labelled position */
  targetBytesPerLabelled: number;
  teacherModels: string[];
  counts: Record<string, number>;
  splits: Record<Split, Omit<SplitStats, 'shards'> & { shards: number }>;
  seconds: number;
}

export { BUILD_DEFAULTS };

function checkOptions(o: BuildOptions): Required<Omit<BuildOptions, 'onProgress' | 'force' | 'batchTokens' | 'tokenizer' | 'keep' | 'text'>> {
  const r = { ...BUILD_DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as Required<BuildOptions>;
  if (!Number.isInteger(r.vocabSize) || r.vocabSize < 256 || r.vocabSize > MAX_STUDENT_VOCAB) throw new KdError('bad-option', `--vocab-size must be an integer in [256, ${MAX_STUDENT_VOCAB}], got ${r.vocabSize}`);
  if (!(r.valFraction >= 0 && r.valFraction < 1)) throw new KdError('bad-option', `--val-fraction must be in [0, 1), got ${r.valFraction}`);
  if (!Number.isInteger(r.seed) || r.seed < 0) throw new KdError('bad-option', `--seed must be an integer ≥ 0, got ${r.seed}`);
  if (r.formatVersion !== 1 && r.formatVersion !== 2) throw new KdError('bad-option', `--format-version must be 1 or 2, got ${r.formatVersion}`);
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

/**
 * The build's state between the two passes, folded one raw shard at a time in source order — so the
 * result is the same whichever thread converted each shard: every float sum of the record-by-record
 * build happens here, value by value, in the same order.
 */
class BuildFold {
  readonly counter = new VocabCounter();
  private readonly kernels = nativeBuild();
  private readonly global: Interner = this.kernels ? new NativeTable(this.kernels) : new ByteTable();
  private count = new Float64Array(1024);
  private mass = new Float64Array(1024);
  /** scratch of the native folds: running sums */
  private readonly acc = new Float64Array(3);
  tokenizer!: Tokenizer;
  massKept = 0;
  writers!: Record<Split, ShardWriter>;
  readonly stats = Object.fromEntries(SPLITS.map((s) => [s, newConvertStats()])) as Record<Split, ConvertStats>;
  readonly targeted = { train: 0, val: 0 };
  records = 0;
  /** sequences added from BuildOptions.text (hard targets only) */
  textSequences = 0;
  /** the raw shards as pass 1 read them (columnar path), in source order */
  readonly sources: { sha256: string; bytes: number }[] = [];

  constructor(readonly o: ReturnType<typeof checkOptions>, readonly tmp: string, readonly batchTokens: number | undefined,
    /** a given student tokenizer (kd onpolicy) instead of one derived in pass 1; and a filter on input ids */
    readonly given?: Tokenizer, readonly keep?: (inputId: string) => boolean) {}

  /** pass 1 of the record path: one record */
  addRecord(r: RawRecord): void {
    this.counter.add(r);
  }

  /** pass 1 of the columnar path: one shard's distinct tokens and events */
  addPass1(res: Pass1Result): void {
    const c = this.counter;
    if (this.kernels) this.fold1Native(res);
    else this.fold1Js(res);
    c.positions += res.positions;
    c.bytes.reported += res.bytes.reported;
    c.bytes.escaped += res.bytes.escaped;
    c.bytes.fromString += res.bytes.fromString;
    for (const m of res.models) c.models.add(m);
    this.sources.push(res.source);
  }

  /** room in count and mass for n more tokens */
  private reserve(n: number): void {
    const need = this.global.size + n;
    if (this.count.length >= need) return;
    const len = Math.max(2 * this.count.length, need);
    const cnt = new Float64Array(len), mass = new Float64Array(len);
    cnt.set(this.count); mass.set(this.mass);
    this.count = cnt; this.mass = mass;
  }

  /** {@link BuildFold.fold1Js} natively: the same sums in the same order */
  private fold1Native(res: Pass1Result): void {
    this.reserve(res.named);
    this.acc[0] = this.counter.totalMass;
    const g = this.global as NativeTable;
    g.size = this.kernels!.fold1(g.handle, res.pool, res.off, res.order, res.cnt, res.qOff, res.qs, res.named, res.p, this.count, this.mass, this.acc);
    this.counter.totalMass = this.acc[0];
  }

  private fold1Js(res: Pass1Result): void {
    const c = this.counter;
    // a shard's tokens join the global table in the order its events first name them (the record
    // path's first-seen order, whatever order the shard's own table has, and only the tokens named);
    // each one's mass goes on from the global one through its events in order
    this.reserve(res.named);
    const { order, cnt, qOff, qs, p } = res;
    for (let i = 0; i < res.named; i++) {
      const t = order[i], g = this.global.intern(res.pool, res.off[t], res.off[t + 1]);
      let m = this.mass[g];
      for (let j = qOff[i]; j < qOff[i + 1]; j++) m += qs[j];
      this.mass[g] = m;
      this.count[g] += cnt[i];
    }
    let total = c.totalMass;
    for (let k = 0; k < p.length; k++) total += p[k];
    c.totalMass = total;
  }

  derive(): void {
    // the columnar pass 1 kept usefulness in typed arrays: into the counter's map, in first-seen order
    const keys = this.global.dump();
    for (let t = 0; t < this.global.size; t++) this.counter.tokens.set(bytesKey(keys.pool.subarray(keys.off[t], keys.off[t + 1])), { count: this.count[t], mass: this.mass[t] });
    const { tokenizer, massKept } = this.given ? { tokenizer: this.given, massKept: 1 } : deriveVocab(this.counter, this.o.vocabSize);
    this.tokenizer = tokenizer;
    this.massKept = massKept;
    // (≈ 50k entries of small objects no later step reads, which every full GC of pass 2 would mark)
    this.counter.tokens.clear();
    const hash = tokenizer.hash();
    this.writers = Object.fromEntries(SPLITS.map((s) => [s, new ShardWriter(this.tmp, s, hash, {
      shardBytes: this.o.shardBytes, batchTokens: this.batchTokens, version: this.o.formatVersion, vocabSize: tokenizer.vocabSize,
    })])) as Record<Split, ShardWriter>;
  }

  /** pass 2 of the record path: one record */
  convert(r: RawRecord, map: TeacherMap): void {
    if (this.keep && !this.keep(r.input_id)) return;
    this.records++;
    const split = splitOf(r.input_id, this.o.seed, this.o.valFraction);
    const q = convertRecord(r, map, this.stats[split]);
    if (!q) return;
    this.targeted[split] += Math.max(0, q.ids.length - 1 - q.targetFrom);
    this.writers[split].add(q);
  }

  /** after pass 2: the hard-label-only texts whose ids are not among `scored` (see BuildOptions.text) */
  addText(rows: Iterable<{ id: string; text: string }>, scored: Set<string>): void {
    for (const r of rows) {
      if (scored.has(r.id) || (this.keep && !this.keep(r.id))) continue;
      scored.add(r.id); // (a repeated id counts once, as a raw input does)
      const ids = this.tokenizer.encode(r.text);
      if (ids.length < 2) continue; // nothing to predict
      const split = splitOf(r.id, this.o.seed, this.o.valFraction);
      this.stats[split].sequences++;
      this.targeted[split] += ids.length - 1;
      this.textSequences++;
      this.writers[split].add({ inputId: r.id, ids, mask: new Uint8Array(ids.length), targetFrom: 0, topCounts: [], topIds: [], topLogprobs: [] });
    }
  }

  /** pass 2 of the columnar path: one shard's blocks and statistics (with `release`, its arrays are freed once used) */
  addPass2(res: Pass2Result, release = false): void {
    this.records += res.records;
    for (const split of SPLITS) {
      const x = res.splits[split], st = this.stats[split], c = x.counts;
      this.writers[split].addBlock(x.block, release);
      for (const k of ['sequences', 'teacherPositions', 'labelled', 'noPredecessor', 'noAlternatives', 'missingTokens', 'emptySequences'] as const) st[k] += c[k];
      st.maxK = Math.max(st.maxK, c.maxK);
      st.bytes.reported += c.bytes.reported;
      st.bytes.escaped += c.bytes.escaped;
      st.bytes.fromString += c.bytes.fromString;
      this.targeted[split] += c.targeted;
      if (this.kernels) {
        // the same sums natively, value by value in order
        const acc = this.acc;
        acc[0] = st.entropySum; acc[1] = st.topMass; acc[2] = st.oneToOneMass;
        this.kernels.sums(x.entropies, null, acc, 0);
        this.kernels.sums(x.p, x.one, acc, 1);
        st.entropySum = acc[0]; st.topMass = acc[1]; st.oneToOneMass = acc[2];
        continue;
      }
      let h = st.entropySum;
      for (let j = 0; j < x.entropies.length; j++) h += x.entropies[j];
      st.entropySum = h;
      let top = st.topMass, one = st.oneToOneMass;
      for (let k = 0; k < x.p.length; k++) {
        top += x.p[k];
        if (x.one[k]) one += x.p[k];
      }
      st.topMass = top;
      st.oneToOneMass = one;
    }
    if (release) releaseArrays(SPLITS.flatMap((split) => [res.splits[split].entropies, res.splits[split].p, res.splits[split].one]));
  }
}

type Checked = ReturnType<typeof checkOptions>;

function start(opts: BuildOptions): { o: Checked; src: ReturnType<typeof resolveSource>; tmp: string } {
  const o = checkOptions(opts);
  const out = o.out;
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new KdError('bad-out', `${out}: exists and is not a directory`);
  if (fs.existsSync(path.join(out, DATASET_MANIFEST)) && !opts.force) {
    throw new KdError('would-overwrite', `${path.join(out, DATASET_MANIFEST)}: a dataset already exists in ${out}; pass --force to replace it`);
  }
  const src = resolveSource(o.from);
  try {
    fs.mkdirSync(out, { recursive: true });
    return { o, src, tmp: fs.mkdtempSync(path.join(out, '.kd-build-')) };
  } catch (e) {
    src.cleanup();
    throw e;
  }
}

function finish(f: BuildFold, o: Checked, src: ReturnType<typeof resolveSource>, t0: number): BuildSummary {
  const { stats, writers, targeted, records, tokenizer, counter } = f;
  const out = o.out;
  const splits = Object.fromEntries(SPLITS.map((s) => {
    const shards = writers[s].close();
    const x = { ...splitStats(stats[s], shards), targeted: targeted[s] };
    if (o.formatVersion >= 2) {
      const entries = shards.reduce((a, b) => a + (b.entries ?? 0), 0);
      Object.assign(x, { entries, bytesPerEntry: entries ? x.bytes / entries : 0 });
    }
    return [s, x];
  })) as Record<Split, SplitStats>;
  const massKept = f.given ? splits.train.massKept : f.massKept; // a given tokenizer: the teacher mass it maps one-to-one
  const labelled = splits.train.labelled + splits.val.labelled;
  const bytes = splits.train.bytes + splits.val.bytes;
  const entries = SPLITS.reduce((a, s) => a + writers[s].shards.reduce((b, x) => b + (x.entries ?? 0), 0), 0);
  const topK = Math.max(stats.train.maxK, stats.val.maxK);
  const sum = (k: keyof ConvertStats) => (stats.train[k] as number) + (stats.val[k] as number);
  const counts = {
    records, sequences: sum('sequences'), ...(f.textSequences ? { textSequences: f.textSequences } : {}), emptySequences: sum('emptySequences'), teacherPositions: sum('teacherPositions'), labelled,
    noPredecessor: sum('noPredecessor'), noAlternatives: sum('noAlternatives'), missingTokens: sum('missingTokens'),
    bytesFromString: stats.train.bytes.fromString + stats.val.bytes.fromString, bytesEscaped: stats.train.bytes.escaped + stats.val.bytes.escaped,
  };
  const teacherModels = [...counter.models].sort();
  const hash = tokenizer.hash();
  const manifest: DatasetManifest = {
    format: DATASET_FORMAT, version: o.formatVersion, kdVersion: KD_VERSION, createdAt: new Date().toISOString(),
    topK, teacher: { models: teacherModels },
    tokenizer: { file: DATASET_TOKENIZER, hash, vocabSize: tokenizer.vocabSize, massKept },
    params: { vocabSize: o.vocabSize, valFraction: o.valFraction, seed: o.seed, shardBytes: o.shardBytes },
    source: {
      dir: src.imported ?? o.from,
      files: src.imported ? [{ file: path.basename(src.imported), sha256: sha256File(src.imported), bytes: fs.statSync(src.imported).size }]
        : src.files.map((x, i) => ({ file: path.basename(x), ...(f.sources.length === src.files.length ? f.sources[i] : { sha256: sha256File(x), bytes: fs.statSync(x).size }) })),
    },
    counts, bytesPerLabelled: labelled ? bytes / labelled : 0, ...(o.formatVersion >= 2 ? { bytesPerEntry: entries ? bytes / entries : 0 } : {}), splits,
  };
  if (splits.train.tokens === 0) throw new KdError('dataset-empty', `${o.from}: no usable sequences for the train split (${records} records, ${counts.emptySequences} with nothing to learn)`);
  fs.writeFileSync(path.join(f.tmp, DATASET_TOKENIZER), JSON.stringify(tokenizer.toJSON()) + '\n');
  commit(f.tmp, out, manifest);
  // (version 1 manifests do not record entries; the writers counted them for the summary)
  const allEntries = SPLITS.reduce((a, s) => a + writers[s].entriesWritten, 0);
  return {
    out, formatVersion: o.formatVersion, vocabSize: tokenizer.vocabSize, topK, massKept, bytesPerLabelled: manifest.bytesPerLabelled,
    bytesPerEntry: allEntries ? bytes / allEntries : 0, targetBytesPerLabelled: 6 * topK + 16,
    teacherModels, counts,
    splits: Object.fromEntries(SPLITS.map((s) => [s, { ...splits[s], shards: splits[s].shards.length }])) as BuildSummary['splits'],
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Builds in this thread. `engine` 'records' is the record-by-record path this build replaced (kept
 * to compare against: bench/data.ts, test/dataset/columnar.test.ts); the default reads columns.
 */
export function buildDataset(opts: BuildOptions & { engine?: 'columns' | 'records' }): BuildSummary {
  const t0 = performance.now();
  const { o, src, tmp } = start(opts);
  try {
    const f = new BuildFold(o, tmp, opts.batchTokens, opts.tokenizer, opts.keep);
    const total = src.files.length * 2;
    let done = 0;
    // a given tokenizer or an input-id filter (kd onpolicy's small rounds) take the record path
    const records = opts.engine === 'records' || opts.tokenizer !== undefined || opts.keep !== undefined;
    for (const file of src.files) {
      if (records) for (const r of readRawRecords(file)) f.addRecord(r);
      else f.addPass1(pass1(readRawShard(file), file));
      opts.onProgress?.(++done, total);
    }
    f.derive();
    const map = new TeacherMap(f.tokenizer);
    const cache = new SplitCache(f.tokenizer);
    for (const file of src.files) {
      if (records) for (const r of readRawRecords(file)) f.convert(r, map);
      else f.addPass2(pass2(readRawShard(file), file, f.tokenizer, { seed: o.seed, valFraction: o.valFraction, version: o.formatVersion }, cache));
      opts.onProgress?.(++done, total);
    }
    if (opts.text) f.addText(opts.text, rawInputIds(src.files));
    return finish(f, o, src, t0);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    src.cleanup();
  }
}

/** Worker threads a build uses by default: one per core, at most {@link MAX_BUILD_WORKERS}. */
export const MAX_BUILD_WORKERS = 4;
/** below this much raw data (and without an explicit `workers`) the build stays in one thread */
export const MIN_PARALLEL_RAW_BYTES = 32 * 1024 * 1024;
export const defaultBuildWorkers = (): number => Math.min(MAX_BUILD_WORKERS, Math.max(1, os.availableParallelism?.() ?? os.cpus().length));

/**
 * Builds with `workers` threads converting raw shards (default {@link defaultBuildWorkers}; 0 or a
 * single raw shard: in this thread) while this one folds their results in source order and writes.
 * The output is the same bytes as {@link buildDataset}'s. At most two shards per worker are in
 * memory at a time.
 */
export async function buildDatasetParallel(opts: BuildOptions & { workers?: number }): Promise<BuildSummary> {
  if (opts.tokenizer || opts.keep) return buildDataset(opts);
  const w = Math.min(opts.workers ?? defaultBuildWorkers(), 16);
  if (!(w >= 0 && Number.isInteger(w))) throw new KdError('bad-option', `--workers must be an integer ≥ 0, got ${opts.workers}`);
  const t0 = performance.now();
  const { o, src, tmp } = start(opts);
  const rawBytes = src.files.reduce((a, x) => a + fs.statSync(x).size, 0);
  // starting a worker costs ~0.3 s (seconds under tsx): only worth it for a big source, unless asked for
  const nWorkers = opts.workers === undefined && rawBytes < MIN_PARALLEL_RAW_BYTES ? 0 : Math.min(w, src.files.length);
  if (nWorkers <= 1) {
    fs.rmSync(tmp, { recursive: true, force: true });
    src.cleanup();
    return buildDataset({ ...opts, engine: 'columns' });
  }
  const pool = new BuildPool(nWorkers);
  try {
    const f = new BuildFold(o, tmp, opts.batchTokens);
    const total = src.files.length * 2;
    let done = 0;
    // while the workers load, this thread converts shards itself (see BuildPool.map)
    // a worker's results are this thread's alone once they arrive: their arrays are freed as soon as they
    // are folded (or written), not at a later full GC (see releaseArrays); this thread's own reuse theirs
    const own = new WeakSet<object>();
    const local1 = (t: BuildWorkerRequest) => { const r = pass1(readRawShard((t as { file: string }).file), (t as { file: string }).file); own.add(r); return r; };
    for await (const res of pool.map<Pass1Result>(src.files.map((file) => ({ type: 'pass1', file })), undefined, local1)) {
      f.addPass1(res);
      if (!own.has(res)) releaseArrays([res.pool, res.off, res.order, res.cnt, res.qOff, res.qs, res.p]);
      opts.onProgress?.(++done, total);
    }
    f.derive();
    const init: BuildWorkerRequest = { type: 'init', tokenizer: f.tokenizer.toJSON(), seed: o.seed, valFraction: o.valFraction, version: o.formatVersion };
    const cache = new SplitCache(f.tokenizer);
    const local2 = (t: BuildWorkerRequest) => {
      const r = pass2(readRawShard((t as { file: string }).file), (t as { file: string }).file, f.tokenizer, { seed: o.seed, valFraction: o.valFraction, version: o.formatVersion }, cache);
      own.add(r);
      return r;
    };
    for await (const res of pool.map<Pass2Result>(src.files.map((file) => ({ type: 'pass2', file })), init, local2)) {
      f.addPass2(res, !own.has(res));
      opts.onProgress?.(++done, total);
    }
    if (opts.text) f.addText(opts.text, rawInputIds(src.files));
    return finish(f, o, src, t0);
  } finally {
    await pool.close();
    fs.rmSync(tmp, { recursive: true, force: true });
    src.cleanup();
  }
}

/** The input ids of every complete record in the raw shards (one column read). */
function rawInputIds(files: string[]): Set<string> {
  const ids = new Set<string>();
  for (const file of files) {
    for (const batch of openRawStream(readRawShard(file), file)) {
      for (const d of batch.getChild('input_id')?.data ?? []) for (const id of plainColumn(d)) if (typeof id === 'string') ids.add(id);
    }
  }
  return ids;
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
