/**
 * `kd dataset export`: a plain-typed copy of a built dataset (or of a raw directory) for tools that
 * do not read kd's own shards — polars (whose JS binding cannot hand over float16 or binary
 * columns), DuckDB (which reads Arrow IPC only through an extension it downloads), pandas/pyarrow,
 * Rust's arrow/parquet crates.
 *
 * One output file per source shard, named after it (`train-00000.parquet`, `raw-00001.parquet`, or
 * `.arrow` for Arrow IPC files), so memory stays bounded by one shard and readers glob the split.
 * Column names stay the source's; only types change:
 * - log-probs → float32 (natural logs, decoded through the dataset reader, so any stored precision)
 * - token ids (student ids, teacher top-k ids) → int32; `mask` stays uint8 (0/1)
 * - bytes (raw `token_bytes`, `top_bytes`) → lists of uint8, one per token (null stays null)
 * A dataset's export also gets its tokenizer.json (the ids mean nothing without it) and export.json
 * (source, format, files); the schema metadata names the source format and split.
 *
 * Parquet is written by parquet-wasm (arrow-rs compiled to wasm; zstd-compressed), Arrow IPC by
 * apache-arrow. Reads go through {@link loadShard} / {@link readRawRecords}, the same readers as
 * kd train and kd dataset build, so an export follows whatever the shards store.
 */
import {
  Binary, Field, Float32, Int32, List, RecordBatch, Schema, Struct, Table, Uint8, Utf8,
  makeData, tableFromIPC, tableToIPC,
} from 'apache-arrow';
import type { Data, DataType } from 'apache-arrow';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { writeJsonAtomic } from '../core/atomic.js';
import { KdError } from '../core/errors.js';
import { DATASET_FORMAT, DATASET_MANIFEST, DATASET_TOKENIZER, SPLITS, type Split } from '../schema/dataset.js';
import { FLOAT16_TABLE } from '../schema/float16.js';
import { RAW_FIELDS, RAW_FORMAT, type RawRecord, encodeColumn, listRawShards } from '../schema/raw.js';
import { KD_VERSION } from '../core/version.js';
import { openDataset } from '../data/dataset.js';
import { readRawRecords } from './raw-columns.js';
import { type ShardBatch, loadShard, openShard } from '../data/shards.js';
import { EXPORT_FORMATS, type ExportFormat } from './options.js';

export { EXPORT_FORMATS, type ExportFormat };
export const EXPORT_MANIFEST = 'export.json';

export interface ExportOptions {
  /** a dataset directory (manifest.json) or a raw directory (raw-*.arrows shards) */
  from: string;
  out: string;
  format: ExportFormat;
  force?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface ExportedFile {
  file: string;
  /** the source shard it was made from */
  source: string;
  split?: Split;
  rows: number;
  bytes: number;
}

export interface ExportSummary {
  from: string;
  out: string;
  format: ExportFormat;
  /** what `from` is: a built dataset or kd collect's raw shards */
  kind: 'dataset' | 'raw';
  kdVersion: string;
  createdAt: string;
  columns: { name: string; type: string }[];
  files: ExportedFile[];
  seconds: number;
}

const ext = (f: ExportFormat) => (f === 'parquet' ? '.parquet' : '.arrow');
const EXPORT_FILE_RE = /^(train|val|raw)-\d{5,}\.(parquet|arrow)$/;

const list = (t: DataType, nullable = false) => new List(new Field('item', t, nullable));

/** The exported columns of a dataset: the shard columns with plain types. */
export const DATASET_EXPORT_FIELDS: Field[] = [
  new Field('input_id', new Utf8(), false),
  new Field('ids', list(new Int32()), false),
  new Field('mask', list(new Uint8()), false),
  new Field('target_from', new Int32(), false),
  new Field('top_ids', list(list(new Int32())), false),
  new Field('top_logprobs', list(list(new Float32())), false),
];

/** A raw column's exported type: Binary → list<uint8>, everything else as it is. */
function plainType(t: DataType): DataType {
  if (t instanceof Binary) return list(new Uint8());
  if (t instanceof List) {
    const f = t.children[0] as Field;
    return new List(new Field(f.name, plainType(f.type), f.nullable));
  }
  return t;
}

export const RAW_EXPORT_FIELDS: Field[] = RAW_FIELDS.map((f) => new Field(f.name, plainType(f.type), f.nullable));

function validity(values: readonly unknown[]): { nullCount: number; nullBitmap: Uint8Array | undefined } {
  let nullCount = 0;
  for (const v of values) if (v == null) nullCount++;
  if (nullCount === 0) return { nullCount, nullBitmap: undefined };
  const nullBitmap = new Uint8Array((values.length + 7) >> 3);
  for (let i = 0; i < values.length; i++) if (values[i] != null) nullBitmap[i >> 3] |= 1 << (i & 7);
  return { nullCount, nullBitmap };
}

/** Plain values → Arrow data of an exported type; a list<uint8> takes Uint8Array values (the raw bytes). */
function encodePlain(type: DataType, values: readonly unknown[]): Data {
  if (!(type instanceof List)) return encodeColumn(type, values);
  const length = values.length;
  const { nullCount, nullBitmap } = validity(values);
  const offsets = new Int32Array(length + 1);
  const childType = (type.children[0] as Field).type;
  let child: Data;
  if (childType instanceof Uint8) {
    let total = 0;
    for (let i = 0; i < length; i++) {
      total += (values[i] as Uint8Array | null)?.byteLength ?? 0;
      offsets[i + 1] = total;
    }
    const data = new Uint8Array(total);
    for (let i = 0; i < length; i++) if (values[i] != null) data.set(values[i] as Uint8Array, offsets[i]);
    child = makeData({ type: childType, length: total, nullCount: 0, data } as never);
  } else {
    const flat: unknown[] = [];
    for (let i = 0; i < length; i++) {
      const v = values[i] as unknown[] | null;
      if (v) for (const x of v) flat.push(x);
      offsets[i + 1] = flat.length;
    }
    child = encodePlain(childType, flat);
  }
  return makeData({ type, length, nullCount, nullBitmap, valueOffsets: offsets, child } as never);
}

const listData = (type: DataType, offsets: Int32Array, child: Data): Data =>
  makeData({ type, length: offsets.length - 1, nullCount: 0, valueOffsets: offsets, child } as never);

/** One record batch of a dataset shard (flat buffers from the loader) → a plain-typed record batch. */
export function datasetBatch(schema: Schema, b: ShardBatch, inputIds: readonly string[]): RecordBatch {
  const R = b.rows;
  const t = (n: string) => schema.fields.find((f) => f.name === n)!.type;
  const child = (d: DataType) => (d.children[0] as Field).type;
  const nTop = b.topOff[b.labOff[R]];
  const lp = Float32Array.from(b.topLogprobs.subarray(0, nTop)); // decoded by the loader (format v1 float16, v2 8-bit)
  const idOff = Int32Array.from(b.idOff), labOff = Int32Array.from(b.labOff), topOff = Int32Array.from(b.topOff.subarray(0, b.labOff[R] + 1));
  const nIds = idOff[R];
  const names = inputIds.map((s) => Buffer.from(s, 'utf8'));
  const nameOff = new Int32Array(R + 1);
  names.forEach((x, s) => { nameOff[s + 1] = nameOff[s] + x.length; });
  const children = [
    makeData({ type: t('input_id'), length: R, nullCount: 0, valueOffsets: nameOff, data: Buffer.concat(names) } as never),
    listData(t('ids'), idOff, makeData({ type: child(t('ids')), length: nIds, nullCount: 0, data: Int32Array.from(b.ids.subarray(0, nIds)) } as never)),
    // (own copies of offsets given to two columns: see rowsBatch in data/shards.ts)
    listData(t('mask'), idOff.slice(), makeData({ type: child(t('mask')), length: nIds, nullCount: 0, data: b.mask.slice(0, nIds) } as never)),
    makeData({ type: t('target_from'), length: R, nullCount: 0, data: Int32Array.from(b.targetFrom.subarray(0, R)) } as never),
    listData(t('top_ids'), labOff, listData(child(t('top_ids')), topOff, makeData({ type: child(child(t('top_ids'))), length: nTop, nullCount: 0, data: Int32Array.from(b.topIds.subarray(0, nTop)) } as never))),
    listData(t('top_logprobs'), labOff.slice(), listData(child(t('top_logprobs')), topOff.slice(), makeData({ type: child(child(t('top_logprobs'))), length: nTop, nullCount: 0, data: lp } as never))),
  ];
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: R, nullCount: 0, children }));
}

/** Raw records → one plain-typed record batch. */
export function rawExportBatch(schema: Schema, records: readonly RawRecord[]): RecordBatch {
  const children = schema.fields.map((f) => {
    const values = records.map((r) => {
      const v = (r as unknown as Record<string, unknown>)[f.name];
      return v === undefined ? null : v;
    });
    return encodePlain(f.type, values);
  });
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: records.length, nullCount: 0, children }));
}

type ParquetWasm = typeof import('parquet-wasm/node');
let parquetWasm: ParquetWasm | undefined;
/** parquet-wasm's Node build (CommonJS, instantiates its wasm synchronously on first use). */
function parquet(): ParquetWasm {
  parquetWasm ??= createRequire(import.meta.url)('parquet-wasm/node') as ParquetWasm;
  return parquetWasm;
}

/** A table's bytes in the export format: Parquet (zstd) or an Arrow IPC file. */
export function encodeTable(table: Table, format: ExportFormat): Uint8Array {
  if (format === 'arrow-float32') return tableToIPC(table, 'file');
  const pw = parquet();
  const props = new pw.WriterPropertiesBuilder().setCompression(pw.Compression.ZSTD).build();
  return pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(table, 'stream')), props);
}

/** A Parquet file's bytes → an apache-arrow Table (what the tests read exports back with). */
export function readParquetTable(bytes: Uint8Array): Table {
  return tableFromIPC(parquet().readParquet(bytes).intoIPCStream());
}

function checkFormat(f: string): ExportFormat {
  if (!(EXPORT_FORMATS as readonly string[]).includes(f)) throw new KdError('bad-option', `--format ${JSON.stringify(f)} is not an export format (parquet or arrow-float32)`);
  return f as ExportFormat;
}

/** The kind of source: a dataset (manifest.json) or a raw directory (raw-*.arrows shards). */
function sourceKind(from: string): 'dataset' | 'raw' {
  if (!fs.existsSync(from)) throw new KdError('not-found', `${from}: no such directory (give a dataset directory from kd dataset build, or a raw directory from kd collect)`);
  if (!fs.statSync(from).isDirectory()) throw new KdError('not-a-dataset', `${from}: not a directory (give a dataset directory from kd dataset build, or a raw directory from kd collect)`);
  if (fs.existsSync(path.join(from, DATASET_MANIFEST))) {
    // a raw directory has a manifest.json too (kd collect's): tell them apart by the shards it lists
    if (listRawShards(from).length === 0) return 'dataset';
    try {
      const m = JSON.parse(fs.readFileSync(path.join(from, DATASET_MANIFEST), 'utf8')) as { format?: unknown };
      if (m?.format === DATASET_FORMAT) return 'dataset';
    } catch { /* a raw directory's manifest; the raw reader checks the shards */ }
    return 'raw';
  }
  if (listRawShards(from).length > 0) return 'raw';
  throw new KdError('not-a-dataset', `${from}: neither a dataset (no manifest.json) nor a raw directory (no raw-*.arrows shards)`);
}

/** Refuses to write over something that is not an earlier export (or over one without --force). */
function prepareOut(out: string, from: string, force: boolean): void {
  if (path.resolve(out) === path.resolve(from)) throw new KdError('bad-out', `${out}: --out must not be the source directory`);
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new KdError('bad-out', `${out}: exists and is not a directory`);
  if (!fs.existsSync(out)) return;
  const names = fs.readdirSync(out).filter((n) => !n.startsWith('.'));
  if (names.length === 0) return;
  if (!names.includes(EXPORT_MANIFEST)) throw new KdError('would-overwrite', `${out}: exists, is not empty and holds no ${EXPORT_MANIFEST} (not a kd export); choose another --out`);
  if (!force) throw new KdError('would-overwrite', `${path.join(out, EXPORT_MANIFEST)}: an export already exists in ${out}; pass --force to replace it`);
}

export function exportDataset(o: ExportOptions): ExportSummary {
  const t0 = performance.now();
  const format = checkFormat(o.format);
  const kind = sourceKind(o.from);
  prepareOut(o.out, o.from, Boolean(o.force));
  const created = !fs.existsSync(o.out);
  fs.mkdirSync(o.out, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(o.out, '.kd-export-'));
  const files: ExportedFile[] = [];
  const write = (name: string, source: string, table: Table, split?: Split) => {
    const bytes = encodeTable(table, format);
    fs.writeFileSync(path.join(tmp, name), bytes);
    files.push({ file: name, source, ...(split ? { split } : {}), rows: table.numRows, bytes: bytes.byteLength });
  };
  let fields: Field[];
  try {
    if (kind === 'dataset') {
      const ds = openDataset(o.from);
      const m = ds.manifest;
      fields = DATASET_EXPORT_FIELDS;
      const total = SPLITS.reduce((s, sp) => s + Math.max(1, m.splits[sp].shards.length), 0);
      let done = 0;
      for (const split of SPLITS) {
        const schema = new Schema(fields, new Map([
          ['kd.export_of', DATASET_FORMAT], ['kd.source_version', String(m.version)], ['kd.split', split],
          ['kd.tokenizer_hash', m.tokenizer.hash], ['kd.logprobs', 'natural log, float32'],
        ]));
        const shards = m.splits[split].shards;
        // an empty split still gets one (empty) file, so a glob over the split finds something
        if (shards.length === 0) {
          write(`${split}-00000${ext(format)}`, '', new Table(schema), split);
          o.onProgress?.(++done, total);
        }
        for (const info of shards) {
          const reader = openShard(o.from, info, m.tokenizer.hash, true);
          const batches = loadShard(o.from, info, m.tokenizer.hash, false, m.tokenizer.vocabSize);
          const out: RecordBatch[] = batches.map((b, i) => {
            const col = reader.readRecordBatch(i)!.getChild('input_id')!;
            return datasetBatch(schema, b, Array.from({ length: b.rows }, (_, r) => col.get(r) as string));
          });
          write(info.file.replace(/\.arrow$/, ext(format)), info.file, new Table(schema, out), split);
          o.onProgress?.(++done, total);
        }
      }
      fs.copyFileSync(path.join(o.from, m.tokenizer.file ?? DATASET_TOKENIZER), path.join(tmp, DATASET_TOKENIZER));
    } else {
      fields = RAW_EXPORT_FIELDS;
      const schema = new Schema(fields, new Map([['kd.export_of', RAW_FORMAT]]));
      const shards = listRawShards(o.from);
      shards.forEach((file, i) => {
        const records = readRawRecords(file);
        write(path.basename(file).replace(/\.arrows$/, ext(format)), path.basename(file), new Table(schema, records.length ? [rawExportBatch(schema, records)] : []));
        o.onProgress?.(i + 1, shards.length);
      });
    }
    const summary: ExportSummary = {
      from: o.from, out: o.out, format, kind, kdVersion: KD_VERSION, createdAt: new Date().toISOString(),
      columns: fields.map((f) => ({ name: f.name, type: String(f.type) })), files, seconds: 0,
    };
    // replace an earlier export: its files go, the new ones come, export.json last
    fs.rmSync(path.join(o.out, EXPORT_MANIFEST), { force: true });
    for (const n of fs.readdirSync(o.out)) if (EXPORT_FILE_RE.test(n) || n === DATASET_TOKENIZER) fs.rmSync(path.join(o.out, n));
    for (const n of fs.readdirSync(tmp)) fs.renameSync(path.join(tmp, n), path.join(o.out, n));
    summary.seconds = (performance.now() - t0) / 1000;
    writeJsonAtomic(path.join(o.out, EXPORT_MANIFEST), summary);
    return summary;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (created) fs.rmSync(o.out, { recursive: true, force: true });
    throw e;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
