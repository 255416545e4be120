/**
 * Incremental decoding with a KV cache: the same model as gpt.ts's forwardHidden, run on new tokens
 * only, attending to the keys and values of the tokens before them. A step of one token costs
 * O(context) instead of a whole forward pass over the context. Shared by `kd eval` (generation and
 * latency), `kd serve` (generation) and anything else that decodes token by token.
 *
 *   cache: per block i, keys and values [B, H_i, L, hd] of the L tokens seen so far (positions 0..L)
 *   extend(cache, ids [B, t]) → logits of the last new position [B, V] and a NEW cache of L + t tokens
 *
 * A cache is immutable: extending it returns a new one and leaves the old one usable (a latency
 * benchmark times many steps from one cache), so the caller disposes each cache it no longer needs.
 * Positions are absolute (learned position embeddings), so a cache holds at most seqLen tokens;
 * past that KvDecoder runs each step on the last seqLen tokens (see there).
 */
import * as tf from '@tensorflow/tfjs';
import { blockShape } from './config.js';
import { type Model, gelu, layerNorm, weight } from './gpt.js';

export interface KvCache {
  B: number;
  /** tokens held (the next token's position) */
  length: number;
  /** per block: [B, H_i, length, hd] */
  keys: tf.Tensor4D[];
  values: tf.Tensor4D[];
}

export function disposeCache(c: KvCache | null | undefined): void {
  if (!c) return;
  for (const t of [...c.keys, ...c.values]) t.dispose();
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
  const c = m.config;
  const [B, t] = ids.shape;
  const L = cache?.length ?? 0;
  if (cache && cache.B !== B) throw new Error(`the cache holds ${cache.B} rows, the input has ${B}`);
  if (L + t > c.seqLen) throw new Error(`a cache of ${L} tokens plus ${t} new ones exceeds the model's seqLen ${c.seqLen}`);
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
    if (!o.all && t > 1) hf = tf.reshape(tf.slice(tf.reshape(hf, [B, t, c.dModel]), [0, t - 1, 0], [B, 1, c.dModel]), [B, c.dModel]);
    const logits = tf.matMul(hf, weight(m, 'wte') as tf.Tensor2D, false, true) as tf.Tensor2D;
    return { logits, keys, values };
  });
  return { logits: out.logits, cache: { B, length: L + t, keys: out.keys, values: out.values } };
}

/** Keeps rows `rows` of a cache (choices that finished drop out); returns a new cache. */
export function selectRows(c: KvCache, rows: number[]): KvCache {
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
    const ids = tf.tensor2d(Int32Array.from(fresh.flat()), [fresh.length, fresh[0].length], 'int32');
    try {
      const { logits, cache } = extendCache(this.model, this.cache, ids);
      disposeCache(this.cache);
      this.cache = cache;
      const lp = tf.tidy(() => tf.logSoftmax(temperature === 1 ? logits : tf.div(logits, temperature)) as tf.Tensor2D);
      logits.dispose();
      return lp;
    } finally {
      ids.dispose();
    }
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
