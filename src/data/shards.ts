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
import { DATASET_FIELDS, type Sequence, type ShardInfo, type Split, checkDatasetSchema, datasetSchema, shardName } from '../schema/dataset.js';
import { toFloat16Bits } from '../schema/float16.js';

export interface ShardWriterOptions {
  /** a shard is closed once its record batches reach this many bytes */
  shardBytes: number;
  /** a record batch is closed once it holds this many positions */
  batchTokens?: number;
}

const fieldType = (name: string): DataType => DATASET_FIELDS.find((f) => f.name === name)!.type;
const childType = (t: DataType): DataType => (t.children as Field[])[0].type;

function listData(type: DataType, offsets: Int32Array, child: Data): Data {
  return makeData({ type, length: offsets.length - 1, nullCount: 0, valueOffsets: offsets, child } as never);
}

/** Sequences → one record batch with flat typed buffers (no per-value builder calls). */
export function sequencesBatch(split: Split, tokenizerHash: string, seqs: readonly Sequence[]): RecordBatch {
  const schema = datasetSchema(split, tokenizerHash);
  const R = seqs.length;
  const idOff = new Int32Array(R + 1), labOff = new Int32Array(R + 1);
  for (let s = 0; s < R; s++) {
    idOff[s + 1] = idOff[s] + seqs[s].ids.length;
    labOff[s + 1] = labOff[s] + seqs[s].topCounts.length;
  }
  const ids = new Uint16Array(idOff[R]), mask = new Uint8Array(idOff[R]), targetFrom = new Int32Array(R);
  const topOff = new Int32Array(labOff[R] + 1);
  let nTop = 0;
  for (const q of seqs) for (const c of q.topCounts) nTop += c;
  const topIds = new Uint16Array(nTop), topLp = new Uint16Array(nTop);
  const names = seqs.map((q) => Buffer.from(q.inputId, 'utf8'));
  const nameOff = new Int32Array(R + 1);
  names.forEach((b, s) => { nameOff[s + 1] = nameOff[s] + b.length; });
  let l = 0, v = 0;
  seqs.forEach((q, s) => {
    ids.set(q.ids, idOff[s]);
    mask.set(q.mask, idOff[s]);
    targetFrom[s] = q.targetFrom;
    for (const c of q.topCounts) { topOff[l + 1] = topOff[l] + c; l++; }
    for (let k = 0; k < q.topIds.length; k++, v++) {
      topIds[v] = q.topIds[k];
      topLp[v] = toFloat16Bits(q.topLogprobs[k]);
    }
  });
  const t = (n: string) => fieldType(n);
  const children = [
    makeData({ type: t('input_id'), length: R, nullCount: 0, valueOffsets: nameOff, data: Buffer.concat(names) } as never),
    listData(t('ids'), idOff, makeData({ type: childType(t('ids')), length: ids.length, nullCount: 0, data: ids } as never)),
    listData(t('mask'), idOff, makeData({ type: childType(t('mask')), length: mask.length, nullCount: 0, data: mask } as never)),
    makeData({ type: t('target_from'), length: R, nullCount: 0, data: targetFrom } as never),
    listData(t('top_ids'), labOff, listData(childType(t('top_ids')), topOff, makeData({ type: childType(childType(t('top_ids'))), length: nTop, nullCount: 0, data: topIds } as never))),
    listData(t('top_logprobs'), labOff, listData(childType(t('top_logprobs')), topOff, makeData({ type: childType(childType(t('top_logprobs'))), length: nTop, nullCount: 0, data: topLp } as never))),
  ];
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: R, nullCount: 0, children }));
}

/** Writes one split's shards: `split-00000.arrow`, … into `dir`. */
export class ShardWriter {
  readonly shards: ShardInfo[] = [];
  private pending: Sequence[] = [];
  private pendingTokens = 0;
  private writer: RecordBatchFileWriter | null = null;
  private cur = { bytes: 0, batches: 0, sequences: 0, tokens: 0, labelled: 0 };

  constructor(readonly dir: string, readonly split: Split, readonly tokenizerHash: string, readonly o: ShardWriterOptions) {}

  add(q: Sequence): void {
    this.pending.push(q);
    this.pendingTokens += q.ids.length;
    if (this.pendingTokens >= (this.o.batchTokens ?? 16384)) this.flushBatch();
  }

  private flushBatch(): void {
    if (this.pending.length === 0) return;
    const rb = sequencesBatch(this.split, this.tokenizerHash, this.pending);
    this.writer ??= new RecordBatchFileWriter();
    this.writer.write(rb);
    this.cur.batches++;
    this.cur.bytes += rb.data.byteLength;
    this.cur.sequences += this.pending.length;
    this.cur.tokens += this.pendingTokens;
    for (const q of this.pending) this.cur.labelled += q.topCounts.length;
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
    const { bytes: _estimate, ...counts } = this.cur;
    this.shards.push({ file, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.byteLength, ...counts });
    this.writer = null;
    this.cur = { bytes: 0, batches: 0, sequences: 0, tokens: 0, labelled: 0 };
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
  /** float16 bits */
  topLp: Uint16Array;
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
  checkDatasetSchema(reader.schema, file, tokenizerHash);
  if (reader.numRecordBatches !== info.batches) throw new KdError('dataset-corrupt', `${file}: ${reader.numRecordBatches} record batches, the manifest says ${info.batches}`);
  return reader;
}

/**
 * Loads a shard: every record batch as flat buffers, each token id (inputs and teacher top-k) checked
 * against the vocabulary: a shard that passes its checksum can still hold ids the tokenizer lacks.
 */
export function loadShard(dir: string, info: ShardInfo, tokenizerHash: string, verify: boolean, vocabSize: number): ShardBatch[] {
  const reader = openShard(dir, info, tokenizerHash, verify);
  const out: ShardBatch[] = [];
  for (let i = 0; i < reader.numRecordBatches; i++) {
    const rb = reader.readRecordBatch(i);
    if (!rb) throw new KdError('dataset-corrupt', `${join(dir, info.file)}: record batch ${i} cannot be read`);
    const b = flatBatch(rb);
    checkIds(b, rb, vocabSize, `${join(dir, info.file)}: record batch ${i}`);
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

function flatBatch(rb: RecordBatch): ShardBatch {
  const col = (name: string) => {
    const d = rb.getChild(name)!.data;
    if (d.length !== 1 || d[0].offset !== 0) throw new Error(`unexpected chunking of column ${name}`);
    return d[0];
  };
  const ids = col('ids'), mask = col('mask'), ti = col('top_ids'), tl = col('top_logprobs');
  const R = rb.numRows;
  return {
    rows: R,
    idOff: ids.valueOffsets.subarray(0, R + 1),
    ids: ids.children[0].values as Uint16Array,
    mask: mask.children[0].values as Uint8Array,
    targetFrom: col('target_from').values as Int32Array,
    labOff: ti.valueOffsets.subarray(0, R + 1),
    topOff: ti.children[0].valueOffsets,
    topIds: ti.children[0].children[0].values as Uint16Array,
    topLp: tl.children[0].children[0].values as Uint16Array,
  };
}
