/**
 * Incremental decoding with a KV cache: the same model as gpt.ts's forwardHidden, run on new tokens
 * only, attending to the keys and values of the tokens before them. Shared by `kd eval` (generation and
 * latency), `kd serve` (generation) and anything else that decodes token by token.
 *
 *   cache: per block i, the keys and values of the L tokens seen so far (positions 0..L)
 *   extend(cache, ids [B, t]) → logits of the last new position [B, V] and a NEW cache of L + t tokens
 *
 * Two ways to run a step, with the same results (within float rounding):
 * - with kd's native kernels (wasm or cpu backend, src/backend/native.ts), the whole step runs as a few
 *   dozen kernel calls on views of the weights — no tfjs op until the logits — and the cache lives in a
 *   store outside tfjs: per block, keys and values transposed [B, H_i, hd, capacity], written in place
 *   at the new positions, read by one attention kernel per block (decodeAttention in native/ops.cc).
 *   Nothing is copied per step (the store doubles its capacity when full, up to seqLen), so a token's
 *   cost grows with the context only by attention's own reads of the cached keys and values.
 * - otherwise, tfjs ops: per block keys and values [B, H_i, L, hd] as tensors, concatenated with the
 *   new ones every step, attention by matMul/softmax over the L + t keys.
 *
 * A cache is immutable: extending it returns a new one and leaves the old one usable (a latency
 * benchmark times many steps from one cache), so the caller disposes each cache it no longer needs.
 * In a native store, caches extended from one another share memory: a step writes in place when no
 * live cache of the store is longer than the one it extends (the usual chain, each cache disposed once
 * extended), and otherwise first copies the prefix it reads into a new store.
 * Positions are absolute (learned position embeddings), so a cache holds at most seqLen tokens;
 * past that KvDecoder runs each step on the last seqLen tokens (see there).
 */
import * as tf from '@tensorflow/tfjs';
import { computeInto, inPlaceKernels, viewOf } from '../backend/io.js';
import type { NativeKernels } from '../backend/native.js';
import { blockShape } from './config.js';
import { type Model, gelu, layerNorm, weight } from './gpt.js';

export interface KvCache {
  B: number;
  /** tokens held (the next token's position) */
  length: number;
  /** tfjs ops' cache, per block: [B, H_i, length, hd] (empty for a native cache) */
  keys: tf.Tensor4D[];
  values: tf.Tensor4D[];
  /** the native kernels' cache (see KvStore), or undefined */
  store?: KvStore;
}

/**
 * Keys and values for the native kernels, per block i transposed, kt and vt [B, H_i, hd, cap]: row
 * (b, h, c) holds component c of head h's keys at positions 0..cap. `live` are the caches reading it,
 * each valid on positions 0..its length.
 */
export class KvStore {
  readonly kt: Float32Array[];
  readonly vt: Float32Array[];
  readonly live = new Set<KvCache>();

  constructor(readonly heads: readonly { H: number; hd: number }[], readonly B: number, readonly cap: number) {
    this.kt = heads.map(({ H, hd }) => new Float32Array(B * H * hd * cap));
    this.vt = heads.map(({ H, hd }) => new Float32Array(B * H * hd * cap));
  }

  /** A new store of capacity `cap` holding positions 0..L of rows `rows` (all by default) of this one. */
  copy(L: number, cap: number, rows?: readonly number[]): KvStore {
    const rs = rows ?? Array.from({ length: this.B }, (_, b) => b);
    const s = new KvStore(this.heads, rs.length, cap);
    this.heads.forEach(({ H, hd }, i) => {
      for (const [src, dst] of [[this.kt[i], s.kt[i]], [this.vt[i], s.vt[i]]]) {
        rs.forEach((r, b) => {
          for (let row = 0; row < H * hd; row++) {
            const from = (r * H * hd + row) * this.cap;
            dst.set(src.subarray(from, from + L), (b * H * hd + row) * cap);
          }
        });
      }
    });
    return s;
  }

  /** whether positions from L on are free to write: no live cache reads past L */
  freeFrom(L: number): boolean {
    for (const c of this.live) if (c.length > L) return false;
    return true;
  }
}

export function disposeCache(c: KvCache | null | undefined): void {
  if (!c) return;
  c.store?.live.delete(c);
  for (const t of [...c.keys, ...c.values]) t.dispose();
}

/** The native kernels a native step needs, or null (not built, disabled, another backend, an older build). */
function decodeKernels(): (NativeKernels & Required<Pick<NativeKernels, 'decodeAttention'>>) | null {
  const k = inPlaceKernels();
  return k?.decodeAttention ? (k as NativeKernels & Required<Pick<NativeKernels, 'decodeAttention'>>) : null;
}

/** Additive mask [t, L + t] for t new queries after L cached tokens: query i sees keys j ≤ L + i. */
function offsetCausalMask(t: number, L: number): tf.Tensor2D {
  const m = new Float32Array(t * (L + t));
  for (let i = 0; i < t; i++) for (let j = L + i + 1; j < L + t; j++) m[i * (L + t) + j] = -1e9;
  return tf.tensor2d(m, [t, L + t]);
}

/**
 * Runs `ids` [B, t] at positions cache.length … cache.length + t − 1 (cache null = an empty one).
 * Returns the logits at every new position [B·t, V] (`all`) or the last one [B, V], and the new cache.
 */
export function extendCache(m: Model, cache: KvCache | null, ids: tf.Tensor2D, o: { all?: boolean } = {}): { logits: tf.Tensor2D; cache: KvCache } {
  const [B, t] = ids.shape;
  return extend(m, cache, B, t, () => ids.dataSync() as Int32Array, () => ids, o.all ?? false);
}

/**
 * For KvDecoder: ids as rows of token ids, and the last position's log-probabilities at `temperature`
 * (log-softmax of logits / temperature) in place of the logits.
 */
function extendRows(m: Model, cache: KvCache | null, rows: readonly (readonly number[])[], temperature: number): { logProbs: tf.Tensor2D; cache: KvCache } {
  const B = rows.length, t = rows[0].length;
  const flat = () => Int32Array.from(rows.flat());
  let ids: tf.Tensor2D | undefined;
  try {
    const r = extend(m, cache, B, t, flat, () => (ids = tf.tensor2d(flat(), [B, t], 'int32')), false, temperature);
    return { logProbs: r.logits, cache: r.cache };
  } finally {
    ids?.dispose();
  }
}

/** extendCache's work; with `temperature`, returns log-probabilities (log-softmax of logits / temperature) as `logits` */
function extend(m: Model, cache: KvCache | null, B: number, t: number, idsArray: () => Int32Array, idsTensor: () => tf.Tensor2D,
  all: boolean, temperature?: number): { logits: tf.Tensor2D; cache: KvCache } {
  const L = cache?.length ?? 0;
  if (cache && cache.B !== B) throw new Error(`the cache holds ${cache.B} rows, the input has ${B}`);
  if (L + t > m.config.seqLen) throw new Error(`a cache of ${L} tokens plus ${t} new ones exceeds the model's seqLen ${m.config.seqLen}`);
  const k = decodeKernels();
  if (cache?.store || (!cache && k)) {
    if (!k) throw new Error('a cache made with the native kernels cannot be extended without them');
    return nativeExtend(m, k, cache, idsArray(), B, t, all, temperature);
  }
  const r = tensorExtend(m, cache, idsTensor(), all);
  if (temperature === undefined) return r;
  const lp = tf.tidy(() => tf.logSoftmax(temperature === 1 ? r.logits : tf.div(r.logits, temperature)) as tf.Tensor2D);
  r.logits.dispose();
  return { logits: lp, cache: r.cache };
}

/** a store's capacity for `need` positions and room for more: doubling from 64, at most seqLen */
function capacity(need: number, seqLen: number): number {
  let c = 64;
  while (c <= need) c *= 2;
  return Math.min(c, seqLen);
}

const ZERO = new Int32Array(1);

/**
 * Scratch arrays of a step, reused from step to step when the step is small (a decoding step's few rows):
 * there a fresh Float32Array each (a dozen per step, each a calloc, a free and V8's array-buffer sweeping
 * on another thread) cost ~25% of a small student's step. A prompt's big arrays are allocated as before and not kept.
 * `scratch(slot, n)` is a view of n floats; every caller overwrites all of it before reading.
 */
const POOL_ROWS = 64;
const pool: Float32Array[] = [];
function scratchFor(rows: number): (slot: number, n: number) => Float32Array {
  if (rows > POOL_ROWS) return (_slot, n) => new Float32Array(n);
  return (slot, n) => {
    let a = pool[slot];
    if (!a || a.length < n) a = pool[slot] = new Float32Array(Math.max(n, 2 * (a?.length ?? 0)));
    return a.subarray(0, n);
  };
}

/** One step with the native kernels (see the file's doc): the same math as tensorExtend. */
function nativeExtend(m: Model, k: NativeKernels & Required<Pick<NativeKernels, 'decodeAttention'>>, cache: KvCache | null, ids: Int32Array,
  B: number, t: number, all: boolean, temperature?: number): { logits: tf.Tensor2D; cache: KvCache } {
  const c = m.config, d = c.dModel, N = B * t, L = cache?.length ?? 0;
  let store: KvStore;
  if (!cache) {
    store = new KvStore(Array.from({ length: c.nLayers }, (_, i) => { const s = blockShape(c, i); return { H: s.nHeads, hd: s.headDim }; }), B, capacity(t, c.seqLen));
  } else {
    const s = cache.store!;
    if (!s.live.has(cache)) throw new Error('the cache was disposed');
    store = s.freeFrom(L) && L + t <= s.cap ? s : s.copy(L, capacity(L + t, c.seqLen));
  }
  for (let n = 0; n < N; n++) if (!(ids[n] >= 0 && ids[n] < c.vocabSize)) throw new Error(`token id ${ids[n]} is outside the vocabulary (${c.vocabSize})`);
  // Views of the weights; on wasm valid until the next tfjs allocation, which only the logits make.
  const w = (name: string) => viewOf(weight(m, name)) as Float32Array;
  const gemm = (a: Float32Array, b: Float32Array, out: Float32Array, M: number, Nc: number, K: number, tB = false) =>
    k.gemm(a, ZERO, b, ZERO, out, 0, M, Nc, K, false, tB);
  const scratch = scratchFor(N);
  const x = scratch(0, N * d), h = scratch(1, N * d), y = scratch(2, N * d);
  const mean = scratch(3, N), rstd = scratch(4, N);
  const wte = w('wte'), wpe = w('wpe');
  for (let n = 0; n < N; n++) {
    const tok = ids[n] * d, pos = (L + (n % t)) * d;
    for (let j = 0; j < d; j++) x[n * d + j] = wte[tok + j] + wpe[pos + j];
  }
  for (let i = 0; i < c.nLayers; i++) {
    const { nHeads: H, headDim: hd, ffnDim: f } = blockShape(c, i);
    const a = H * hd;
    k.layerNormForward(x, w(`h${i}.ln1.g`), w(`h${i}.ln1.b`), h, mean, rstd, d, c.lnEps);
    const qkv = scratch(5, N * 3 * a);
    gemm(h, w(`h${i}.attn.qkv`), qkv, N, 3 * a, d);
    const att = scratch(6, N * a);
    k.decodeAttention(qkv, store.kt[i], store.vt[i], att, B, t, L, store.cap, H, hd, 1 / Math.sqrt(hd));
    gemm(att, w(`h${i}.attn.proj`), y, N, d, a);
    k.addInto(x, y);
    k.layerNormForward(x, w(`h${i}.ln2.g`), w(`h${i}.ln2.b`), h, mean, rstd, d, c.lnEps);
    const fc = scratch(7, N * f);
    gemm(h, w(`h${i}.mlp.fc`), fc, N, f, d);
    k.geluForward(fc, fc);
    gemm(fc, w(`h${i}.mlp.out`), y, N, d, f);
    k.addInto(x, y);
  }
  let rows = N, last = x;
  if (!all && t > 1) {
    rows = B;
    last = scratch(8, B * d);
    for (let b = 0; b < B; b++) last.set(x.subarray((b * t + t - 1) * d, (b * t + t) * d), b * d);
  }
  const hf = rows === N ? h : scratch(9, rows * d);
  k.layerNormForward(last, w('lnf.g'), w('lnf.b'), hf, mean, rstd, d, c.lnEps);
  const V = c.vocabSize;
  const logits = computeInto([rows, V], [weight(m, 'wte')], (out, [e]) => {
    gemm(hf, e as Float32Array, out, rows, V, d, true);
    if (temperature === undefined) return;
    // log-probabilities: s/T − log Σ exp(s/T) per row
    const inv = 1 / temperature, lse = new Float64Array(rows);
    k.softmaxRows(out, scratch(10, rows * V), lse, inv, scratch(11, rows).fill(1), false, V);
    for (let r = 0; r < rows; r++) for (let v = r * V; v < (r + 1) * V; v++) out[v] = out[v] * inv - lse[r];
  }) as tf.Tensor2D;
  const next: KvCache = { B, length: L + t, keys: [], values: [], store };
  store.live.add(next);
  return { logits, cache: next };
}

/** One step with tfjs ops (no native kernels): the cache as tensors, concatenated every step. */
function tensorExtend(m: Model, cache: KvCache | null, ids: tf.Tensor2D, all: boolean): { logits: tf.Tensor2D; cache: KvCache } {
  const c = m.config;
  const [B, t] = ids.shape;
  const L = cache?.length ?? 0;
  if (cache?.keys.some((k) => k.isDisposed)) throw new Error('the cache was disposed');
  const out = tf.tidy(() => {
    const tok = tf.gather(weight(m, 'wte'), tf.reshape(ids, [B * t])); // [B·t, d]
    const pos = tf.slice(weight(m, 'wpe'), [L, 0], [t, c.dModel]); // [t, d]
    let x = tf.reshape(tf.add(tf.reshape(tok, [B, t, c.dModel]), pos), [B * t, c.dModel]) as tf.Tensor2D;
    const mask = t > 1 ? offsetCausalMask(t, L) : null; // one new token sees everything
    const keys: tf.Tensor4D[] = [], values: tf.Tensor4D[] = [];
    for (let i = 0; i < c.nLayers; i++) {
      const { nHeads: H, headDim: hd } = blockShape(c, i);
      const h = layerNorm(x, weight(m, `h${i}.ln1.g`), weight(m, `h${i}.ln1.b`), c.lnEps);
      const qkv = tf.matMul(h, weight(m, `h${i}.attn.qkv`) as tf.Tensor2D); // [B·t, 3·H·hd]
      const heads = (z: tf.Tensor) => tf.transpose(tf.reshape(z, [B, t, H, hd]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, H, t, hd]
      const [q, kNew, vNew] = tf.split(qkv, 3, 1).map(heads);
      const k = cache ? tf.concat([cache.keys[i], kNew], 2) as tf.Tensor4D : kNew; // [B, H, L + t, hd]
      const v = cache ? tf.concat([cache.values[i], vNew], 2) as tf.Tensor4D : vNew;
      keys.push(k);
      values.push(v);
      const q3 = tf.reshape(q, [B * H, t, hd]), k3 = tf.reshape(k, [B * H, L + t, hd]), v3 = tf.reshape(v, [B * H, L + t, hd]);
      let scores = tf.mul(tf.matMul(q3, k3, false, true), 1 / Math.sqrt(hd)); // [B·H, t, L + t]
      if (mask) scores = tf.add(scores, mask);
      const y = tf.matMul(tf.softmax(scores), v3); // [B·H, t, hd]
      const a = tf.reshape(tf.transpose(tf.reshape(y, [B, H, t, hd]), [0, 2, 1, 3]), [B * t, H * hd]) as tf.Tensor2D;
      x = tf.add(x, tf.matMul(a, weight(m, `h${i}.attn.proj`) as tf.Tensor2D));
      const h2 = layerNorm(x, weight(m, `h${i}.ln2.g`), weight(m, `h${i}.ln2.b`), c.lnEps);
      x = tf.add(x, tf.matMul(gelu(tf.matMul(h2, weight(m, `h${i}.mlp.fc`) as tf.Tensor2D)) as tf.Tensor2D, weight(m, `h${i}.mlp.out`) as tf.Tensor2D));
    }
    let hf = layerNorm(x, weight(m, 'lnf.g'), weight(m, 'lnf.b'), c.lnEps); // [B·t, d]
    if (!all && t > 1) hf = tf.reshape(tf.slice(tf.reshape(hf, [B, t, c.dModel]), [0, t - 1, 0], [B, 1, c.dModel]), [B, c.dModel]);
    const logits = tf.matMul(hf, weight(m, 'wte') as tf.Tensor2D, false, true) as tf.Tensor2D;
    return { logits, keys, values };
  });
  return { logits: out.logits, cache: { B, length: L + t, keys: out.keys, values: out.values } };
}

/** Keeps rows `rows` of a cache (choices that finished drop out); returns a new cache. */
export function selectRows(c: KvCache, rows: number[]): KvCache {
  if (c.store) {
    const store = c.store.copy(c.length, c.store.cap, rows);
    const next: KvCache = { B: rows.length, length: c.length, keys: [], values: [], store };
    store.live.add(next);
    return next;
  }
  const idx = tf.tensor1d(rows, 'int32');
  try {
    return { B: rows.length, length: c.length, keys: c.keys.map((k) => tf.gather(k, idx, 0)), values: c.values.map((v) => tf.gather(v, idx, 0)) };
  } finally {
    idx.dispose();
  }
}

/**
 * Token-by-token decoding of B rows of equal length with a KV cache. `next(tokens)` appends one new
 * token per row (or a whole prompt per row the first time) and returns the next-token log-probs
 * [B, V] (the caller reads and disposes them). The log-probs are always those of the full forward
 * pass over the last seqLen tokens (what nextTokenLogProbs gives): while the context fits in seqLen
 * each step costs one token against the cache; past seqLen, positions shift every step, so each step
 * runs the whole window of the last seqLen tokens again (as without a cache).
 */
export class KvDecoder {
  private cache: KvCache | null = null;
  private rows: number[][] = [];

  constructor(readonly model: Model) {}

  /** tokens held in the cache */
  get length(): number {
    return this.cache?.length ?? 0;
  }

  next(tokens: readonly (readonly number[])[], temperature = 1): tf.Tensor2D {
    const t = tokens[0]?.length ?? 0;
    if (t === 0 || tokens.some((r) => r.length !== t)) throw new Error('KvDecoder.next: every row needs the same number (≥ 1) of new tokens');
    if (this.cache && tokens.length !== this.rows.length) throw new Error(`KvDecoder.next: ${tokens.length} rows, the decoder holds ${this.rows.length}`);
    if (!this.cache) this.rows = tokens.map(() => []);
    tokens.forEach((r, b) => this.rows[b].push(...r));
    const L = this.model.config.seqLen;
    let fresh: number[][];
    if (this.length + t > L) {
      disposeCache(this.cache);
      this.cache = null;
      const keep = Math.min(this.rows[0].length, L);
      fresh = this.rows.map((r) => r.slice(r.length - keep));
    } else fresh = tokens.map((r) => [...r]);
    const { logProbs, cache } = extendRows(this.model, this.cache, fresh, temperature);
    disposeCache(this.cache);
    this.cache = cache;
    return logProbs;
  }

  /** Keeps only rows `rows` (in that order). */
  select(rows: number[]): void {
    if (rows.length === this.rows.length && rows.every((r, i) => r === i)) return;
    this.rows = rows.map((r) => this.rows[r]);
    if (this.cache) {
      const c = selectRows(this.cache, rows);
      disposeCache(this.cache);
      this.cache = c;
    }
  }

  dispose(): void {
    disposeCache(this.cache);
    this.cache = null;
    this.rows = [];
  }
}
