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
import { KdError } from '../core/errors.js';
import type { DatasetVersion, Split } from '../schema/dataset.js';
import { type ByteSourceStats, firstLabelled, newByteStats } from '../tokenizer/derive.js';
import type { RawRecord } from '../schema/raw.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { type ConvertStats, entropy, logAddExp, splitOf } from './convert.js';
import { type SeqBlock, encodeLogprobs } from '../data/shards.js';
import { openRawStream } from './raw-columns.js';

// ---------------------------------------------------------------------------------------------
// growable typed arrays and a byte-string hash table

type TA = Int32Array | Uint16Array | Uint8Array | Float64Array;

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

/** Byte strings → dense indices in first-insertion order (FNV-1a, open addressing). */
export class ByteTable {
  private pool = new Uint8Array(1 << 16);
  private poolN = 0;
  private start = new Int32Array(1024);
  private len = new Int32Array(1024);
  private hashes = new Int32Array(1024);
  private slots = new Int32Array(2048).fill(-1);
  size = 0;

  /** The index of buf[s..e), inserting it when new. */
  intern(buf: Uint8Array, s: number, e: number): number {
    let h = 0x811c9dc5 | 0;
    for (let i = s; i < e; i++) h = Math.imul(h ^ buf[i], 16777619);
    const mask = this.slots.length - 1;
    const n = e - s;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const t = this.slots[slot];
      if (t < 0) break;
      if (this.hashes[t] === h && this.len[t] === n) {
        const o = this.start[t];
        let same = true;
        for (let i = 0; i < n; i++) if (this.pool[o + i] !== buf[s + i]) { same = false; break; }
        if (same) return t;
      }
    }
    return this.insert(buf, s, e, h);
  }

  private insert(buf: Uint8Array, s: number, e: number, h: number): number {
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
    if (this.size * 2 > this.slots.length) this.rehash();
    else this.place(t);
    return t;
  }

  private place(t: number): void {
    const mask = this.slots.length - 1;
    let slot = this.hashes[t] & mask;
    while (this.slots[slot] >= 0) slot = (slot + 1) & mask;
    this.slots[slot] = t;
  }

  private rehash(): void {
    this.slots = new Int32Array(this.slots.length * 2).fill(-1);
    for (let t = 0; t < this.size; t++) this.place(t);
  }

  bytes(t: number): Uint8Array {
    return this.pool.subarray(this.start[t], this.start[t] + this.len[t]);
  }

  /** Every key, in index order: one pool and offsets (transferable). */
  dump(): { pool: Uint8Array; off: Int32Array } {
    const off = new Int32Array(this.size + 1);
    for (let t = 0; t < this.size; t++) off[t + 1] = off[t] + this.len[t];
    const pool = new Uint8Array(off[this.size]);
    for (let t = 0; t < this.size; t++) pool.set(this.bytes(t), off[t]);
    return { pool, off };
  }
}

// ---------------------------------------------------------------------------------------------
// raw columns

const valid = (d: Data, i: number): boolean => {
  if (d.nullCount === 0 || !d.nullBitmap || d.nullBitmap.length === 0) return true;
  const j = d.offset + i;
  return ((d.nullBitmap[j >> 3] >> (j & 7)) & 1) === 1;
};

/** A List<T> column: row r's items are child indices [lo(r), hi(r)), or none when the row is null. */
class ListCol {
  constructor(readonly d: Data | null) {}
  has(r: number): boolean {
    return this.d !== null && valid(this.d, r);
  }
  lo(r: number): number { return this.d!.valueOffsets[this.d!.offset + r]; }
  hi(r: number): number { return this.d!.valueOffsets[this.d!.offset + r + 1]; }
}

/** A Utf8 or Binary column's value i: bytes [s, e) of `values`, or absent. */
class BytesCol {
  readonly values: Uint8Array;
  readonly off: Int32Array;
  constructor(readonly d: Data) {
    this.values = d.values as Uint8Array;
    this.off = d.valueOffsets as Int32Array;
  }
  has(i: number): boolean { return valid(this.d, i); }
  s(i: number): number { return this.off[this.d.offset + i]; }
  e(i: number): number { return this.off[this.d.offset + i + 1]; }
  str(i: number): string | null {
    return valid(this.d, i) ? Buffer.from(this.values.buffer, this.values.byteOffset, this.values.byteLength).toString('utf8', this.s(i), this.e(i)) : null;
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

const usable = (x: number): boolean => Number.isFinite(x) && x > -9999;

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
    this.lpChild = tl.children[0].children[0];
  }
  readonly lpChild: Data;

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

  /** the token_bytes index of row r's position i (i from 0), or −1 */
  tokBytesIdx(r: number, i: number): number {
    if (!this.tokBytes.has(r)) return -1;
    const k = this.tokBytes.lo(r) + i;
    return k < this.tokBytes.hi(r) ? k : -1;
  }

  /** alternatives of row r's position i: [lo, hi) into the log-prob values, or null (no list) */
  lpRange(r: number, i: number): [number, number] | null {
    if (!this.topLp.has(r)) return null;
    const p = this.topLp.lo(r) + i;
    if (p >= this.topLp.hi(r) || !valid(this.topLpData, p)) return null;
    return [this.topLpData.valueOffsets[this.topLpData.offset + p], this.topLpData.valueOffsets[this.topLpData.offset + p + 1]];
  }

  /** the top-k list index (into the inner lists of col) of row r's position i, or −1 */
  static posIdx(outer: ListCol, inner: ListCol, r: number, i: number): number {
    if (!outer.has(r)) return -1;
    const p = outer.lo(r) + i;
    if (p >= outer.hi(r) || !inner.has(p)) return -1;
    return p;
  }

  lp(v: number): number {
    return valid(this.lpChild, v) ? this.topLpVals[this.lpChild.offset + v] : Number.NaN;
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
  /** per event: t ≥ 0 adds p to token t's mass; −1 − t counts one emission of token t */
  events: Int32Array;
  /** the probability of every mass event, in order */
  p: Float64Array;
  positions: number;
  bytes: ByteSourceStats;
  models: string[];
}

/** {@link VocabCounter.add} over every record of a shard. */
export function pass1(bytes: Uint8Array, file: string): Pass1Result {
  const table = new ByteTable();
  const events = i32(1 << 16), p = f64(1 << 16);
  const stats = newByteStats();
  const models = new Set<string>();
  const span = new Span();
  let positions = 0;
  for (const c of rawBatches(bytes, file)) {
    for (let r = 0; r < c.rows; r++) {
      const model = c.model.str(r);
      if (model) models.add(model);
      const [lo, hi] = c.posRange(r);
      const n = hi - lo;
      for (let i = c.firstLabelled(r); i < n; i++) {
        if (!span.resolve(c.tokBin, c.tokBytesIdx(r, i), c.tokStr, lo + i, stats)) continue;
        positions++;
        events.push(-1 - table.intern(span.buf, span.s, span.e));
        const lr = c.lpRange(r, i);
        if (!lr) continue;
        const ti = RawCols.posIdx(c.topTok, c.posTokL, r, i), bi = RawCols.posIdx(c.topBytes, c.posBytesL, r, i);
        const tLo = ti >= 0 ? c.posTokL.lo(ti) : 0, tN = ti >= 0 ? c.posTokL.hi(ti) - tLo : 0;
        const bLo = bi >= 0 ? c.posBytesL.lo(bi) : 0, bN = bi >= 0 ? c.posBytesL.hi(bi) - bLo : 0;
        for (let v = lr[0], j = 0; v < lr[1]; v++, j++) {
          const lp = c.lp(v);
          if (!usable(lp)) continue;
          if (!span.resolve(c.topBin, j < bN ? bLo + j : -1, c.topTokStr, j < tN ? tLo + j : -1, stats)) continue;
          events.push(table.intern(span.buf, span.s, span.e));
          p.push(Math.exp(lp));
        }
      }
    }
  }
  const { pool, off } = table.dump();
  return { pool, off, events: events.view().slice(), p: p.view().slice(), positions, bytes: stats, models: [...models] };
}

// ---------------------------------------------------------------------------------------------
// pass 2: conversion

/** {@link TeacherMap} on interned bytes: teacher token → its student ids (cached). */
class SplitCache {
  readonly table = new ByteTable();
  private off = i32(1024);
  private len = i32(1024);
  readonly ids = i32(4096);
  constructor(readonly tokenizer: Tokenizer) {}

  /** the token's index; its ids are ids.a[start(t)..start(t)+count(t)) */
  get(buf: Uint8Array, s: number, e: number): number {
    const before = this.table.size;
    const t = this.table.intern(buf, s, e);
    if (t === before) {
      const enc = this.tokenizer.encode(buf.subarray(s, e));
      this.off.push(this.ids.n);
      this.len.push(enc.length);
      this.ids.reserve(enc.length);
      for (const x of enc) this.ids.push(x);
    }
    return t;
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

class SplitOut {
  inputIds: string[] = [];
  targetFrom = i32();
  idOff = i32();
  ids = u16(1 << 14);
  mask = u8(1 << 14);
  labOff = i32();
  counts = i32(1 << 12);
  topIds = u16(1 << 16);
  lps = f64(1 << 16);
  entropies = f64(1 << 12);
  p = f64(1 << 16);
  one = u8(1 << 16);
  c: Pass2Counts = {
    sequences: 0, teacherPositions: 0, labelled: 0, noPredecessor: 0, noAlternatives: 0, missingTokens: 0, emptySequences: 0,
    maxK: 0, bytes: newByteStats(), targeted: 0,
  };
  constructor() {
    this.idOff.push(0);
    this.labOff.push(0);
  }
}

/** {@link convertRecord} over every record of a shard, split by {@link splitOf}. */
export function pass2(bytes: Uint8Array, file: string, tokenizer: Tokenizer, o: { seed: number; valFraction: number; version: DatasetVersion }, cache = new SplitCache(tokenizer)): Pass2Result {
  const outs: Record<Split, SplitOut> = { train: new SplitOut(), val: new SplitOut() };
  const span = new Span();
  let records = 0;
  // per-record scratch
  let starts = new Int32Array(1024);
  const mIds = new Int32Array(256), mLps = new Float64Array(256);
  let mIdsBig = mIds, mLpsBig = mLps;
  for (const c of rawBatches(bytes, file)) {
    for (let r = 0; r < c.rows; r++) {
      records++;
      const inputId = c.inputId.str(r)!;
      const out = outs[splitOf(inputId, o.seed, o.valFraction)];
      const st = out.c;
      const idBase = out.ids.n, labBase = out.counts.n, entBase = out.topIds.n, entrBase = out.entropies.n;
      const prompt = c.prompt ? c.prompt.str(r) : null;
      if (prompt) for (const id of tokenizer.encode(prompt)) out.ids.push(id);
      const from = c.firstLabelled(r);
      const [lo, hi] = c.posRange(r);
      const n = hi - lo;
      if (starts.length < n) starts = new Int32Array(n * 2);
      let contextEnd = -1;
      for (let i = 0; i < n; i++) {
        starts[i] = -1;
        if (!span.resolve(c.tokBin, c.tokBytesIdx(r, i), c.tokStr, lo + i, st.bytes)) {
          st.missingTokens++;
          continue;
        }
        if (i >= from && contextEnd < 0) contextEnd = out.ids.n - idBase;
        starts[i] = out.ids.n - idBase;
        const t = cache.get(span.buf, span.s, span.e);
        const s0 = cache.start(t), cnt = cache.count(t);
        out.ids.reserve(cnt);
        for (let k = 0; k < cnt; k++) out.ids.a[out.ids.n++] = cache.ids.a[s0 + k];
      }
      if (contextEnd < 0) contextEnd = out.ids.n - idBase;
      const L = out.ids.n - idBase;
      const targetFrom = Math.max(0, contextEnd - 1);
      out.mask.reserve(L);
      out.mask.a.fill(0, idBase, idBase + L);
      out.mask.n = idBase + L;
      let labelled = 0;
      for (let i = from; i < n; i++) {
        if (starts[i] < 0) continue;
        st.teacherPositions++;
        let m = 0;
        const lr = c.lpRange(r, i);
        if (lr) {
          const ti = RawCols.posIdx(c.topTok, c.posTokL, r, i), bi = RawCols.posIdx(c.topBytes, c.posBytesL, r, i);
          const tLo = ti >= 0 ? c.posTokL.lo(ti) : 0, tN = ti >= 0 ? c.posTokL.hi(ti) - tLo : 0;
          const bLo = bi >= 0 ? c.posBytesL.lo(bi) : 0, bN = bi >= 0 ? c.posBytesL.hi(bi) - bLo : 0;
          if (lr[1] - lr[0] > mIdsBig.length) { mIdsBig = new Int32Array(lr[1] - lr[0]); mLpsBig = new Float64Array(lr[1] - lr[0]); }
          for (let v = lr[0], j = 0; v < lr[1]; v++, j++) {
            const lp = c.lp(v);
            if (!usable(lp)) continue;
            if (!span.resolve(c.topBin, j < bN ? bLo + j : -1, c.topTokStr, j < tN ? tLo + j : -1, st.bytes)) continue;
            const t = cache.get(span.buf, span.s, span.e);
            const p = Math.exp(lp);
            out.p.push(p);
            out.one.push(cache.count(t) === 1 ? 1 : 0);
            const id = cache.ids.a[cache.start(t)];
            let k = 0;
            while (k < m && mIdsBig[k] !== id) k++;
            if (k === m) { mIdsBig[m] = id; mLpsBig[m] = lp; m++; }
            else mLpsBig[k] = logAddExp(mLpsBig[k], lp);
          }
        }
        if (m === 0) {
          st.noAlternatives++;
          continue;
        }
        const pos = starts[i] - 1;
        if (pos < 0) {
          st.noPredecessor++;
          continue;
        }
        // sort by log-prob descending, then id ascending (insertion sort: k is small)
        for (let a = 1; a < m; a++) {
          const id = mIdsBig[a], lp = mLpsBig[a];
          let b = a - 1;
          while (b >= 0 && (mLpsBig[b] < lp || (mLpsBig[b] === lp && mIdsBig[b] > id))) {
            mIdsBig[b + 1] = mIdsBig[b]; mLpsBig[b + 1] = mLpsBig[b]; b--;
          }
          mIdsBig[b + 1] = id; mLpsBig[b + 1] = lp;
        }
        out.mask.a[idBase + pos] = 1;
        out.counts.push(m);
        out.topIds.reserve(m);
        out.lps.reserve(m);
        for (let k = 0; k < m; k++) {
          out.topIds.a[out.topIds.n++] = mIdsBig[k];
          out.lps.a[out.lps.n++] = mLpsBig[k];
        }
        out.entropies.push(entropy(mLpsBig.subarray(0, m)));
        if (m > st.maxK) st.maxK = m;
        st.labelled++;
        labelled++;
      }
      if (labelled === 0 && L - 1 <= targetFrom) {
        st.emptySequences++;
        out.ids.n = idBase; out.mask.n = idBase; out.counts.n = labBase; out.topIds.n = entBase; out.lps.n = entBase; out.entropies.n = entrBase;
        continue;
      }
      st.sequences++;
      st.targeted += Math.max(0, L - 1 - targetFrom);
      out.inputIds.push(inputId);
      out.targetFrom.push(targetFrom);
      out.idOff.push(out.ids.n);
      out.labOff.push(out.counts.n);
    }
  }
  const finish = (s: SplitOut): Pass2Split => {
    const counts = s.counts.view().slice(), rows = s.inputIds.length;
    const block: SeqBlock = {
      version: o.version, rows, inputIds: s.inputIds, targetFrom: s.targetFrom.view().slice(), idOff: s.idOff.view().slice(),
      ids: s.ids.view().slice(), mask: s.mask.view().slice(), labOff: s.labOff.view().slice(), counts, topIds: s.topIds.view().slice(),
      ...encodeLogprobs(o.version, counts, counts.length, s.lps.view(), s.lps.n),
    };
    return { block, counts: s.c, entropies: s.entropies.view().slice(), p: s.p.view().slice(), one: s.one.view().slice() };
  };
  return { records, splits: { train: finish(outs.train), val: finish(outs.val) } };
}

export { SplitCache };
