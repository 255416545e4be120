/**
 * Labelling a split's positions in one call, the last step of the build's pass 2 (./columnar.ts): per
 * position, its usable alternatives (first student id, log-prob, exp of the log-prob) → merged by first
 * id (log-add-exp), sorted by log-prob descending then id ascending, the renormalised entropy, and the
 * log-probs in the output format's encoding (version 1: float16 of each; version 2: the best's float16
 * and 8-bit codes, ../schema/lp8.ts).
 *
 * Two implementations give the same bits: {@link labelJs} here, and the native addon's `label`
 * (native/build.cc, with V8's own fdlibm exp/log/log1p), used when it is built and not disabled
 * (KD_NATIVE=0); test/dataset/native-build.test.ts builds with both.
 */
import { nativeKernels } from '../backend/native.js';
import { FLOAT16_TABLE, toFloat16Bits } from '../schema/float16.js';
import { LP8_DELTA, encodeLp8, packIds, packedBytes } from '../schema/lp8.js';
import type { DatasetVersion } from '../schema/dataset.js';
import { entropy, logAddExp } from './convert.js';

/**
 * What {@link label} reads: n positions, position j's m0[j] ≥ 1 alternatives consecutive in first/lp,
 * and their Math.exp(lp) at p[pOff[j]..pOff[j]+m0[j]).
 */
export interface LabelInput {
  n: number;
  m0: Int32Array;
  pOff: Int32Array;
  first: Uint16Array;
  lp: Float32Array;
  p: Float64Array;
}

export interface LabelOutput {
  /** merged entries per position */
  counts: Int32Array;
  topIds: Uint16Array;
  entropies: Float64Array;
  lp16?: Uint16Array;
  best16?: Uint16Array;
  lp8?: Uint8Array;
  maxK: number;
}

/** The JavaScript implementation (the fallback; what the record-by-record convertRecord does per position). */
export function labelJs(x: LabelInput, vocabSize: number, version: DatasetVersion): LabelOutput {
  const { n, m0, pOff, first, lp, p } = x;
  let nAlt = 0;
  for (let j = 0; j < n; j++) nAlt += m0[j];
  const counts = new Int32Array(n), topIds = new Uint16Array(nAlt), entropies = new Float64Array(n);
  const lps = new Float64Array(nAlt), ps = new Float64Array(nAlt);
  const stamp = new Int32Array(vocabSize).fill(-1), slotOf = new Int32Array(vocabSize);
  let mIds = new Int32Array(64), mLps = new Float64Array(64), mPs = new Float64Array(64);
  let v = 0, e = 0, maxK = 0;
  for (let j = 0; j < n; j++) {
    const n0 = m0[j];
    if (n0 > mIds.length) { mIds = new Int32Array(n0); mLps = new Float64Array(n0); mPs = new Float64Array(n0); }
    let m = 0, merged = false;
    const q0 = pOff[j];
    for (let a = 0; a < n0; a++, v++) {
      const id = first[v], l = lp[v];
      if (stamp[id] !== j) { stamp[id] = j; slotOf[id] = m; mIds[m] = id; mLps[m] = l; mPs[m] = p[q0 + a]; m++; }
      else { const k = slotOf[id]; mLps[k] = logAddExp(mLps[k], l); mPs[k] = Number.NaN; merged = true; }
    }
    if (merged) for (let k = 0; k < m; k++) if (Number.isNaN(mPs[k])) mPs[k] = Math.exp(mLps[k]); // a merged log-prob's own exp
    // sort by log-prob descending, then id ascending (insertion sort: k is small)
    for (let a = 1; a < m; a++) {
      const id = mIds[a], l = mLps[a], q = mPs[a];
      let b = a - 1;
      while (b >= 0 && (mLps[b] < l || (mLps[b] === l && mIds[b] > id))) {
        mIds[b + 1] = mIds[b]; mLps[b + 1] = mLps[b]; mPs[b + 1] = mPs[b]; b--;
      }
      mIds[b + 1] = id; mLps[b + 1] = l; mPs[b + 1] = q;
    }
    counts[j] = m;
    if (m > maxK) maxK = m;
    for (let k = 0; k < m; k++, e++) { topIds[e] = mIds[k]; lps[e] = mLps[k]; ps[e] = mPs[k]; }
    entropies[j] = entropy(mLps, 0, m);
  }
  const out: LabelOutput = { counts, topIds: topIds.subarray(0, e), entropies, maxK };
  if (version === 1) {
    const lp16 = new Uint16Array(e);
    for (let k = 0; k < e; k++) lp16[k] = toFloat16Bits(lps[k]);
    out.lp16 = lp16;
  } else {
    const best16 = new Uint16Array(n), lp8 = new Uint8Array(e - n);
    for (let j = 0, k = 0; j < n; j++) {
      best16[j] = encodeLp8(lps, k, counts[j], lp8, k - j, ps);
      k += counts[j];
    }
    out.best16 = best16;
    out.lp8 = lp8;
  }
  return out;
}

/** The native addon's build kernels, when loaded and complete (older builds lack them). */
export function nativeBuild(): BuildKernels | null {
  const k = nativeKernels() as (ReturnType<typeof nativeKernels> & Partial<BuildKernels>) | null;
  return k && k.label && k.tableNew && k.tableIntern && k.tableDump && k.expF32 && k.pass1Row && k.pass2Row && k.group1 && k.fold1 && k.sums && k.packRows ? (k as unknown as BuildKernels) : null;
}

/** native/build.cc */
export interface BuildKernels {
  tableNew(): object;
  /** out[at + i − from] = the index of values[offsets[i]..offsets[i+1]) (−1: empty) for i in [from, to); returns the size */
  tableIntern(t: object, values: Uint8Array, offsets: Int32Array, from: number, to: number, out: Int32Array, at: number): number;
  /** the keys of indices from..size−1: one pool and offsets from 0 */
  tableDump(t: object, from: number): [Uint8Array, Int32Array];
  /** out[i − from] = Math.exp(x[i]) */
  expF32(x: Float32Array, from: number, to: number, out: Float64Array): void;
  /** op 0 exp (vectorised where the CPU can), 1 log, 2 log1p, 3 exp (scalar) of every x (tests) */
  mathF64(op: number, x: Float64Array, out: Float64Array): void;
  label(m0: Int32Array, pOff: Int32Array, first: Uint16Array, lp: Float32Array, p: Float64Array, vocab: number, version: number, f16: Float32Array,
    delta: Float64Array, counts: Int32Array, topIds: Uint16Array, entropies: Float64Array, lp16: Uint16Array | null,
    best16: Uint16Array | null, lp8: Uint8Array | null): [number, number];
  /**
   * One record's pass 1 loop (columnar.ts), its fast path: the 13 column arguments of RawCols.rowArgs,
   * then events, p and io ([evN, pN] in; [evN, pN, status (0 done, 1 left to JavaScript), positions, reported] out).
   */
  pass1Row(...args: unknown[]): void;
  /** One record's pass 2 loops (columnar.ts), their fast path (io: see native/build.cc) */
  pass2Row(...args: unknown[]): void;
  /** a shard's pass 1 events grouped by token (columnar.ts {@link group1Js}): returns how many tokens they name */
  group1(events: Int32Array, p: Float64Array, nLocal: number, order: Int32Array, cnt: Int32Array, qOff: Int32Array, qs: Float64Array): number;
  /** BuildFold.addPass1's fold of a shard's groups: returns the global table's size */
  fold1(global: object, pool: Uint8Array, off: Int32Array, order: Int32Array, cnt: Int32Array, qOff: Int32Array, qs: Float64Array, named: number,
    p: Float64Array, count: Float64Array, mass: Float64Array, total: Float64Array): number;
  /** a file mapped read-only: [its bytes, a handle], or null (empty, not mappable: read it); not on every platform */
  mapFile?(file: string): [ArrayBuffer, object] | null;
  /** detaches the buffer and unmaps the file */
  unmapFile?(buf: ArrayBuffer, handle: object): void;
  /** acc[at] += every x in order; with flags also acc[at + 1] += the flagged x */
  sums(x: Float64Array, flags: Uint8Array | null, acc: Float64Array, at: number): void;
  /** {@link packIds} row by row: ids[rowEnt[r]..rowEnt[r+1]) into out[packOff[r]..packOff[r+1]) (packOff filled) */
  packRows(ids: Uint16Array, rowEnt: Int32Array, bits: number, out: Uint8Array, packOff: Int32Array): void;
}

/**
 * A block's top-k ids packed row by row (what ../data/shards.ts writes for format version 2; each row
 * starts on a byte): row r's entries are topIds[rowEnt[r]..rowEnt[r+1]).
 */
export function packRows(topIds: Uint16Array, rowEnt: Int32Array, bits: number, k: BuildKernels | null = nativeBuild()): { packed: Uint8Array; packOff: Int32Array } {
  const rows = rowEnt.length - 1;
  let bytes = 0;
  for (let r = 0; r < rows; r++) bytes += packedBytes(rowEnt[r + 1] - rowEnt[r], bits);
  const packed = new Uint8Array(bytes), packOff = new Int32Array(rows + 1);
  if (k) {
    k.packRows(topIds, rowEnt, bits, packed, packOff);
    return { packed, packOff };
  }
  for (let r = 0; r < rows; r++) packOff[r + 1] = packOff[r] + packIds(topIds, rowEnt[r], rowEnt[r + 1] - rowEnt[r], bits, packed, packOff[r]);
  return { packed, packOff };
}

/** {@link labelJs}, natively when the addon is there. */
export function label(x: LabelInput, vocabSize: number, version: DatasetVersion, k: BuildKernels | null = nativeBuild()): LabelOutput {
  if (!k) return labelJs(x, vocabSize, version);
  const { n } = x;
  let nAlt = 0;
  for (let j = 0; j < n; j++) nAlt += x.m0[j];
  const counts = new Int32Array(n), topIds = new Uint16Array(nAlt), entropies = new Float64Array(n);
  const lp16 = version === 1 ? new Uint16Array(nAlt) : null, best16 = version === 1 ? null : new Uint16Array(n), lp8 = version === 1 ? null : new Uint8Array(nAlt);
  const [e, maxK] = k.label(x.m0.subarray(0, n), x.pOff, x.first, x.lp, x.p, vocabSize, version, FLOAT16_TABLE, LP8_DELTA, counts, topIds, entropies, lp16, best16, lp8);
  return {
    counts, topIds: topIds.subarray(0, e), entropies, maxK,
    ...(lp16 ? { lp16: lp16.subarray(0, e) } : { best16: best16!, lp8: lp8!.subarray(0, e - n) }),
  };
}
