/**
 * The build's two passes over one raw shard, straight from its Arrow buffers: no RawRecord objects,
 * no strings per top-k alternative, teacher tokens interned by their bytes in a typed-array hash
 * table. The results are the same, value for value and in the same order, as the record path
 * (readRawRecords → VocabCounter.add / convertRecord): test/dataset/columnar.test.ts builds both,
 * and test/dataset/golden/v1-build.json pins the bytes of the build before this file existed.
 *
 * Both passes return what the build's single main thread folds in order (./build.ts): pass 1 the
 * shard's distinct teacher tokens plus a stream of (token, probability) events, so the vocabulary's
 * float sums happen in exactly the sequential order; pass 2 per split a block of converted
 * sequences (already encoded for the output format) plus the per-position entropies and per-
 * alternative masses the manifest's statistics sum. Either pass can run in a worker thread
 * (./build-worker.ts): its inputs and outputs are plain data and transferable typed arrays.
 */
import { type Data, Type } from 'apache-arrow';
import { isUtf8 } from 'node:buffer';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { sha256 } from '../core/hash.js';
import { KdError } from '../core/errors.js';
import { LOGPROB_SENTINEL } from '../core/logprob.js';
import type { DatasetVersion, Split } from '../schema/dataset.js';
import { type ByteSourceStats, firstLabelled, newByteStats } from '../tokenizer/derive.js';
import type { RawRecord } from '../schema/raw.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { type ConvertStats, splitOf } from './convert.js';
import { type SeqBlock, entryOffsets } from '../data/shards.js';
import { openRawStream } from './raw-columns.js';
import { type BuildKernels, label, nativeBuild, packRows } from './label.js';
import { idBits } from '../schema/lp8.js';

// ---------------------------------------------------------------------------------------------
// growable typed arrays and a byte-string hash table

type TA = Int32Array | Uint16Array | Uint8Array | Float32Array | Float64Array;

class Grow<T extends TA> {
  n = 0;
  constructor(public a: T, private readonly make: (n: number) => T) {}
  push(x: number): void {
    if (this.n === this.a.length) this.reserve(1);
    this.a[this.n++] = x;
  }
  reserve(extra: number): void {
    if (this.n + extra <= this.a.length) return;
    const b = this.make(Math.max(this.a.length * 2, this.n + extra, 64));
    b.set(this.a.subarray(0, this.n) as never);
    this.a = b;
  }
  view(): T {
    return this.a.subarray(0, this.n) as T;
  }
}
const i32 = (n = 64) => new Grow(new Int32Array(n), (m) => new Int32Array(m));
const u16 = (n = 64) => new Grow(new Uint16Array(n), (m) => new Uint16Array(m));
const u8 = (n = 64) => new Grow(new Uint8Array(n), (m) => new Uint8Array(m));
const f64 = (n = 64) => new Grow(new Float64Array(n), (m) => new Float64Array(m));
const f32 = (n = 64) => new Grow(new Float32Array(n), (m) => new Float32Array(m));

/** masks of the low 0–4 bytes of an int32 */
const LOW_BYTES = new Int32Array([0, 0xff, 0xffff, 0xffffff, -1]);

/**
 * Byte strings → dense indices in first-insertion order (open addressing, linear probing). A slot is
 * four int32s — a tag (24 hash bits and the length), the index + 1 (0: empty) and the key's first
 * eight bytes — so a lookup of a key of at most 8 bytes (nearly every teacher token) reads one cache
 * line and never the key pool.
 */
export class ByteTable {
  private pool = new Uint8Array(1 << 16);
  private poolN = 0;
  private start = new Int32Array(1024);
  private len = new Int32Array(1024);
  private hashes = new Int32Array(1024);
  /** [tag, index + 1, bytes 0–3, bytes 4–7] per slot */
  private slots = new Int32Array(4 * 2048);
  private mask = 2047;
  size = 0;

  /** a little-endian view of the last key buffer (keys are read four bytes at a time) */
  private dvBuf: Uint8Array | null = null;
  private dv: DataView = new DataView(new ArrayBuffer(0));

  /** The index of buf[s..e), inserting it when new. */
  intern(buf: Uint8Array, s: number, e: number): number {
    const n = e - s;
    let w0 = 0, w1 = 0;
    if (s + 8 <= buf.length) {
      if (buf !== this.dvBuf) { this.dvBuf = buf; this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength); }
      const dv = this.dv;
      if (n >= 8) { w0 = dv.getInt32(s, true); w1 = dv.getInt32(s + 4, true); }
      else if (n >= 4) { w0 = dv.getInt32(s, true); w1 = dv.getInt32(s + 4, true) & LOW_BYTES[n - 4]; }
      else w0 = dv.getInt32(s, true) & LOW_BYTES[n];
    } else {
      const m8 = n < 8 ? n : 8;
      for (let i = 0; i < m8; i++) {
        if (i < 4) w0 |= buf[s + i] << (i << 3);
        else w1 |= buf[s + i] << ((i - 4) << 3);
      }
    }
    let h = Math.imul(w0 ^ Math.imul(w1 ^ n, 0x85ebca6b), 0xcc9e2d51);
    for (let i = s + 8; i < e; i++) h = Math.imul(h ^ buf[i], 16777619);
    h ^= h >>> 15; h = Math.imul(h, 0x2c1b3c6d); h ^= h >>> 13;
    const tag = (h & ~0xff) | (n < 255 ? n : 255);
    const slots = this.slots, mask = this.mask;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const q = slot << 2;
      const t1 = slots[q + 1];
      if (t1 === 0) break;
      if (slots[q] === tag && slots[q + 2] === w0 && slots[q + 3] === w1) {
        if (n <= 8) return t1 - 1;
        const t = t1 - 1;
        if (this.len[t] !== n) continue;
        const pool = this.pool, o = this.start[t];
        let same = true;
        for (let i = 8; i < n; i++) if (pool[o + i] !== buf[s + i]) { same = false; break; }
        if (same) return t;
      }
    }
    return this.insert(buf, s, e, h, tag, w0, w1);
  }

  private insert(buf: Uint8Array, s: number, e: number, h: number, tag: number, w0: number, w1: number): number {
    const t = this.size++;
    if (t === this.start.length) {
      const grow = (a: Int32Array) => { const b = new Int32Array(a.length * 2); b.set(a); return b; };
      this.start = grow(this.start); this.len = grow(this.len); this.hashes = grow(this.hashes);
    }
    const n = e - s;
    if (this.poolN + n > this.pool.length) {
      const p = new Uint8Array(Math.max(this.pool.length * 2, this.poolN + n));
      p.set(this.pool.subarray(0, this.poolN));
      this.pool = p;
    }
    this.pool.set(buf.subarray(s, e), this.poolN);
    this.start[t] = this.poolN; this.len[t] = n; this.hashes[t] = h;
    this.poolN += n;
    this.place(this.slots, this.mask, h, tag, t + 1, w0, w1);
    if (this.size * 2 > this.mask + 1) this.rehash();
    return t;
  }

  private place(slots: Int32Array, mask: number, h: number, tag: number, t1: number, w0: number, w1: number): void {
    let slot = h & mask;
    while (slots[(slot << 2) + 1] !== 0) slot = (slot + 1) & mask;
    const q = slot << 2;
    slots[q] = tag; slots[q + 1] = t1; slots[q + 2] = w0; slots[q + 3] = w1;
  }

  private rehash(): void {
    const old = this.slots;
    const cap = 2 * (this.mask + 1);
    const slots = new Int32Array(4 * cap), mask = cap - 1;
    for (let q = 0; q < old.length; q += 4) {
      const t1 = old[q + 1];
      if (t1 !== 0) this.place(slots, mask, this.hashes[t1 - 1], old[q], t1, old[q + 2], old[q + 3]);
    }
    this.slots = slots;
    this.mask = mask;
  }

  bytes(t: number): Uint8Array {
    return this.pool.subarray(this.start[t], this.start[t] + this.len[t]);
  }

  /** Every key, in index order: one pool and offsets (transferable). */
  dump(): { pool: Uint8Array; off: Int32Array } {
    return this.keysFrom(0);
  }

  /** The keys of indices from..size−1: one pool and offsets from 0. */
  keysFrom(from: number): { pool: Uint8Array; off: Int32Array } {
    const n = this.size - from;
    const off = new Int32Array(n + 1);
    for (let t = 0; t < n; t++) off[t + 1] = off[t] + this.len[from + t];
    const pool = new Uint8Array(off[n]);
    for (let t = 0; t < n; t++) pool.set(this.bytes(from + t), off[t]);
    return { pool, off };
  }
}

/** A byte-string table: {@link ByteTable}, or {@link NativeTable} (the same indices for the same insertions). */
export interface Interner {
  readonly size: number;
  intern(buf: Uint8Array, s: number, e: number): number;
  keysFrom(from: number): { pool: Uint8Array; off: Int32Array };
  dump(): { pool: Uint8Array; off: Int32Array };
}

/**
 * The native addon's byte-string table (native/build.cc): besides one key at a time, it interns a whole
 * Arrow Binary column's values in one call ({@link NativeTable.internAll}), which is where its speed is.
 */
export class NativeTable implements Interner {
  /** the addon's table (native/build.cc) */
  readonly handle: object;
  private readonly one = new Int32Array(1);
  private readonly span = new Int32Array(2);
  size = 0;
  constructor(readonly k: BuildKernels) {
    this.handle = k.tableNew();
  }
  intern(buf: Uint8Array, s: number, e: number): number {
    this.span[0] = s; this.span[1] = e;
    this.size = this.k.tableIntern(this.handle, buf, this.span, 0, 1, this.one, 0);
    return this.one[0];
  }
  /** idx[i] = the index of column value i (−1: empty), for every value of a Binary/Utf8 column (into `idx` when it is long enough) */
  internAll(c: BytesCol, idx: Int32Array): Int32Array {
    const n = c.d.length;
    if (idx.length < n) idx = new Int32Array(n + (n >> 2));
    if (n > 0) this.size = this.k.tableIntern(this.handle, c.values, c.off, c.base, c.base + n, idx, 0);
    return idx;
  }
  keysFrom(from: number): { pool: Uint8Array; off: Int32Array } {
    const [pool, off] = this.k.tableDump(this.handle, from);
    return { pool, off };
  }
  dump(): { pool: Uint8Array; off: Int32Array } {
    return this.keysFrom(0);
  }
}

// ---------------------------------------------------------------------------------------------
// raw columns

const valid = (d: Data, i: number): boolean => {
  if (d.nullCount === 0 || !d.nullBitmap || d.nullBitmap.length === 0) return true;
  const j = d.offset + i;
  return ((d.nullBitmap[j >> 3] >> (j & 7)) & 1) === 1;
};

/** An Arrow column's null bitmap, or null when no value is null (then every value is valid). */
const bitmapOf = (d: Data): Uint8Array | null => (d.nullCount === 0 || !d.nullBitmap || d.nullBitmap.length === 0 ? null : d.nullBitmap);
/** value j (the column's offset included) of a column with this bitmap is valid */
const isSet = (bits: Uint8Array | null, j: number): boolean => bits === null || ((bits[j >> 3] >> (j & 7)) & 1) === 1;

/** A List<T> column: row r's items are child indices [lo(r), hi(r)), or none when the row is null. */
class ListCol {
  readonly bits: Uint8Array | null;
  readonly base: number;
  readonly offs: Int32Array;
  constructor(readonly d: Data | null) {
    this.bits = d ? bitmapOf(d) : null;
    this.base = d ? d.offset : 0;
    this.offs = d ? (d.valueOffsets as Int32Array) : new Int32Array(1);
  }
  has(r: number): boolean {
    return this.d !== null && isSet(this.bits, this.base + r);
  }
  lo(r: number): number { return this.offs[this.base + r]; }
  hi(r: number): number { return this.offs[this.base + r + 1]; }
}

/** A Utf8 or Binary column's value i: bytes [s, e) of `values`, or absent. */
class BytesCol {
  readonly values: Uint8Array;
  readonly off: Int32Array;
  readonly bits: Uint8Array | null;
  readonly base: number;
  constructor(readonly d: Data) {
    this.values = d.values as Uint8Array;
    this.off = d.valueOffsets as Int32Array;
    this.bits = bitmapOf(d);
    this.base = d.offset;
  }
  has(i: number): boolean { return isSet(this.bits, this.base + i); }
  s(i: number): number { return this.off[this.base + i]; }
  e(i: number): number { return this.off[this.base + i + 1]; }
  str(i: number): string | null {
    return this.has(i) ? Buffer.from(this.values.buffer, this.values.byteOffset, this.values.byteLength).toString('utf8', this.s(i), this.e(i)) : null;
  }
}

const BYTES_RE = /^bytes:((?:\\x[0-9a-fA-F]{2})+)$/;
const utf8 = new TextEncoder();
const B_ = 0x62, Y_ = 0x79, T_ = 0x74, E_ = 0x65, S_ = 0x73, COLON = 0x3a;

/**
 * {@link teacherBytes} on columns: the span (buf, s, e) of a token's bytes — reported bytes, else its
 * "bytes:\x.." notation decoded, else the UTF-8 of its string (which, for a valid UTF-8 Arrow string,
 * is the string's own bytes) — or false when it has none.
 */
class Span {
  buf: Uint8Array = new Uint8Array(0);
  s = 0;
  e = 0;

  /** bytes: Binary column + index (−1: none); str: Utf8 column + index (−1: none) */
  resolve(bc: BytesCol | null, bi: number, sc: BytesCol | null, si: number, stats: ByteSourceStats): boolean {
    if (bc && bi >= 0 && bc.has(bi)) {
      const s = bc.s(bi), e = bc.e(bi);
      if (e > s) {
        stats.reported++;
        this.buf = bc.values; this.s = s; this.e = e;
        return true;
      }
    }
    if (!sc || si < 0 || !sc.has(si)) return false;
    const v = sc.values, s = sc.s(si), e = sc.e(si);
    if (e === s) return false;
    let ascii = true;
    for (let i = s; i < e; i++) if (v[i] >= 0x80) { ascii = false; break; }
    const maybeEscaped = e - s >= 10 && v[s] === B_ && v[s + 1] === Y_ && v[s + 2] === T_ && v[s + 3] === E_ && v[s + 4] === S_ && v[s + 5] === COLON;
    if (maybeEscaped || !(ascii || isUtf8(v.subarray(s, e)))) {
      // rare: the record path's exact steps on the decoded string
      const token = sc.str(si)!;
      const m = BYTES_RE.exec(token);
      if (m) {
        stats.escaped++;
        this.buf = Uint8Array.from(m[1].split('\\x').slice(1), (h) => parseInt(h, 16));
      } else {
        stats.fromString++;
        this.buf = utf8.encode(token);
      }
      this.s = 0; this.e = this.buf.length;
      return true;
    }
    stats.fromString++;
    this.buf = v; this.s = s; this.e = e;
    return true;
  }
}

/** Scratch for one position's alternatives: interned tokens and log-probs. */
class Alts {
  ts = new Int32Array(64);
  lps = new Float64Array(64);
  /** Math.exp of each log-prob */
  ps = new Float64Array(64);
  grow(n: number): void {
    this.ts = new Int32Array(n);
    this.lps = new Float64Array(n);
    this.ps = new Float64Array(n);
  }
}

/**
 * A record batch's per-value work done natively in bulk (native/build.cc): every top-k and sampled
 * token's bytes interned in the pass's table, and exp of every log-prob.
 */
const newBulk = (): Bulk => ({ top: new Int32Array(0), tok: new Int32Array(0), exp: new Float64Array(0) });

interface Bulk {
  /** the table index of top_bytes value k (physical index k − base of the Binary column; −1: empty) */
  top: Int32Array;
  /** the table index of token_bytes value i (−1: empty) */
  tok: Int32Array;
  /** Math.exp of log-prob value v */
  exp: Float64Array;
}

/** One raw record batch's columns, as the passes read them. */
class RawCols {
  readonly rows: number;
  readonly inputId: BytesCol;
  readonly mode: BytesCol;
  readonly model: BytesCol;
  readonly prompt: BytesCol | null;
  readonly chunkIndex: Data;
  readonly chunkStart: Data;
  readonly scoreFrom: Data;
  readonly textOffsets: Data | null;
  readonly tokens: ListCol;
  readonly tokStr: BytesCol;
  readonly tokBytes: ListCol;
  readonly tokBin: BytesCol;
  /** per position lists */
  readonly topTok: ListCol;
  readonly topTokStr: BytesCol;
  readonly topBytes: ListCol;
  readonly topBin: BytesCol;
  readonly topLp: ListCol;
  readonly topLpVals: Float32Array;
  readonly topLpData: Data;
  /** position → its log-prob list (a null list: no alternatives) */
  readonly posLpL: ListCol;
  readonly lpBits: Uint8Array | null;
  readonly lpBase: number;
  readonly posTokL: ListCol;
  readonly posBytesL: ListCol;

  constructor(batch: import('apache-arrow').RecordBatch) {
    const d = (name: string): Data | null => {
      const v = batch.getChild(name);
      if (!v) return null;
      if (v.data.length !== 1) throw new Error(`unexpected chunking of raw column ${name}`);
      return v.data[0];
    };
    this.rows = batch.numRows;
    this.inputId = new BytesCol(d('input_id')!);
    this.mode = new BytesCol(d('mode')!);
    this.model = new BytesCol(d('model')!);
    const p = d('prompt');
    this.prompt = p ? new BytesCol(p) : null;
    this.chunkIndex = d('chunk_index')!;
    this.chunkStart = d('chunk_start')!;
    this.scoreFrom = d('score_from')!;
    this.textOffsets = d('text_offsets');
    const tokens = d('tokens')!, tokBytes = d('token_bytes')!;
    this.tokens = new ListCol(tokens);
    this.tokStr = new BytesCol(tokens.children[0]);
    this.tokBytes = new ListCol(tokBytes);
    this.tokBin = new BytesCol(tokBytes.children[0]);
    const tt = d('top_tokens')!, tb = d('top_bytes')!, tl = d('top_logprobs')!;
    // row → position lists; position → alternatives
    this.topTok = new ListCol(tt);
    this.posTokL = new ListCol(tt.children[0]);
    this.topTokStr = new BytesCol(tt.children[0].children[0]);
    this.topBytes = new ListCol(tb);
    this.posBytesL = new ListCol(tb.children[0]);
    this.topBin = new BytesCol(tb.children[0].children[0]);
    this.topLp = new ListCol(tl);
    this.topLpData = tl.children[0];
    this.topLpVals = tl.children[0].children[0].values as Float32Array;
    const lpChild = tl.children[0].children[0];
    this.posLpL = new ListCol(this.topLpData);
    this.lpBits = bitmapOf(lpChild);
    this.lpBase = lpChild.offset;
  }

  /** interns every token of the batch into `table` and takes exp of every log-prob, natively (into `into`, reused) */
  bulk(table: NativeTable, into: Bulk): Bulk {
    into.top = table.internAll(this.topBin, into.top);
    into.tok = table.internAll(this.tokBin, into.tok);
    const n = this.topLpData.children[0].length;
    if (into.exp.length < n) into.exp = new Float64Array(n + (n >> 2));
    if (n > 0) table.k.expF32(this.topLpVals, this.lpBase, this.lpBase + n, into.exp);
    return into;
  }

  /**
   * The per-batch arguments of the native row kernels (native/build.cc RowCols): meta (filled per row by
   * {@link RawCols.rowMeta}), then the columns' offsets, bitmaps and the batch's bulk results.
   */
  rowArgs(bulk: Bulk, meta: Int32Array): unknown[] {
    return [meta, bulk.tok, this.tokBin.bits, this.posLpL.offs, this.posLpL.bits, this.posBytesL.offs, this.posBytesL.bits,
      this.topBin.off, this.topBin.bits, bulk.top, this.topLpVals, this.lpBits, bulk.exp];
  }

  /** row r's meta for the native row kernels: its n positions, the first labelled, and its lists' ranges */
  rowMeta(r: number, n: number, from: number, meta: Int32Array): void {
    const tb = this.tokBytes.has(r), tl = this.topLp.has(r), bp = this.topBytes.has(r);
    meta[0] = n; meta[1] = from;
    meta[2] = tb ? this.tokBytes.lo(r) : -1; meta[3] = tb ? this.tokBytes.hi(r) : -1; meta[4] = this.tokBin.base;
    meta[5] = tl ? this.topLp.lo(r) : -1; meta[6] = tl ? this.topLp.hi(r) : -1; meta[7] = this.posLpL.base;
    meta[8] = bp ? this.topBytes.lo(r) : -1; meta[9] = bp ? this.topBytes.hi(r) : -1; meta[10] = this.posBytesL.base;
    meta[11] = this.topBin.base; meta[12] = this.lpBase;
  }

  /**
   * The token sampled at row r's position i (lo: the row's first position): its index in `table`, or
   * −1 when it has no bytes ({@link Span.resolve}).
   */
  posToken(r: number, i: number, lo: number, table: Interner, span: Span, stats: ByteSourceStats, bulk: Bulk | null): number {
    const bi = this.tokBytesIdx(r, i);
    if (bulk && bi >= 0) {
      const t = bulk.tok[bi];
      if (t >= 0 && this.tokBin.has(bi)) { stats.reported++; return t; }
    }
    if (!span.resolve(this.tokBin, bi, this.tokStr, lo + i, stats)) return -1;
    return table.intern(span.buf, span.s, span.e);
  }

  int(dd: Data, r: number): number | null {
    return valid(dd, r) ? Number(dd.values[dd.offset + r]) : null;
  }

  /** firstLabelled of row r (score chunks after the first need the token strings: decoded then only). */
  firstLabelled(r: number): number {
    if (this.mode.str(r) !== 'score') return 0;
    const scoreFrom = this.int(this.scoreFrom, r), chunkIndex = this.int(this.chunkIndex, r);
    if (scoreFrom == null || chunkIndex === 0) return 0;
    const tokens: (string | null)[] = [];
    if (this.tokens.has(r)) for (let i = this.tokens.lo(r); i < this.tokens.hi(r); i++) tokens.push(this.tokStr.str(i));
    let textOffsets: (number | null)[] | null = null;
    if (this.textOffsets && valid(this.textOffsets, r)) {
      const t = this.textOffsets, c = t.children[0];
      textOffsets = [];
      for (let i = t.valueOffsets[t.offset + r]; i < t.valueOffsets[t.offset + r + 1]; i++) textOffsets.push(valid(c, i) ? Number(c.values[c.offset + i]) : null);
    }
    return firstLabelled({ mode: 'score', score_from: scoreFrom, chunk_index: chunkIndex, chunk_start: this.int(this.chunkStart, r), text_offsets: textOffsets, tokens } as unknown as RawRecord);
  }

  /** teacher positions of row r: [lo, hi) indices into the position-level columns (tokens …) */
  posRange(r: number): [number, number] {
    return this.tokens.has(r) ? [this.tokens.lo(r), this.tokens.hi(r)] : [0, 0];
  }

  /** teacher positions of row r */
  positionsOf(r: number): number {
    return this.tokens.has(r) ? this.tokens.hi(r) - this.tokens.lo(r) : 0;
  }

  /** at least the number of row r's alternatives (its top-k lists' values, null lists included) */
  alternativesOf(r: number): number {
    if (!this.topLp.has(r)) return 0;
    return this.posLpL.lo(this.topLp.hi(r)) - this.posLpL.lo(this.topLp.lo(r));
  }

  /** the token_bytes index of row r's position i (i from 0), or −1 */
  tokBytesIdx(r: number, i: number): number {
    if (!this.tokBytes.has(r)) return -1;
    const k = this.tokBytes.lo(r) + i;
    return k < this.tokBytes.hi(r) ? k : -1;
  }

  /** the top-k list index (into the inner lists of col) of row r's position i, or −1 */
  static posIdx(outer: ListCol, inner: ListCol, r: number, i: number): number {
    if (!outer.has(r)) return -1;
    const p = outer.lo(r) + i;
    if (p >= outer.hi(r) || !inner.has(p)) return -1;
    return p;
  }

  /**
   * The usable alternatives of row r's position i — a finite log-prob above the sentinel, and bytes
   * ({@link Span.resolve}) — in order: their tokens interned in `table` into alts.ts[0..m), their
   * log-probs into alts.lps and the log-probs' exp into alts.ps; returns m. (The record path's loop
   * over `top_logprobs[i]`.) With `bulk`, the batch's tokens are interned and exps taken already.
   */
  alternatives(r: number, i: number, table: Interner, span: Span, stats: ByteSourceStats, alts: Alts, bulk: Bulk | null): number {
    const outer = this.topLp, inner = this.posLpL;
    if (!outer.has(r)) return 0;
    const p = outer.lo(r) + i;
    if (p >= outer.hi(r) || !inner.has(p)) return 0;
    const v0 = inner.lo(p), v1 = inner.hi(p);
    if (v1 - v0 > alts.ts.length) alts.grow(v1 - v0);
    const ti = RawCols.posIdx(this.topTok, this.posTokL, r, i), bi = RawCols.posIdx(this.topBytes, this.posBytesL, r, i);
    const tLo = ti >= 0 ? this.posTokL.lo(ti) : 0, tN = ti >= 0 ? this.posTokL.hi(ti) - tLo : 0;
    const bLo = bi >= 0 ? this.posBytesL.lo(bi) : 0, bN = bi >= 0 ? this.posBytesL.hi(bi) - bLo : 0;
    const vals = this.topLpVals, lpBits = this.lpBits, lpBase = this.lpBase;
    const bin = this.topBin, binV = bin.values, binOff = bin.off, binBits = bin.bits, binK = bin.base + bLo;
    const ts = alts.ts, lps = alts.lps, ps = alts.ps;
    const bTop = bulk ? bulk.top : null, bExp = bulk ? bulk.exp : null, binBase = bin.base;
    let m = 0;
    for (let v = v0, j = 0; v < v1; v++, j++) {
      if (!isSet(lpBits, lpBase + v)) continue; // a null log-prob: not usable
      const lp = vals[lpBase + v];
      if (!(lp > LOGPROB_SENTINEL && lp < Infinity)) continue; // usableLogprob
      if (j < bN) {
        // reported bytes (nearly always): Span.resolve's first case, inline
        const k = binK + j, s = binOff[k], e = binOff[k + 1];
        if (e > s && isSet(binBits, k)) {
          stats.reported++;
          ts[m] = bTop ? bTop[k - binBase] : table.intern(binV, s, e);
          ps[m] = bExp ? bExp[v] : Math.exp(lp);
          lps[m++] = lp;
          continue;
        }
      }
      if (!span.resolve(null, -1, this.topTokStr, j < tN ? tLo + j : -1, stats)) continue;
      ts[m] = table.intern(span.buf, span.s, span.e);
      ps[m] = bExp ? bExp[v] : Math.exp(lp);
      lps[m++] = lp;
    }
    return m;
  }
}

/**
 * A thread's buffers the passes reuse from shard to shard (no fresh shard-sized arrays — page faults and
 * GC — per pass): the bulk results, and the result arrays a build consumes before the next pass in this
 * thread. A result transferred to another thread detaches them; they are then made anew.
 */
const reused = { bulk: newBulk(), events: i32(), p1: f64(), g1: { order: i32(), cnt: i32(), qOff: i32(), qs: f64() }, p2: { train: f64(), val: f64() }, one: { train: u8(), val: u8() } };

/** g emptied, with room for n values (made anew when its buffer went to another thread) */
function emptied<T extends TA>(g: Grow<T>, n: number): Grow<T> {
  if (g.a.length === 0) g.a = new (g.a.constructor as new (n: number) => T)(0);
  g.n = 0;
  g.reserve(n);
  return g;
}

let readBuf: Buffer | null = null;
/** the shard this thread mapped last (unmapped at the next call) */
let mapped: [ArrayBuffer, object] | null = null;

/**
 * A raw shard's bytes: valid until the next call in this thread (the passes copy what they keep).
 * With the native addon the file is mapped read-only (no copy out of the page cache; the previous
 * mapping is unmapped first and its views read as empty); else it is read into a buffer this thread
 * reuses (no fresh shard-sized allocation — page faults and GC — per pass).
 */
export function readRawShard(file: string): Uint8Array {
  const k = nativeBuild();
  if (k?.mapFile && k.unmapFile) {
    if (mapped) { k.unmapFile(mapped[0], mapped[1]); mapped = null; }
    mapped = k.mapFile(file);
    if (mapped) return new Uint8Array(mapped[0]);
  }
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (!readBuf || readBuf.length < size) readBuf = Buffer.allocUnsafe(Math.max(size, readBuf ? readBuf.length + (readBuf.length >> 1) : 0));
    let o = 0;
    while (o < size) {
      const n = readSync(fd, readBuf, o, size - o, o);
      if (n === 0) break;
      o += n;
    }
    return readBuf.subarray(0, o);
  } finally {
    closeSync(fd);
  }
}

/** The complete record batches of a raw shard's bytes (a torn tail is ignored, as collect's reader does). */
export function rawBatches(bytes: Uint8Array, file: string): RawCols[] {
  const reader = openRawStream(bytes, file);
  const out: RawCols[] = [];
  for (const batch of reader) {
    for (const f of ['top_logprobs']) {
      const t = batch.getChild(f)?.type;
      if (!t || t.typeId !== Type.List) throw new KdError('raw-format', `${file}: column ${f} is not a list`);
    }
    out.push(new RawCols(batch));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// pass 1: usefulness events

/** Pass 1 of one shard: its distinct teacher tokens (first-seen order) and its events, in order. */
export interface Pass1Result {
  /** distinct token bytes: pool[off[t]..off[t+1]) */
  pool: Uint8Array;
  off: Int32Array;
  /**
   * The shard's events (per event: t ≥ 0 adds p to token t's mass; −1 − t counts one emission of
   * token t) grouped by token, {@link group1Js}: the tokens in the order the events first name them
   * (order[i], i < named), each one's count events cnt[i] and its mass events' p in event order at
   * qs[qOff[i]..qOff[i+1])
   */
  order: Int32Array;
  cnt: Int32Array;
  qOff: Int32Array;
  qs: Float64Array;
  named: number;
  /** the probability of every mass event, in event order */
  p: Float64Array;
  positions: number;
  bytes: ByteSourceStats;
  models: string[];
  /** the shard as read: its sha256 and size (the manifest's source entry) */
  source: { sha256: string; bytes: number };
}

/** {@link VocabCounter.add} over every record of a shard. */
export function pass1(bytes: Uint8Array, file: string, k: BuildKernels | null = nativeBuild()): Pass1Result {
  // (a native table's indices may include tokens no event names: the fold maps only those events name)
  const native = k ? new NativeTable(k) : null;
  const table: Interner = native ?? new ByteTable();
  const batches = rawBatches(bytes, file);
  let nPos = 0, nAlt = 0;
  for (const c of batches) for (let r = 0; r < c.rows; r++) { nPos += c.positionsOf(r); nAlt += c.alternativesOf(r); }
  // (valid until the next pass 1 in this thread: see `reused`)
  const events = emptied(reused.events, nPos + nAlt + 1), p = emptied(reused.p1, nAlt + 1);
  const stats = newByteStats();
  const models = new Set<string>();
  const span = new Span();
  const alts = new Alts();
  let positions = 0;
  const scratch = reused.bulk;
  const meta = new Int32Array(16), io = new Int32Array(8);
  for (const c of batches) {
    const bulk = native ? c.bulk(native, scratch) : null;
    const args = bulk ? c.rowArgs(bulk, meta) : null;
    for (let r = 0; r < c.rows; r++) {
      const model = c.model.str(r);
      if (model) models.add(model);
      const [lo, hi] = c.posRange(r);
      const n = hi - lo;
      const from = c.firstLabelled(r);
      if (args && k) {
        // the record's loop natively, unless it needs the JavaScript path (a token from its string)
        const nAlt = c.alternativesOf(r);
        events.reserve(n + nAlt); p.reserve(nAlt);
        c.rowMeta(r, n, from, meta);
        io[0] = events.n; io[1] = p.n;
        k.pass1Row(...args, events.a, p.a, io);
        if (io[2] === 0) {
          events.n = io[0]; p.n = io[1]; positions += io[3]; stats.reported += io[4];
          continue;
        }
      }
      for (let i = from; i < n; i++) {
        const t = c.posToken(r, i, lo, table, span, stats, bulk);
        if (t < 0) continue;
        positions++;
        events.push(-1 - t);
        const m = c.alternatives(r, i, table, span, stats, alts, bulk);
        events.reserve(m);
        p.reserve(m);
        const ev = events.a, pa = p.a, ts = alts.ts, ps = alts.ps;
        let en = events.n, pn = p.n;
        for (let a = 0; a < m; a++) {
          ev[en++] = ts[a];
          pa[pn++] = ps[a];
        }
        events.n = en;
        p.n = pn;
      }
    }
  }
  const { pool, off } = table.dump();
  const pv = p.view();
  return { pool, off, ...group1(events.view(), pv, off.length - 1, k), p: pv, positions, bytes: stats, models: [...models], source: { sha256: sha256(bytes), bytes: bytes.byteLength } };
}

/**
 * Pass 1's events grouped by token, made where they are made (a worker thread) so that the in-order
 * fold (build.ts BuildFold.addPass1) reads each token's additions one after the other instead of
 * jumping between tokens per event: the same additions, in the same order per token.
 */
export function group1Js(events: Int32Array, p: Float64Array, nLocal: number): Pick<Pass1Result, 'order' | 'cnt' | 'qOff' | 'qs' | 'named'> {
  const order = new Int32Array(nLocal), cnt = new Int32Array(nLocal), qOff = new Int32Array(nLocal + 1), qs = new Float64Array(p.length);
  const named = group1Into(events, p, nLocal, order, cnt, qOff, qs);
  return { order: order.subarray(0, named), cnt: cnt.subarray(0, named), qOff: qOff.subarray(0, named + 1), qs, named };
}

/** {@link group1Js} into given arrays (room for nLocal tokens and p.length values; their old contents ignored) */
function group1Into(events: Int32Array, p: Float64Array, nLocal: number, order: Int32Array, cnt: Int32Array, qOff: Int32Array, qs: Float64Array): number {
  const rank = new Int32Array(nLocal).fill(-1);
  let named = 0, k = 0;
  qOff[0] = 0;
  for (let e = 0; e < events.length; e++) {
    const x = events[e], t = x < 0 ? -1 - x : x;
    if (t >= nLocal || (x >= 0 && k++ >= p.length)) throw new Error('pass 1: an event outside the shard\'s tokens');
    let r = rank[t];
    if (r < 0) { r = rank[t] = named; order[named] = t; cnt[named] = 0; qOff[named + 1] = 0; named++; }
    if (x < 0) cnt[r]++;
    else qOff[r + 1]++;
  }
  for (let i = 0; i < named; i++) qOff[i + 1] += qOff[i];
  const cur = qOff.slice(0, named);
  for (let e = 0, j = 0; e < events.length; e++) {
    const x = events[e];
    if (x >= 0) qs[cur[rank[x]]++] = p[j++];
  }
  return named;
}

/** {@link group1Js} (natively when it can) into this thread's reused arrays: valid until the next pass 1 here */
function group1(events: Int32Array, p: Float64Array, nLocal: number, k: BuildKernels | null): Pick<Pass1Result, 'order' | 'cnt' | 'qOff' | 'qs' | 'named'> {
  const g = reused.g1;
  const order = emptied(g.order, nLocal).a, cnt = emptied(g.cnt, nLocal).a, qOff = emptied(g.qOff, nLocal + 1).a, qs = emptied(g.qs, p.length).a;
  const named = k ? k.group1(events, p, nLocal, order, cnt, qOff, qs) : group1Into(events, p, nLocal, order, cnt, qOff, qs);
  return { order: order.subarray(0, named), cnt: cnt.subarray(0, named), qOff: qOff.subarray(0, named + 1), qs: qs.subarray(0, p.length), named };
}

// ---------------------------------------------------------------------------------------------
// pass 2: conversion

/** {@link TeacherMap} on interned bytes: teacher token → its student ids (cached). */
class SplitCache {
  /** the native table when the addon is there (pass 2 then interns a batch's tokens in bulk) */
  readonly native: NativeTable | null;
  readonly table: Interner;
  private off = i32(1024);
  private len = i32(1024);
  /** per token: its first student id, and 1 when that is its only id */
  readonly first = i32(1024);
  readonly one = u8(1024);
  readonly ids = i32(4096);
  /** tokens 0..encoded−1 of the table have their ids */
  encoded = 0;
  /** the most student ids of one token */
  maxLen = 0;
  /** the native row kernel's view of the cache: off, len, ids, first, one of tokens 0..encoded−1 */
  views: [Int32Array, Int32Array, Int32Array, Int32Array, Uint8Array] = [new Int32Array(0), new Int32Array(0), new Int32Array(0), new Int32Array(0), new Uint8Array(0)];
  constructor(readonly tokenizer: Tokenizer, readonly kernels: BuildKernels | null = nativeBuild()) {
    this.native = kernels ? new NativeTable(kernels) : null;
    this.table = this.native ?? new ByteTable();
  }

  /** Encodes the tokens interned in the table since the last call. */
  sync(): void {
    const n = this.table.size - this.encoded;
    if (n <= 0) return;
    this.off.reserve(n); this.len.reserve(n); this.first.reserve(n); this.one.reserve(n);
    const { pool, off } = this.table.keysFrom(this.encoded);
    for (let i = 0; this.encoded < this.table.size; this.encoded++, i++) {
      const enc = this.tokenizer.encode(pool.subarray(off[i], off[i + 1]));
      const t = this.encoded, k = enc.length;
      this.off.a[t] = this.ids.n;
      this.len.a[t] = k;
      this.first.a[t] = enc[0];
      this.one.a[t] = k === 1 ? 1 : 0;
      if (k > this.maxLen) this.maxLen = k;
      this.ids.reserve(k);
      const ids = this.ids.a;
      for (let j = 0; j < k; j++) ids[this.ids.n + j] = enc[j];
      this.ids.n += k;
    }
    this.off.n = this.len.n = this.first.n = this.one.n = this.encoded;
    this.views = [this.off.view(), this.len.view(), this.ids.view(), this.first.view(), this.one.view()];
  }
  start(t: number): number { return this.off.a[t]; }
  count(t: number): number { return this.len.a[t]; }
}

/** The statistics of a split's conversion that are plain counts (summable in any order). */
export type Pass2Counts = Omit<ConvertStats, 'topMass' | 'oneToOneMass' | 'entropySum'> & { targeted: number };

/** One split's share of a shard's pass 2. */
export interface Pass2Split {
  block: SeqBlock;
  counts: Pass2Counts;
  /** the renormalised entropy of every labelled position, in order (the manifest sums them) */
  entropies: Float64Array;
  /** every usable alternative's probability, in order, and whether it was one student id */
  p: Float64Array;
  one: Uint8Array;
}

export interface Pass2Result {
  records: number;
  splits: Record<Split, Pass2Split>;
}

/** A split's label input: read by {@link label} before pass 2 returns, so each thread reuses it from shard to shard. */
interface LabelScratch { m0: Grow<Int32Array>; pOff: Grow<Int32Array>; first: Grow<Uint16Array>; lps: Grow<Float32Array> }
const labelScratch: Record<Split, LabelScratch> = {
  train: { m0: i32(), pOff: i32(), first: u16(), lps: f32() },
  val: { m0: i32(), pOff: i32(), first: u16(), lps: f32() },
};

/** One split's output of a shard, sized for its records' positions and alternatives (upper bounds: no regrowth). */
class SplitOut {
  inputIds: string[] = [];
  targetFrom: Grow<Int32Array>;
  idOff: Grow<Int32Array>;
  ids: Grow<Uint16Array>;
  mask: Grow<Uint8Array>;
  labOff: Grow<Int32Array>;
  /**
   * per labelled position its usable alternatives (then {@link label}): how many, where their exps
   * start in `p`, and per alternative its first student id and log-prob (the raw float32)
   */
  m0: Grow<Int32Array>;
  pOff: Grow<Int32Array>;
  first: Grow<Uint16Array>;
  lps: Grow<Float32Array>;
  p: Grow<Float64Array>;
  one: Grow<Uint8Array>;
  c: Pass2Counts = {
    sequences: 0, teacherPositions: 0, labelled: 0, noPredecessor: 0, noAlternatives: 0, missingTokens: 0, emptySequences: 0,
    maxK: 0, bytes: newByteStats(), targeted: 0,
  };
  constructor(split: Split, records: number, positions: number, alternatives: number, scratch: LabelScratch) {
    this.targetFrom = i32(records + 1); this.idOff = i32(records + 1); this.labOff = i32(records + 1);
    this.ids = u16(2 * positions + 64); this.mask = u8(2 * positions + 64);
    this.m0 = scratch.m0; this.pOff = scratch.pOff; this.first = scratch.first; this.lps = scratch.lps;
    this.m0.n = this.pOff.n = this.first.n = this.lps.n = 0;
    this.m0.reserve(positions + 1); this.pOff.reserve(positions + 1);
    this.first.reserve(alternatives + 1); this.lps.reserve(alternatives + 1);
    // (valid until the next pass 2 in this thread: see `reused`)
    this.p = emptied(reused.p2[split], alternatives + 1); this.one = emptied(reused.one[split], alternatives + 1);
    this.idOff.push(0);
    this.labOff.push(0);
  }
}

/** {@link convertRecord} over every record of a shard, split by {@link splitOf}. */
export function pass2(bytes: Uint8Array, file: string, tokenizer: Tokenizer, o: { seed: number; valFraction: number; version: DatasetVersion }, cache = new SplitCache(tokenizer)): Pass2Result {
  const batches = rawBatches(bytes, file);
  // every record's split, and what each split will hold at most
  const splits = batches.map((c) => Array.from({ length: c.rows }, (_, r) => splitOf(c.inputId.str(r)!, o.seed, o.valFraction)));
  const size = { train: [0, 0, 0], val: [0, 0, 0] };
  batches.forEach((c, b) => { for (let r = 0; r < c.rows; r++) { const x = size[splits[b][r]]; x[0]++; x[1] += c.positionsOf(r); x[2] += c.alternativesOf(r); } });
  const outs: Record<Split, SplitOut> = { train: new SplitOut('train', size.train[0], size.train[1], size.train[2], labelScratch.train), val: new SplitOut('val', size.val[0], size.val[1], size.val[2], labelScratch.val) };
  const span = new Span();
  let records = 0;
  // per-record scratch
  let starts = new Int32Array(1024);
  const alts = new Alts();
  const scratch = reused.bulk;
  const meta = new Int32Array(16), io = new Int32Array(16), k = cache.kernels;
  for (let b = 0; b < batches.length; b++) {
    const c = batches[b];
    const bulk = cache.native ? c.bulk(cache.native, scratch) : null;
    cache.sync();
    const args = bulk ? c.rowArgs(bulk, meta) : null;
    for (let r = 0; r < c.rows; r++) {
      records++;
      const inputId = c.inputId.str(r)!;
      const out = outs[splits[b][r]];
      const st = out.c;
      const idBase = out.ids.n, labBase = out.m0.n, altBase = out.first.n;
      const prompt = c.prompt ? c.prompt.str(r) : null;
      if (prompt) for (const id of tokenizer.encode(prompt)) out.ids.push(id);
      const from = c.firstLabelled(r);
      const [lo, hi] = c.posRange(r);
      const n = hi - lo;
      let contextEnd = -1, labelled = 0, nativeDone = false;
      if (args && k) {
        // the record's loops natively, unless it needs the JavaScript path (a token from its string, …)
        const nAlt = c.alternativesOf(r), room = n * cache.maxLen;
        out.ids.reserve(room); out.mask.reserve(out.ids.n + room - out.mask.n);
        out.m0.reserve(n); out.pOff.reserve(n); out.first.reserve(nAlt); out.lps.reserve(nAlt); out.p.reserve(nAlt); out.one.reserve(nAlt);
        c.rowMeta(r, n, from, meta);
        io[0] = idBase; io[1] = out.ids.n; io[2] = out.m0.n; io[3] = out.first.n; io[4] = out.p.n;
        const v = cache.views;
        k.pass2Row(...args, v[0], v[1], v[2], v[3], v[4], out.ids.a, out.mask.a, out.m0.a, out.pOff.a, out.first.a, out.lps.a, out.p.a, out.one.a, io);
        if (io[5] === 0) {
          out.ids.n = out.mask.n = io[1]; out.m0.n = out.pOff.n = io[2]; out.first.n = out.lps.n = io[3]; out.p.n = out.one.n = io[4];
          contextEnd = io[6]; st.teacherPositions += io[7]; labelled = io[8]; st.labelled += labelled;
          st.noPredecessor += io[9]; st.noAlternatives += io[10]; st.bytes.reported += io[11];
          nativeDone = true;
        }
      }
      if (!nativeDone) {
        if (starts.length < n) starts = new Int32Array(n * 2);
        for (let i = 0; i < n; i++) {
          starts[i] = -1;
          const t = c.posToken(r, i, lo, cache.table, span, st.bytes, bulk);
          if (t < 0) {
            st.missingTokens++;
            continue;
          }
          if (t >= cache.encoded) cache.sync();
          if (i >= from && contextEnd < 0) contextEnd = out.ids.n - idBase;
          starts[i] = out.ids.n - idBase;
          const s0 = cache.start(t), cnt = cache.count(t);
          out.ids.reserve(cnt);
          for (let k = 0; k < cnt; k++) out.ids.a[out.ids.n++] = cache.ids.a[s0 + k];
        }
        if (contextEnd < 0) contextEnd = out.ids.n - idBase;
        const L = out.ids.n - idBase;
        out.mask.reserve(L);
        out.mask.a.fill(0, idBase, idBase + L);
        out.mask.n = idBase + L;
        for (let i = from; i < n; i++) {
          if (starts[i] < 0) continue;
          st.teacherPositions++;
          const m0 = c.alternatives(r, i, cache.table, span, st.bytes, alts, bulk);
          if (cache.table.size > cache.encoded) cache.sync();
          out.p.reserve(m0);
          out.one.reserve(m0);
          const ts = alts.ts, lps = alts.lps, ps = alts.ps, first = cache.first.a, one = cache.one.a, pa = out.p.a, oa = out.one.a;
          const p0 = out.p.n;
          let pn = p0;
          for (let a = 0; a < m0; a++) {
            pa[pn] = ps[a];
            oa[pn++] = one[ts[a]];
          }
          out.p.n = pn;
          out.one.n = pn;
          if (m0 === 0) {
            st.noAlternatives++;
            continue;
          }
          const pos = starts[i] - 1;
          if (pos < 0) {
            st.noPredecessor++;
            continue;
          }
          out.mask.a[idBase + pos] = 1;
          out.m0.push(m0);
          out.pOff.push(p0);
          out.first.reserve(m0); out.lps.reserve(m0);
          const fa = out.first.a, la = out.lps.a;
          let en = out.first.n;
          for (let a = 0; a < m0; a++, en++) {
            fa[en] = first[ts[a]];
            la[en] = lps[a];
          }
          out.first.n = out.lps.n = en;
          st.labelled++;
          labelled++;
        }
      }
      const L = out.ids.n - idBase;
      const targetFrom = Math.max(0, contextEnd - 1);
      if (labelled === 0 && L - 1 <= targetFrom) {
        st.emptySequences++;
        out.ids.n = idBase; out.mask.n = idBase; out.m0.n = out.pOff.n = labBase; out.first.n = out.lps.n = altBase;
        continue;
      }
      st.sequences++;
      st.targeted += Math.max(0, L - 1 - targetFrom);
      out.inputIds.push(inputId);
      out.targetFrom.push(targetFrom);
      out.idOff.push(out.ids.n);
      out.labOff.push(out.m0.n);
    }
  }
  const finish = (s: SplitOut): Pass2Split => {
    const rows = s.inputIds.length;
    const lab = label({ n: s.m0.n, m0: s.m0.a, pOff: s.pOff.a, first: s.first.a, lp: s.lps.a, p: s.p.a }, tokenizer.vocabSize, o.version, cache.kernels);
    if (lab.maxK > s.c.maxK) s.c.maxK = lab.maxK;
    const labOff = s.labOff.view();
    let v2: Partial<SeqBlock> = {};
    if (o.version !== 1) {
      // the ids packed here (a worker thread, in a parallel build), not by the thread writing the shards
      const { rowEnt } = entryOffsets({ rows, labOff, counts: lab.counts });
      const bits = idBits(tokenizer.vocabSize);
      v2 = { best16: lab.best16, lp8: lab.lp8, ...packRows(lab.topIds, rowEnt, bits, cache.kernels), idBits: bits };
    }
    const block: SeqBlock = {
      version: o.version, rows, inputIds: s.inputIds, targetFrom: s.targetFrom.view(), idOff: s.idOff.view(),
      ids: s.ids.view(), mask: s.mask.view(), labOff, counts: lab.counts, topIds: lab.topIds,
      ...(o.version === 1 ? { lp16: lab.lp16 } : v2),
    };
    return { block, counts: s.c, entropies: lab.entropies, p: s.p.view(), one: s.one.view() };
  };
  return { records, splits: { train: finish(outs.train), val: finish(outs.val) } };
}

export { SplitCache };
