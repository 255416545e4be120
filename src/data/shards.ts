/**
 * Dataset shards on disk: {@link ShardWriter} packs sequences into Arrow record batches (the
 * reader's unit of shuffling) and record batches into IPC files of bounded size; {@link loadShard}
 * opens one, checking size, sha256, footer and schema, and exposes each batch's flat buffers.
 */
import { RecordBatch, RecordBatchFileReader, RecordBatchFileWriter, Struct, makeData } from 'apache-arrow';
import type { Data, DataType, Field } from 'apache-arrow';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KdError } from '../core/errors.js';
import { releaseArrays } from '../core/release.js';
import {
  type DatasetVersion, MAX_STUDENT_VOCAB, type ShardInfo, type Split, checkDatasetSchema, datasetFields, datasetSchema, shardName,
} from '../schema/dataset.js';
import { FLOAT16_TABLE, toFloat16Bits } from '../schema/float16.js';
import { decodeLp8, encodeLp8, idBits, packIds, packedBytes, unpackIds } from '../schema/lp8.js';
import type { Sequence } from '../schema/dataset.js';

const fieldType = (version: number, name: string): DataType => datasetFields(version).find((f) => f.name === name)!.type;
const childType = (t: DataType): DataType => (t.children as Field[])[0].type;

function listData(type: DataType, offsets: Int32Array, child: Data): Data {
  return makeData({ type, length: offsets.length - 1, nullCount: 0, valueOffsets: offsets, child } as never);
}

export interface ShardWriterOptions {
  /** a shard is closed once its record batches reach this many bytes */
  shardBytes: number;
  /** a record batch is closed once it holds this many positions */
  batchTokens?: number;
  /** the format version to write (default 1) */
  version?: DatasetVersion;
  /** version 2: the vocabulary size, for the bits per packed id */
  vocabSize?: number;
}

/**
 * Converted sequences as flat arrays, log-probs already in the shard's encoding: what the build
 * (its workers, or {@link blockFromSequences}) hands to {@link ShardWriter}. Row s spans
 * ids[idOff[s]..idOff[s+1]) and labelled positions labOff[s]..labOff[s+1); labelled position j has
 * counts[j] entries, consecutive in topIds (and lp16).
 */
export interface SeqBlock {
  version: DatasetVersion;
  rows: number;
  inputIds: string[];
  targetFrom: Int32Array;
  idOff: Int32Array;
  ids: Uint16Array;
  mask: Uint8Array;
  labOff: Int32Array;
  counts: Int32Array;
  topIds: Uint16Array;
  /** version 1: float16 bits of every entry */
  lp16?: Uint16Array;
  /** version 2: float16 bits of each labelled position's best */
  best16?: Uint16Array;
  /** version 2: the codes of every entry but each position's best (./../schema/lp8.ts) */
  lp8?: Uint8Array;
  /**
   * version 2, optional: topIds already packed row by row at `idBits` bits (row r at
   * packed[packOff[r]..packOff[r+1]), as {@link packIds} packs it) — the build's workers do this, so
   * the thread writing the shards only copies bytes
   */
  packed?: Uint8Array;
  packOff?: Int32Array;
  idBits?: number;
}

/**
 * Encodes per-entry natural-log probabilities (best first within a position) for a version; `ps`,
 * when given, holds each entry's Math.exp(lp) (the columnar build has them: version 2 needs them).
 */
export function encodeLogprobs(version: DatasetVersion, counts: ArrayLike<number>, labelled: number, lps: ArrayLike<number>, entries: number, ps?: ArrayLike<number>): Pick<SeqBlock, 'lp16' | 'best16' | 'lp8'> {
  if (version === 1) {
    const lp16 = new Uint16Array(entries);
    for (let v = 0; v < entries; v++) lp16[v] = toFloat16Bits(lps[v]);
    return { lp16 };
  }
  const best16 = new Uint16Array(labelled), lp8 = new Uint8Array(entries - labelled);
  for (let j = 0, v = 0; j < labelled; j++) {
    const c = counts[j];
    best16[j] = encodeLp8(lps, v, c, lp8, v - j, ps);
    v += c;
  }
  return { best16, lp8 };
}

/** Sequence objects (the record-by-record path) → one block. */
export function blockFromSequences(version: DatasetVersion, seqs: readonly Sequence[]): SeqBlock {
  const R = seqs.length;
  const idOff = new Int32Array(R + 1), labOff = new Int32Array(R + 1);
  let entries = 0;
  for (let s = 0; s < R; s++) {
    idOff[s + 1] = idOff[s] + seqs[s].ids.length;
    labOff[s + 1] = labOff[s] + seqs[s].topCounts.length;
    entries += seqs[s].topIds.length;
  }
  const ids = new Uint16Array(idOff[R]), mask = new Uint8Array(idOff[R]), targetFrom = new Int32Array(R);
  const counts = new Int32Array(labOff[R]), topIds = new Uint16Array(entries), lps = new Float64Array(entries);
  let v = 0;
  seqs.forEach((q, s) => {
    ids.set(q.ids, idOff[s]);
    mask.set(q.mask, idOff[s]);
    targetFrom[s] = q.targetFrom;
    counts.set(q.topCounts, labOff[s]);
    topIds.set(q.topIds, v);
    lps.set(q.topLogprobs, v);
    v += q.topIds.length;
  });
  return {
    version, rows: R, inputIds: seqs.map((q) => q.inputId), targetFrom, idOff, ids, mask, labOff, counts, topIds,
    ...encodeLogprobs(version, counts, labOff[R], lps, entries),
  };
}

/** Entry offsets of a block's positions and rows (computed once per block). */
export function entryOffsets(b: Pick<SeqBlock, 'rows' | 'labOff' | 'counts'>): { posOff: Int32Array; rowEnt: Int32Array } {
  const L = b.labOff[b.rows];
  const posOff = new Int32Array(L + 1);
  for (let j = 0; j < L; j++) posOff[j + 1] = posOff[j] + b.counts[j];
  const rowEnt = new Int32Array(b.rows + 1);
  for (let s = 0; s <= b.rows; s++) rowEnt[s] = posOff[b.labOff[s]];
  return { posOff, rowEnt };
}

interface RowRef { b: SeqBlock; e: { posOff: Int32Array; rowEnt: Int32Array }; r: number }

/** Rows of blocks → one record batch with flat typed buffers (no per-value builder calls). */
function rowsBatch(split: Split, tokenizerHash: string, version: DatasetVersion, idBits: number, rows: readonly RowRef[]): RecordBatch {
  const schema = datasetSchema(split, tokenizerHash, version, idBits);
  const R = rows.length;
  const idOff = new Int32Array(R + 1), labOff = new Int32Array(R + 1), entOff = new Int32Array(R + 1);
  for (let s = 0; s < R; s++) {
    const { b, e, r } = rows[s];
    idOff[s + 1] = idOff[s] + b.idOff[r + 1] - b.idOff[r];
    labOff[s + 1] = labOff[s] + b.labOff[r + 1] - b.labOff[r];
    entOff[s + 1] = entOff[s] + e.rowEnt[r + 1] - e.rowEnt[r];
  }
  const nTok = idOff[R], nLab = labOff[R], nTop = entOff[R];
  const ids = new Uint16Array(nTok), mask = new Uint8Array(nTok), targetFrom = new Int32Array(R);
  const names = rows.map(({ b, r }) => Buffer.from(b.inputIds[r], 'utf8'));
  const nameOff = new Int32Array(R + 1);
  names.forEach((x, s) => { nameOff[s + 1] = nameOff[s] + x.length; });
  for (let s = 0; s < R; s++) {
    const { b, r } = rows[s];
    ids.set(b.ids.subarray(b.idOff[r], b.idOff[r + 1]), idOff[s]);
    mask.set(b.mask.subarray(b.idOff[r], b.idOff[r + 1]), idOff[s]);
    targetFrom[s] = b.targetFrom[r];
  }
  const t = (n: string) => fieldType(version, n);
  const u8 = childType(t('mask'));
  const prim = (type: DataType, data: ArrayBufferView & { length: number }) => makeData({ type, length: data.length, nullCount: 0, data } as never);
  const children: Data[] = [
    makeData({ type: t('input_id'), length: R, nullCount: 0, valueOffsets: nameOff, data: Buffer.concat(names) } as never),
    listData(t('ids'), idOff, prim(childType(t('ids')), ids)),
    listData(t('mask'), idOff.slice(), prim(u8, mask)), // (own copies of shared offsets: see below)
    makeData({ type: t('target_from'), length: R, nullCount: 0, data: targetFrom } as never),
  ];
  if (version === 1) {
    const topOff = new Int32Array(nLab + 1), topIds = new Uint16Array(nTop), topLp = new Uint16Array(nTop);
    for (let s = 0; s < R; s++) {
      const { b, e, r } = rows[s];
      const e0 = e.rowEnt[r], base = entOff[s] - e0;
      for (let j = b.labOff[r], l = labOff[s]; j < b.labOff[r + 1]; j++, l++) topOff[l + 1] = e.posOff[j + 1] + base;
      topIds.set(b.topIds.subarray(e0, e.rowEnt[r + 1]), entOff[s]);
      topLp.set(b.lp16!.subarray(e0, e.rowEnt[r + 1]), entOff[s]);
    }
    children.push(
      listData(t('top_ids'), labOff, listData(childType(t('top_ids')), topOff, prim(childType(childType(t('top_ids'))), topIds))),
      listData(t('top_logprobs'), labOff.slice(), listData(childType(t('top_logprobs')), topOff.slice(), prim(childType(childType(t('top_logprobs'))), topLp))),
    );
  } else {
    const counts = new Uint8Array(nLab), best = new Uint16Array(nLab), lp8 = new Uint8Array(nTop - nLab);
    const codeOff = new Int32Array(R + 1), packOff = new Int32Array(R + 1);
    for (let s = 0; s < R; s++) {
      codeOff[s + 1] = codeOff[s] + (entOff[s + 1] - entOff[s]) - (labOff[s + 1] - labOff[s]);
      packOff[s + 1] = packOff[s] + packedBytes(entOff[s + 1] - entOff[s], idBits);
    }
    const packed = new Uint8Array(packOff[R]);
    for (let s = 0; s < R; s++) {
      const { b, e, r } = rows[s];
      const j0 = b.labOff[r], j1 = b.labOff[r + 1], e0 = e.rowEnt[r];
      for (let j = j0; j < j1; j++) {
        const c = b.counts[j];
        if (c > 255) throw new KdError('bad-option', `format version 2 stores at most 255 top-k entries per position, got ${c} (input_id ${JSON.stringify(b.inputIds[r])}); build with --format-version 1`);
        counts[labOff[s] + j - j0] = c;
      }
      best.set(b.best16!.subarray(j0, j1), labOff[s]);
      lp8.set(b.lp8!.subarray(e0 - j0, e.rowEnt[r + 1] - j1), codeOff[s]);
      if (b.packed && b.packOff && b.idBits === idBits) packed.set(b.packed.subarray(b.packOff[r], b.packOff[r + 1]), packOff[s]);
      else packIds(b.topIds, e0, e.rowEnt[r + 1] - e0, idBits, packed, packOff[s]);
    }
    children.push(
      listData(t('top_counts'), labOff, prim(u8, counts)),
      // an offsets array given to two columns must be two copies: apache-arrow's writer keeps views of the
      // buffers and, joining them, merges two views of the same bytes that come one right after the other
      // (as these do when a batch has no labelled position: the empty child buffers between them are not
      // written) into one, so the file came 8 bytes short of its metadata and read back as garbage
      listData(t('top_best'), labOff.slice(), prim(childType(t('top_best')), best)),
      makeData({ type: t('top_ids'), length: R, nullCount: 0, valueOffsets: packOff, data: packed } as never),
      listData(t('top_lp8'), codeOff, prim(u8, lp8)),
    );
  }
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: R, nullCount: 0, children }));
}

/** Sequences → one version-1 record batch (what the build wrote before blocks; kept for tests). */
export function sequencesBatch(split: Split, tokenizerHash: string, seqs: readonly Sequence[]): RecordBatch {
  const b = blockFromSequences(1, seqs);
  const e = entryOffsets(b);
  return rowsBatch(split, tokenizerHash, 1, 16, seqs.map((_, r) => ({ b, e, r })));
}

/** Writes one split's shards: `split-00000.arrow`, … into `dir`. */
export class ShardWriter {
  readonly shards: ShardInfo[] = [];
  private pending: RowRef[] = [];
  private pendingTokens = 0;
  private writer: RecordBatchFileWriter | null = null;
  private cur = { bytes: 0, batches: 0, sequences: 0, tokens: 0, labelled: 0, entries: 0 };
  readonly version: DatasetVersion;
  readonly idBits: number;
  /** top-k entries written so far, over all shards */
  entriesWritten = 0;

  constructor(readonly dir: string, readonly split: Split, readonly tokenizerHash: string, readonly o: ShardWriterOptions) {
    this.version = o.version ?? 1;
    this.idBits = this.version === 2 ? idBits(o.vocabSize ?? MAX_STUDENT_VOCAB) : 16;
  }

  /** Adds one sequence (the record-by-record path). */
  add(q: Sequence): void {
    this.addBlock(blockFromSequences(this.version, [q]));
  }

  /**
   * Adds every row of a block, in order; record batches close at the same rows as one add() each.
   * With `release`, the block's arrays are the writer's: freed ({@link releaseArrays}) once its last
   * row is in a record batch (a parallel build's blocks, which came from a worker thread).
   */
  addBlock(b: SeqBlock, release = false): void {
    if (b.version !== this.version) throw new Error(`block of format version ${b.version} given to a version ${this.version} writer`);
    const e = entryOffsets(b);
    const T = this.o.batchTokens ?? 16384;
    if (release) this.owned.add(b);
    for (let r = 0; r < b.rows; r++) {
      this.pending.push({ b, e, r });
      this.pendingTokens += b.idOff[r + 1] - b.idOff[r];
      if (this.pendingTokens >= T) this.flushBatch();
    }
    if (b.rows === 0) this.released(b);
  }

  /** blocks whose arrays this writer frees once their rows are written */
  private readonly owned = new Set<SeqBlock>();

  private released(b: SeqBlock): void {
    if (!this.owned.delete(b)) return;
    releaseArrays([b.targetFrom, b.idOff, b.ids, b.mask, b.labOff, b.counts, b.topIds, b.lp16, b.best16, b.lp8, b.packed, b.packOff]);
  }

  private flushBatch(): void {
    if (this.pending.length === 0) return;
    const rb = rowsBatch(this.split, this.tokenizerHash, this.version, this.idBits, this.pending);
    this.writer ??= new RecordBatchFileWriter();
    this.writer.write(rb);
    this.cur.batches++;
    this.cur.bytes += rb.data.byteLength;
    this.cur.sequences += this.pending.length;
    this.cur.tokens += this.pendingTokens;
    for (const { b, e, r } of this.pending) {
      this.cur.labelled += b.labOff[r + 1] - b.labOff[r];
      this.cur.entries += e.rowEnt[r + 1] - e.rowEnt[r];
      if (r === b.rows - 1) this.released(b); // (the record batch holds copies)
    }
    this.pending = [];
    this.pendingTokens = 0;
    if (this.cur.bytes >= this.o.shardBytes) this.finishShard();
  }

  private finishShard(): void {
    if (!this.writer) return;
    this.writer.finish();
    const bytes = this.writer.toUint8Array(true);
    const file = shardName(this.split, this.shards.length);
    writeFileSync(join(this.dir, file), bytes);
    const { bytes: _estimate, entries, ...counts } = this.cur;
    this.entriesWritten += entries;
    this.shards.push({ file, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.byteLength, ...counts, ...(this.version >= 2 ? { entries } : {}) });
    this.writer = null;
    this.cur = { bytes: 0, batches: 0, sequences: 0, tokens: 0, labelled: 0, entries: 0 };
  }

  /** Flushes everything; the shards written. */
  close(): ShardInfo[] {
    this.flushBatch();
    this.finishShard();
    return this.shards;
  }
}

/** One record batch of a shard as flat buffers; row s spans ids[idOff[s]..idOff[s+1]). */
export interface ShardBatch {
  rows: number;
  idOff: Int32Array;
  ids: Uint16Array;
  mask: Uint8Array;
  targetFrom: Int32Array;
  /** row s's labelled positions are labOff[s]..labOff[s+1) */
  labOff: Int32Array;
  /** labelled position j's entries are topOff[j]..topOff[j+1) */
  topOff: Int32Array;
  topIds: Uint16Array;
  /** natural-log probabilities, decoded from the shard's float16 (version 1) or 8-bit codes (version 2) */
  topLogprobs: Float32Array;
}

/** Reads a shard into memory, checking its length and (when `verify`) sha256 against the manifest. */
export function readShardBytes(dir: string, info: ShardInfo, verify: boolean): Uint8Array {
  const file = join(dir, info.file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    throw new KdError('dataset-missing-shard', `${file}: listed in the manifest but cannot be read; rebuild the dataset`);
  }
  if (bytes.byteLength !== info.bytes) {
    throw new KdError('dataset-corrupt', `${file}: ${bytes.byteLength} bytes, the manifest says ${info.bytes} (truncated or replaced); rebuild the dataset`);
  }
  if (verify) {
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== info.sha256) throw new KdError('dataset-corrupt', `${file}: sha256 checksum mismatch (${sha.slice(0, 12)}…, the manifest says ${info.sha256.slice(0, 12)}…); the shard is corrupted — rebuild the dataset`);
  }
  return bytes;
}

/** Opens a shard's Arrow file (size, optionally sha256, footer, schema and batch count checked). */
export function openShard(dir: string, info: ShardInfo, tokenizerHash: string, verify: boolean): RecordBatchFileReader {
  const file = join(dir, info.file);
  const bytes = readShardBytes(dir, info, verify);
  let reader: RecordBatchFileReader;
  try {
    const r = RecordBatchFileReader.from(bytes);
    if (!(r instanceof RecordBatchFileReader)) throw new Error('no Arrow file footer');
    reader = r.open();
  } catch (e) {
    throw new KdError('dataset-corrupt', `${file}: not a readable Arrow IPC file (${(e as Error).message}); rebuild the dataset`);
  }
  const { version, idBits: bits } = checkDatasetSchema(reader.schema, file, tokenizerHash);
  (reader as RecordBatchFileReader & { kdVersion?: number; kdIdBits?: number }).kdVersion = version;
  (reader as RecordBatchFileReader & { kdVersion?: number; kdIdBits?: number }).kdIdBits = bits;
  if (reader.numRecordBatches !== info.batches) throw new KdError('dataset-corrupt', `${file}: ${reader.numRecordBatches} record batches, the manifest says ${info.batches}`);
  return reader;
}

/**
 * Loads a shard: every record batch as flat buffers, each token id (inputs and teacher top-k) checked
 * against the vocabulary: a shard that passes its checksum can still hold ids the tokenizer lacks.
 */
export function loadShard(dir: string, info: ShardInfo, tokenizerHash: string, verify: boolean, vocabSize: number): ShardBatch[] {
  const reader = openShard(dir, info, tokenizerHash, verify) as RecordBatchFileReader & { kdVersion: number; kdIdBits: number };
  const out: ShardBatch[] = [];
  for (let i = 0; i < reader.numRecordBatches; i++) {
    const rb = reader.readRecordBatch(i);
    const where = `${join(dir, info.file)}: record batch ${i}`;
    if (!rb) throw new KdError('dataset-corrupt', `${where} cannot be read`);
    const b = reader.kdVersion === 1 ? flatBatch(rb) : flatBatchV2(rb, reader.kdIdBits, where);
    checkIds(b, rb, vocabSize, where);
    out.push(b);
  }
  return out;
}

function checkIds(b: ShardBatch, rb: RecordBatch, V: number, where: string): void {
  const bad = (arr: Uint16Array) => { for (let i = 0; i < arr.length; i++) if (arr[i] >= V) return i; return -1; };
  const rowOf = (offsets: Int32Array, i: number) => { let r = 0; while (r + 1 < offsets.length - 1 && offsets[r + 1] <= i) r++; return r; };
  const fail = (row: number, what: string, id: number) => {
    const inputId = rb.getChild('input_id')?.get(row) as string | undefined;
    throw new KdError('dataset-corrupt', `${where}, row ${row}${inputId !== undefined ? ` (input_id ${JSON.stringify(inputId)})` : ''}: ${what} ${id} is outside the vocabulary (${V} tokens); rebuild the dataset`);
  };
  const i = bad(b.ids);
  if (i >= 0) fail(rowOf(b.idOff, i), 'token id', b.ids[i]);
  const j = bad(b.topIds);
  if (j >= 0) {
    let pos = 0; // the labelled position holding entry j, then its row
    while (pos + 1 < b.topOff.length - 1 && b.topOff[pos + 1] <= j) pos++;
    fail(rowOf(b.labOff, pos), 'teacher top-k id', b.topIds[j]);
  }
}

const column = (rb: RecordBatch, name: string): Data => {
  const d = rb.getChild(name)!.data;
  if (d.length !== 1 || d[0].offset !== 0) throw new Error(`unexpected chunking of column ${name}`);
  return d[0];
};

function flatBatch(rb: RecordBatch): ShardBatch {
  const col = (name: string) => column(rb, name);
  const ids = col('ids'), mask = col('mask'), ti = col('top_ids'), tl = col('top_logprobs');
  const R = rb.numRows;
  const lp16 = tl.children[0].children[0].values as Uint16Array;
  const topLogprobs = new Float32Array(lp16.length);
  for (let v = 0; v < lp16.length; v++) topLogprobs[v] = FLOAT16_TABLE[lp16[v]];
  return {
    rows: R,
    idOff: ids.valueOffsets.subarray(0, R + 1),
    ids: ids.children[0].values as Uint16Array,
    mask: mask.children[0].values as Uint8Array,
    targetFrom: col('target_from').values as Int32Array,
    labOff: ti.valueOffsets.subarray(0, R + 1),
    topOff: ti.children[0].valueOffsets,
    topIds: ti.children[0].children[0].values as Uint16Array,
    topLogprobs,
  };
}

/** A version-2 record batch decoded to the same flat arrays (ids unpacked, log-probs decoded). */
function flatBatchV2(rb: RecordBatch, bits: number, where: string): ShardBatch {
  const col = (name: string) => column(rb, name);
  const ids = col('ids'), mask = col('mask'), tc = col('top_counts'), tb = col('top_best'), ti = col('top_ids'), tl = col('top_lp8');
  const R = rb.numRows;
  const labOff = tc.valueOffsets.subarray(0, R + 1) as Int32Array;
  const counts = tc.children[0].values as Uint8Array, best = tb.children[0].values as Uint16Array, codes = tl.children[0].values as Uint8Array;
  const packOff = ti.valueOffsets as Int32Array, packed = ti.values as Uint8Array, codeOff = tl.valueOffsets as Int32Array;
  const nLab = labOff[R];
  const bad = (r: number, what: string) => {
    const inputId = rb.getChild('input_id')?.get(r) as string | undefined;
    return new KdError('dataset-corrupt', `${where}, row ${r}${inputId !== undefined ? ` (input_id ${JSON.stringify(inputId)})` : ''}: ${what}; rebuild the dataset`);
  };
  const bOff = tb.valueOffsets as Int32Array;
  const topOff = new Int32Array(nLab + 1);
  for (let j = 0; j < nLab; j++) topOff[j + 1] = topOff[j] + counts[j];
  const nTop = topOff[nLab];
  const topIds = new Uint16Array(nTop), topLogprobs = new Float32Array(nTop);
  for (let r = 0; r < R; r++) {
    const j0 = labOff[r], j1 = labOff[r + 1], e0 = topOff[j0], n = topOff[j1] - e0;
    if (bOff[r] !== j0 || bOff[r + 1] !== j1) throw bad(r, `top_best has ${bOff[r + 1] - bOff[r]} values for ${j1 - j0} labelled positions`);
    if (codeOff[r + 1] - codeOff[r] !== n - (j1 - j0)) throw bad(r, `top_lp8 has ${codeOff[r + 1] - codeOff[r]} codes, expected ${n - (j1 - j0)}`);
    if (packOff[r + 1] - packOff[r] !== packedBytes(n, bits)) throw bad(r, `top_ids holds ${packOff[r + 1] - packOff[r]} bytes, expected ${packedBytes(n, bits)} for ${n} ids of ${bits} bits`);
    unpackIds(packed, packOff[r], n, bits, topIds, e0);
    for (let j = j0, c = codeOff[r]; j < j1; j++) {
      const k = counts[j];
      if (k === 0) throw bad(r, 'a labelled position with no top-k entries');
      decodeLp8(best[j], codes, c, k, topLogprobs, topOff[j]);
      c += k - 1;
    }
  }
  return {
    rows: R,
    idOff: ids.valueOffsets.subarray(0, R + 1) as Int32Array,
    ids: ids.children[0].values as Uint16Array,
    mask: mask.children[0].values as Uint8Array,
    targetFrom: col('target_from').values as Int32Array,
    labOff, topOff, topIds, topLogprobs,
  };
}
