/**
 * The kd checkpoint file, version 2: one file, written atomically, that holds everything needed to
 * use or resume a model — config, tensors (weights and, when training, optimizer state), training
 * state and, once a dataset is involved, the tokenizer.
 *
 *   bytes 0..7   "KDCKPT01"
 *   bytes 8..11  header length H (uint32 LE)
 *   bytes 12..   header: UTF-8 JSON (CheckpointHeader), padded with spaces to a multiple of 8
 *   then         payload: the tensors back to back, each at header.tensors[i].offset (8-byte aligned)
 * header.payloadSha256 covers the payload, so truncation and bit rot are caught on load; since version 2
 * header.headerSha256 covers the header: the sha256 of JSON.stringify(header without headerSha256), so an
 * edited model config (lnEps, nHeads, …) is caught too. Version 1 files (no headerSha256) still load.
 *
 * Quantized tensors (kd quantize) have dtype int8 and symmetric scales, value = q · scale: one scale
 * (per tensor) or one per index of the channel axis `axis`. The scales are float32 in the payload
 * (entry.scalesAt) — as JSON numbers in the header they would cost ~20 bytes each instead of 4;
 * an inline `scales` list is still read.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { KdError } from '../core/errors.js';
import { KD_VERSION } from '../core/version.js';
import { writeFileAtomic } from '../core/atomic.js';

export const CHECKPOINT_MAGIC = 'KDCKPT01';
export const CHECKPOINT_FORMAT = 'kd-checkpoint';
export const CHECKPOINT_VERSION = 2;
/** versions this kd reads: 1 has no header checksum */
const READABLE_VERSIONS = [1, 2];
export const CHECKPOINT_FILE = 'checkpoint.kdc';

export type TensorDtype = 'float32' | 'int8' | 'int32';

export interface TensorEntry {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  offset: number;
  byteLength: number;
  /** int8 tensors, inline scales (read only; kd writes scalesAt) */
  scales?: number[];
  /** int8 tensors: float32 scales at this payload offset, `count` of them (1 = per tensor) */
  scalesAt?: { offset: number; count: number };
  /** int8 tensors with one scale per channel: the channel axis (absent = last axis) */
  axis?: number;
}

export interface CheckpointHeader {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  kdVersion: string;
  createdAt: string;
  /** resolved ModelConfig */
  model: Record<string, unknown>;
  /** resolved training config, when written by a trainer */
  train?: Record<string, unknown>;
  /** step, data cursor, RNG state, … */
  state?: Record<string, unknown>;
  tokenizer?: unknown;
  /** free-form provenance (teacher model, dataset hash, …) */
  meta?: Record<string, unknown>;
  tensors: TensorEntry[];
  payloadSha256: string;
  /** version ≥ 2: sha256 of the JSON of every other header field */
  headerSha256?: string;
}

export interface NamedArray {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  data: Float32Array | Int8Array | Int32Array;
  /** int8 only: value = q · scale, per tensor (one) or per index along `axis` */
  scales?: Float32Array;
  axis?: number;
}

export type CheckpointContent = Omit<CheckpointHeader, 'format' | 'version' | 'tensors' | 'payloadSha256' | 'headerSha256' | 'createdAt' | 'kdVersion'> & {
  arrays: NamedArray[];
  kdVersion?: string;
};

const pad8 = (n: number) => (n + 7) & ~7;

/** Serialise to one buffer. */
export function encodeCheckpoint(c: CheckpointContent): Buffer {
  const tensors: TensorEntry[] = [];
  let offset = 0;
  for (const a of c.arrays) {
    const e: TensorEntry = { name: a.name, dtype: a.dtype, shape: a.shape, offset, byteLength: a.data.byteLength };
    offset = pad8(offset + a.data.byteLength);
    if (a.scales) {
      e.scalesAt = { offset, count: a.scales.length };
      if (a.axis !== undefined) e.axis = a.axis;
      offset = pad8(offset + 4 * a.scales.length);
    }
    tensors.push(e);
  }
  const payload = Buffer.alloc(offset);
  const copy = (x: ArrayBufferView, at: number) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).copy(payload, at);
  c.arrays.forEach((a, i) => {
    copy(a.data, tensors[i].offset);
    if (a.scales) copy(a.scales, tensors[i].scalesAt!.offset);
  });
  const { arrays: _arrays, ...rest } = c;
  const body: CheckpointHeader = {
    format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, kdVersion: c.kdVersion ?? KD_VERSION, createdAt: new Date().toISOString(),
    ...rest, tensors, payloadSha256: createHash('sha256').update(payload).digest('hex'),
  };
  const header: CheckpointHeader = { ...body, headerSha256: headerSha256(body) };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = pad8(12 + json.length) - 12;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(12);
  prefix.write(CHECKPOINT_MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, 8);
  return Buffer.concat([prefix, json, payload]);
}

/** The header checksum: over the JSON of every field but itself (JSON.parse ∘ stringify gives the same text back). */
function headerSha256(h: CheckpointHeader): string {
  const { headerSha256: _self, ...rest } = h;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex');
}

/** Parse and verify; every failure is a KdError naming the file. */
export function decodeCheckpoint(buf: Buffer, file: string): { header: CheckpointHeader; arrays: Map<string, NamedArray> } {
  const bad = (why: string) => new KdError('corrupt-checkpoint', `${file}: not a valid kd checkpoint (${why})`);
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== CHECKPOINT_MAGIC) throw bad('wrong magic bytes');
  const hlen = buf.readUInt32LE(8);
  if (12 + hlen > buf.length) throw bad('truncated header');
  let header: CheckpointHeader;
  try {
    header = JSON.parse(buf.toString('utf8', 12, 12 + hlen));
  } catch {
    throw bad('header is not JSON');
  }
  if (header.format !== CHECKPOINT_FORMAT) throw bad(`format "${header.format}"`);
  if (!READABLE_VERSIONS.includes(header.version)) {
    throw new KdError('checkpoint-version', `${file}: checkpoint format version ${header.version} is not supported (this kd reads versions ${READABLE_VERSIONS.join(' and ')})`);
  }
  if (header.version >= 2 && header.headerSha256 !== headerSha256(header)) throw bad('header checksum mismatch: the header was edited or damaged');
  const payload = buf.subarray(12 + hlen);
  if (!Array.isArray(header.tensors)) throw bad('no tensor table');
  const end = header.tensors.reduce((m, t) => Math.max(m, t.offset + t.byteLength, t.scalesAt ? t.scalesAt.offset + 4 * t.scalesAt.count : 0), 0);
  if (end > payload.length) throw bad(`truncated: payload has ${payload.length} bytes, tensors need ${end}`);
  if (createHash('sha256').update(payload).digest('hex') !== header.payloadSha256) throw bad('checksum mismatch');
  const arrays = new Map<string, NamedArray>();
  for (const t of header.tensors) {
    const bytes = new Uint8Array(payload.subarray(t.offset, t.offset + t.byteLength)); // copy: aligned, owned
    const data = t.dtype === 'float32' ? new Float32Array(bytes.buffer) : t.dtype === 'int32' ? new Int32Array(bytes.buffer) : new Int8Array(bytes.buffer);
    if (data.length !== t.shape.reduce((a, b) => a * b, 1)) throw bad(`tensor ${t.name} has ${data.length} values for shape [${t.shape}]`);
    const scales = t.scalesAt
      ? new Float32Array(new Uint8Array(payload.subarray(t.scalesAt.offset, t.scalesAt.offset + 4 * t.scalesAt.count)).buffer)
      : t.scales ? Float32Array.from(t.scales) : undefined;
    arrays.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, data, ...(scales ? { scales } : {}), ...(t.axis !== undefined ? { axis: t.axis } : {}) });
  }
  return { header, arrays };
}

export function saveCheckpoint(file: string, c: CheckpointContent): number {
  const buf = encodeCheckpoint(c);
  writeFileAtomic(file, buf);
  return buf.length;
}

/** Accepts the checkpoint file or the run directory that holds checkpoint.kdc. */
export function resolveCheckpointPath(p: string): string {
  if (fs.existsSync(p) && fs.statSync(p).isDirectory()) return path.join(p, CHECKPOINT_FILE);
  return p;
}

export function loadCheckpoint(p: string): { header: CheckpointHeader; arrays: Map<string, NamedArray>; file: string } {
  const file = resolveCheckpointPath(p);
  if (!fs.existsSync(file)) throw new KdError('missing-file', `${file}: no such checkpoint`);
  return { ...decodeCheckpoint(fs.readFileSync(file), file), file };
}
