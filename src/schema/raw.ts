/**
 * The raw teacher-output format written by `kd collect` and read by `kd dataset build`.
 *
 * One row per teacher answer (one choice of a chat completion, or one scored chunk of a text), in
 * Arrow IPC *stream* shards (`raw-00001.arrows`). Column names are snake_case and mirror
 * {@link RawRecord} one to one. Positions are the tokens of the answer (chat) or of the scored text
 * (score); per position the teacher's top-k alternatives are kept in server order (best first).
 *
 * Conventions:
 * - log-probs are natural logs (Float32); `null` where the server gave none (the first position of
 *   an echo) or gave the sentinel -9999 ("outside the top 20", or vLLM's clamped -inf).
 * - bytes are the UTF-8 bytes the server reported; `null` where it reported none (we never invent
 *   them from the token string: a token can hold part of a character).
 * - top_ids only when the API names token ids (vLLM prompt_logprobs); otherwise the column is null.
 * - text offsets are in Unicode code points (what Python servers report) into the row's whole text.
 * - usage (prompt/completion/cached tokens) is per response: it sits on choice 0, null on the others.
 * - score mode: a long text is scored in overlapping chunks (one record each). Tokens of a chunk
 *   whose text offset is below `score_from` are left context already scored by the previous chunk;
 *   a reader keeps, per text, the tokens at offsets ≥ score_from of each chunk.
 *
 * Schema metadata carries `kd.format` = {@link RAW_FORMAT} and `kd.format_version`; readers refuse
 * anything else.
 */
import {
  AsyncByteQueue, Binary, Field, Float32, Float64, Int32, List, Message, MessageHeader, RecordBatch,
  RecordBatchStreamReader, RecordBatchStreamWriter, Schema, Struct, Utf8, makeData,
} from 'apache-arrow';
import type { Data, DataType } from 'apache-arrow';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { KdError } from '../core/errors.js';

export const RAW_FORMAT = 'kd-raw';
export const RAW_FORMAT_VERSION = 1;

export type RawMode = 'chat' | 'score';

/** One teacher answer; field names are the Arrow column names. */
export interface RawRecord {
  input_id: string;
  request_hash: string;
  mode: RawMode;
  /** Which choice of the response (chat with n > 1); 0 otherwise. */
  choice_index: number;
  /** Score mode splits long texts into overlapping chunks: this one's index and their count. */
  chunk_index: number;
  chunk_count: number;
  /** Score mode: code-point offset of this chunk in the row's text, and where its new (non-overlap) text starts. */
  chunk_start: number | null;
  score_from: number | null;
  tokens: (string | null)[];
  token_bytes: (Uint8Array | null)[];
  token_logprobs: (number | null)[];
  /** Per position: alternatives' token ids (null when the API gives none), strings, bytes, log-probs. */
  top_ids: (number[] | null)[] | null;
  top_tokens: (string[] | null)[];
  top_bytes: ((Uint8Array | null)[] | null)[];
  top_logprobs: ((number | null)[] | null)[];
  text_offsets: (number | null)[] | null;
  finish_reason: string | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  cached_tokens: number | null;
  model: string | null;
  system_fingerprint: string | null;
  latency_ms: number;
  attempts: number;
  /** Unix time in ms when the response arrived. */
  completed_at: number;
  /**
   * Chat: the request's messages as plain text ({@link renderPrompt}); null in score mode. Added
   * after version 1 shipped, so shards without the column still read; absent when null.
   */
  prompt?: string | null;
}

const list = (t: DataType, nullable = true) => new List(new Field('item', t, nullable));

export const RAW_FIELDS: Field[] = [
  new Field('input_id', new Utf8(), false),
  new Field('request_hash', new Utf8(), false),
  new Field('mode', new Utf8(), false),
  new Field('choice_index', new Int32(), false),
  new Field('chunk_index', new Int32(), false),
  new Field('chunk_count', new Int32(), false),
  new Field('chunk_start', new Int32(), true),
  new Field('score_from', new Int32(), true),
  new Field('tokens', list(new Utf8()), false),
  new Field('token_bytes', list(new Binary()), false),
  new Field('token_logprobs', list(new Float32()), false),
  new Field('top_ids', list(list(new Int32(), false)), true),
  new Field('top_tokens', list(list(new Utf8(), false)), false),
  new Field('top_bytes', list(list(new Binary())), false),
  new Field('top_logprobs', list(list(new Float32())), false),
  new Field('text_offsets', list(new Int32()), true),
  new Field('finish_reason', new Utf8(), true),
  new Field('prompt_tokens', new Int32(), true),
  new Field('completion_tokens', new Int32(), true),
  new Field('cached_tokens', new Int32(), true),
  new Field('model', new Utf8(), true),
  new Field('system_fingerprint', new Utf8(), true),
  new Field('latency_ms', new Float64(), false),
  new Field('attempts', new Int32(), false),
  new Field('completed_at', new Float64(), false),
  new Field('prompt', new Utf8(), true),
];

/** Columns a version-1 shard may lack (read as null). */
const OPTIONAL_COLUMNS = new Set(['prompt']);

/** Chat messages as plain text, one "role: content" line each: "system: …\nuser: …\n". */
export function renderPrompt(messages: unknown): string | null {
  if (!Array.isArray(messages)) return null;
  let out = '';
  for (const m of messages) {
    if (!m || typeof m !== 'object') continue;
    const { role, content } = m as { role?: unknown; content?: unknown };
    const text = typeof content === 'string' ? content
      : Array.isArray(content) ? content.map((p) => (p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('')
        : '';
    out += `${typeof role === 'string' ? role : 'user'}: ${text}\n`;
  }
  return out;
}

/** The schema of a raw shard; `extra` metadata (mode, model, top_k…) is informational. */
export function rawSchema(extra: Record<string, string> = {}): Schema {
  const meta = new Map<string, string>([
    ['kd.format', RAW_FORMAT],
    ['kd.format_version', String(RAW_FORMAT_VERSION)],
    ...Object.entries(extra),
  ]);
  return new Schema(RAW_FIELDS, meta);
}

/** Refuses a schema that is not this format and version; names the file. */
export function checkRawSchema(schema: Schema, file: string): void {
  const format = schema.metadata.get('kd.format');
  const version = schema.metadata.get('kd.format_version');
  if (format !== RAW_FORMAT) {
    throw new KdError('raw-format', `${file}: not a kd raw shard (kd.format is ${JSON.stringify(format ?? null)}, expected "${RAW_FORMAT}")`);
  }
  if (version !== String(RAW_FORMAT_VERSION)) {
    throw new KdError('raw-version', `${file}: raw format version ${version} is not supported (this kd reads version ${RAW_FORMAT_VERSION}); re-collect or upgrade kd`);
  }
  for (const f of RAW_FIELDS) {
    if (!OPTIONAL_COLUMNS.has(f.name) && !schema.fields.some((g) => g.name === f.name)) {
      throw new KdError('raw-schema', `${file}: column "${f.name}" is missing`);
    }
  }
}

/**
 * Builds one record batch from records. Columns are encoded straight into Arrow buffers (offsets,
 * values, validity bitmaps) — several times faster than apache-arrow's generic row builders, which
 * matters at hundreds of responses per second with 20 alternatives per token.
 */
export function rawBatch(schema: Schema, records: readonly RawRecord[]): RecordBatch {
  const children = schema.fields.map((f) => encodeColumn(f.type, records.map((r) => (r as unknown as Record<string, unknown>)[f.name])));
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: records.length, nullCount: 0, children }));
}

function validity(values: readonly unknown[]): { nullCount: number; nullBitmap: Uint8Array | undefined } {
  let nullCount = 0;
  for (const v of values) if (v === null || v === undefined) nullCount++;
  if (nullCount === 0) return { nullCount, nullBitmap: undefined };
  const bitmap = new Uint8Array((values.length + 7) >> 3);
  for (let i = 0; i < values.length; i++) if (values[i] !== null && values[i] !== undefined) bitmap[i >> 3]! |= 1 << (i & 7);
  return { nullCount, nullBitmap: bitmap };
}

/** UTF-8 length of a string: its length when it is ASCII (the common case), else Buffer.byteLength. */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

/**
 * Variable-length values (Utf8 or Binary) into one data buffer. Short ASCII strings and short byte
 * arrays are copied by hand: a native call per token (Buffer.write, set) costs more than the copy.
 */
function encodeVarBinary(values: readonly unknown[], offsets: Int32Array): Buffer {
  const length = values.length;
  let total = 0;
  for (let i = 0; i < length; i++) {
    const v = values[i] as string | Uint8Array | null | undefined;
    if (v !== null && v !== undefined) total += typeof v === 'string' ? utf8Length(v) : v.byteLength;
    offsets[i + 1] = total;
  }
  const data = Buffer.allocUnsafeSlow(total);
  for (let i = 0; i < length; i++) {
    const v = values[i] as string | Uint8Array | null | undefined;
    if (v === null || v === undefined) continue;
    const at = offsets[i]!;
    const n = offsets[i + 1]! - at;
    if (typeof v === 'string') {
      if (n === v.length && n <= 32) for (let j = 0; j < n; j++) data[at + j] = v.charCodeAt(j);
      else data.write(v, at, n, 'utf8');
    } else if (n <= 32) {
      for (let j = 0; j < n; j++) data[at + j] = v[j]!;
    } else {
      data.set(v, at);
    }
  }
  return data;
}

/** Encodes plain values (string | Uint8Array | number | arrays | null) as Arrow data of `type`. */
export function encodeColumn(type: DataType, values: readonly unknown[]): Data {
  const length = values.length;
  const { nullCount, nullBitmap } = validity(values);
  if (type instanceof Utf8 || type instanceof Binary) {
    const offsets = new Int32Array(length + 1);
    const data = encodeVarBinary(values, offsets);
    return makeData({ type, length, nullCount, nullBitmap, valueOffsets: offsets, data } as never);
  }
  if (type instanceof Int32 || type instanceof Float32 || type instanceof Float64) {
    const data = type instanceof Int32 ? new Int32Array(length) : type instanceof Float32 ? new Float32Array(length) : new Float64Array(length);
    for (let i = 0; i < length; i++) data[i] = (values[i] as number | null) ?? 0;
    return makeData({ type, length, nullCount, nullBitmap, data } as never);
  }
  if (type instanceof List) {
    const offsets = new Int32Array(length + 1);
    const flat: unknown[] = [];
    for (let i = 0; i < length; i++) {
      const v = values[i] as unknown[] | null | undefined;
      if (v) for (let j = 0; j < v.length; j++) flat.push(v[j]);
      offsets[i + 1] = flat.length;
    }
    const child = encodeColumn(type.children[0]!.type, flat);
    return makeData({ type, length, nullCount, nullBitmap, valueOffsets: offsets, child } as never);
  }
  throw new Error(`encodeColumn: no encoder for ${String(type)}`);
}

/** Collects what the Arrow writer emits so each batch's bytes can be written synchronously. */
class SyncSink extends AsyncByteQueue<Uint8Array> {
  private chunks: Uint8Array[] = [];
  override write(value: Uint8Array | ArrayBufferView): void {
    const v = value instanceof Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    if (v.byteLength > 0) this.chunks.push(v);
  }
  drain(): Uint8Array {
    const out = Buffer.concat(this.chunks);
    this.chunks = [];
    return out;
  }
}

/** End-of-stream marker: continuation token then a zero length. */
export const IPC_EOS = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/**
 * Encodes a raw stream piece by piece: `start()` gives the schema message, `batch()` one record
 * batch message, `end()` the end-of-stream marker. The bytes are the caller's to write.
 */
export class RawStreamEncoder {
  private readonly sink = new SyncSink();
  private readonly writer = new RecordBatchStreamWriter({ autoDestroy: false });
  constructor(readonly schema: Schema) {}
  start(): Uint8Array {
    this.writer.reset(this.sink, this.schema);
    return this.sink.drain();
  }
  batch(records: readonly RawRecord[]): Uint8Array {
    this.writer.write(rawBatch(this.schema, records));
    return this.sink.drain();
  }
  end(): Uint8Array {
    return IPC_EOS;
  }
}

export interface IpcScan {
  /** Byte length of the schema message plus every complete message after it. */
  completeBytes: number;
  recordBatches: number;
  /** True when the stream ends with the end-of-stream marker right after complete messages. */
  hasEos: boolean;
  /** Bytes after the last complete message (a torn tail), excluding a well-formed EOS. */
  tornBytes: number;
}

/**
 * Walks the framing of an Arrow IPC stream (continuation, metadata length, flatbuffer, body) without
 * decoding the data, to find where the last complete message ends. A stream cut anywhere — even
 * inside the 8-byte prefix — is detected.
 */
export function scanIpcStream(bytes: Uint8Array): IpcScan {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  let batches = 0;
  let sawSchema = false;
  for (;;) {
    if (pos + 8 > bytes.byteLength) break;
    let metaLen = view.getInt32(pos, true);
    let prefix = 4;
    if (metaLen === -1) {
      metaLen = view.getInt32(pos + 4, true);
      prefix = 8;
    }
    if (metaLen === 0) {
      const tail = bytes.byteLength - (pos + prefix);
      return { completeBytes: sawSchema ? pos : 0, recordBatches: batches, hasEos: sawSchema && tail === 0, tornBytes: sawSchema ? tail : bytes.byteLength };
    }
    if (metaLen < 0 || pos + prefix + metaLen > bytes.byteLength) break;
    let message: Message;
    try {
      message = Message.decode(bytes.subarray(pos + prefix, pos + prefix + metaLen));
    } catch {
      break;
    }
    const end = pos + prefix + metaLen + Number(message.bodyLength);
    if (end > bytes.byteLength) break;
    if (!sawSchema) {
      if (message.headerType !== MessageHeader.Schema) break;
      sawSchema = true;
    } else if (message.headerType === MessageHeader.RecordBatch) {
      batches++;
    }
    pos = end;
  }
  return { completeBytes: sawSchema ? pos : 0, recordBatches: batches, hasEos: false, tornBytes: bytes.byteLength - (sawSchema ? pos : 0) };
}

function toRecord(row: Record<string, unknown>): RawRecord {
  const out: Record<string, unknown> = {};
  for (const f of RAW_FIELDS) {
    const v = toPlain(row[f.name]);
    // an optional column reads as absent when null, so version-1 records round-trip unchanged
    if (!(OPTIONAL_COLUMNS.has(f.name) && v == null)) out[f.name] = v;
  }
  return out as unknown as RawRecord;
}

/** Arrow vectors → plain arrays (Binary stays Uint8Array; Float32 values become numbers). */
function toPlain(v: unknown): unknown {
  if (v == null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return new Uint8Array(v);
  const iterable = v as { [Symbol.iterator]?: () => Iterator<unknown>; toArray?: () => unknown };
  if (typeof iterable.toArray === 'function' && typeof iterable[Symbol.iterator] === 'function') {
    return Array.from(iterable as Iterable<unknown>, toPlain);
  }
  return v;
}

/**
 * Reads the complete record batches of a raw shard held in memory, checking its format. A torn tail
 * (a writer killed mid-batch) is ignored: only complete batches are returned.
 */
export function readRawBytes(bytes: Uint8Array, file: string): { schema: Schema; records: RawRecord[]; scan: IpcScan } {
  const scan = scanIpcStream(bytes);
  if (scan.completeBytes === 0) {
    throw new KdError('raw-format', `${file}: no Arrow IPC stream schema found (empty or not a raw shard)`);
  }
  const complete = Buffer.concat([bytes.subarray(0, scan.completeBytes), IPC_EOS]);
  const reader = RecordBatchStreamReader.from(complete);
  reader.open();
  const schema = reader.schema; // the reader forgets it once drained
  checkRawSchema(schema, file);
  const records: RawRecord[] = [];
  for (const batch of reader) {
    for (const row of batch) records.push(toRecord(row as unknown as Record<string, unknown>));
  }
  return { schema, records, scan };
}

/** Reads some columns of the complete batches (the cheap scan used by resume). */
export function readRawColumns<K extends keyof RawRecord>(bytes: Uint8Array, file: string, columns: readonly K[]): { [C in K]: RawRecord[C][] } {
  const scan = scanIpcStream(bytes);
  if (scan.completeBytes === 0) throw new KdError('raw-format', `${file}: no Arrow IPC stream schema found`);
  const reader = RecordBatchStreamReader.from(Buffer.concat([bytes.subarray(0, scan.completeBytes), IPC_EOS]));
  reader.open();
  checkRawSchema(reader.schema, file);
  const out = Object.fromEntries(columns.map((c) => [c, [] as unknown[]])) as Record<K, unknown[]>;
  for (const batch of reader) {
    for (const c of columns) {
      const col = batch.getChild(c);
      if (col) for (const v of col) out[c].push(toPlain(v));
    }
  }
  return out as { [C in K]: RawRecord[C][] };
}

/** Raw shard file names: `raw-00001.arrows` (complete) and `.arrows.partial` (being written). */
export const RAW_SHARD_RE = /^raw-(\d{5,})\.arrows(\.partial)?$/;

export function rawShardName(index: number, partial = false): string {
  return `raw-${String(index).padStart(5, '0')}.arrows${partial ? '.partial' : ''}`;
}

/** Reads every record of one shard file (complete batches only), checking the format. */
export function readRawShard(file: string): RawRecord[] {
  return readRawBytes(readFileSync(file), file).records;
}

/** The complete shards of a raw directory, in order (in-progress `.partial` shards excluded). */
export function listRawShards(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => RAW_SHARD_RE.test(f) && !f.endsWith('.partial'))
    .sort()
    .map((f) => join(dir, f));
}

/** Every record of a raw directory's complete shards. */
export function* readRawDir(dir: string): Generator<RawRecord> {
  for (const f of listRawShards(dir)) yield* readRawShard(f);
}
