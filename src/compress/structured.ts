/**
 * Structured pruning, pure: score attention heads and MLP neurons, then physically remove the
 * weakest so the model gets smaller and faster (the block's config records its new head count and
 * MLP width; the head size is kept).
 *
 * Layout (see model/gpt.ts): qkv [d, 3·H·hd] = [q heads | k heads | v heads], head h of part p at
 * columns p·H·hd + h·hd + j; proj [H·hd, d] rows h·hd + j; fc [d, f] column n; out [f, d] row n.
 *
 * Importance of a group of weights G (a head, or a neuron):
 *   - 'norm':   ‖w_G‖₂ over all its weights
 *   - 'taylor': first-order estimate of the KD-loss change when G is removed (Molchanov et al. 2019):
 *               Σ over batches of (Σ_{i∈G} w_i · ∂L/∂w_i)²
 */
import { type ModelConfig, blockShape } from '../model/config.js';

export type Importance = 'norm' | 'taylor';
export type Unit = 'heads' | 'neurons';

type Arrays = Map<string, Float32Array>;

/** Entries of each head of block i, as (weight name, flat indices). */
function headGroups(c: ModelConfig, i: number): { name: string; idx: number[] }[][] {
  const { nHeads: H, headDim: hd } = blockShape(c, i);
  const d = c.dModel;
  const W = 3 * H * hd;
  return Array.from({ length: H }, (_, h) => {
    const qkv: number[] = [], proj: number[] = [];
    for (let r = 0; r < d; r++) for (let p = 0; p < 3; p++) for (let j = 0; j < hd; j++) qkv.push(r * W + p * H * hd + h * hd + j);
    for (let j = 0; j < hd; j++) for (let col = 0; col < d; col++) proj.push((h * hd + j) * d + col);
    return [{ name: `h${i}.attn.qkv`, idx: qkv }, { name: `h${i}.attn.proj`, idx: proj }];
  });
}

/** Entries of each MLP neuron of block i. */
function neuronGroups(c: ModelConfig, i: number): { name: string; idx: number[] }[][] {
  const { ffnDim: f } = blockShape(c, i);
  const d = c.dModel;
  return Array.from({ length: f }, (_, n) => {
    const fc: number[] = [], out: number[] = [];
    for (let r = 0; r < d; r++) fc.push(r * f + n);
    for (let col = 0; col < d; col++) out.push(n * d + col);
    return [{ name: `h${i}.mlp.fc`, idx: fc }, { name: `h${i}.mlp.out`, idx: out }];
  });
}

const groupsOf = (unit: Unit) => (unit === 'heads' ? headGroups : neuronGroups);

/** Per block, one score per head or neuron. `grads` (a list of per-batch gradients) only for 'taylor'. */
export function importanceScores(c: ModelConfig, w: Arrays, unit: Unit, how: Importance, grads: Arrays[] = []): number[][] {
  return Array.from({ length: c.nLayers }, (_, i) => groupsOf(unit)(c, i).map((parts) => {
    if (how === 'norm') {
      let s = 0;
      for (const { name, idx } of parts) { const a = w.get(name)!; for (const k of idx) s += a[k] * a[k]; }
      return Math.sqrt(s);
    }
    let score = 0;
    for (const g of grads) {
      let dot = 0;
      for (const { name, idx } of parts) { const a = w.get(name)!, b = g.get(name)!; for (const k of idx) dot += a[k] * b[k]; }
      score += dot * dot;
    }
    return score;
  }));
}

/** Indices to keep: all but the round(fraction·n) lowest scores, at least one; in original order. */
export function keepIndices(scores: number[], fraction: number): number[] {
  const remove = Math.min(scores.length - 1, Math.round(fraction * scores.length));
  const order = scores.map((s, i) => i).sort((a, b) => scores[a] - scores[b] || a - b);
  const dropped = new Set(order.slice(0, remove));
  return scores.map((_, i) => i).filter((i) => !dropped.has(i));
}

/** Columns `cols` of a row-major [rows, n] matrix. */
function takeCols(a: Float32Array, rows: number, n: number, cols: number[]): Float32Array {
  const out = new Float32Array(rows * cols.length);
  for (let r = 0; r < rows; r++) cols.forEach((c, j) => { out[r * cols.length + j] = a[r * n + c]; });
  return out;
}

/** Rows `rows` of a row-major [*, n] matrix. */
function takeRows(a: Float32Array, n: number, rows: number[]): Float32Array {
  const out = new Float32Array(rows.length * n);
  rows.forEach((r, j) => out.set(a.subarray(r * n, (r + 1) * n), j * n));
  return out;
}

/**
 * Remove heads or neurons: keep[i] lists the indices kept in block i. Returns the new config (per-block
 * shapes, head size pinned) and the new arrays; other weights are shared, not copied.
 */
export function removeUnits(c: ModelConfig, w: Arrays, unit: Unit, keep: number[][]): { config: ModelConfig; arrays: Arrays } {
  const d = c.dModel;
  const arrays = new Map(w);
  const layers = Array.from({ length: c.nLayers }, (_, i) => {
    const { nHeads: H, headDim: hd, ffnDim: f } = blockShape(c, i);
    if (unit === 'heads') {
      const cols = [0, 1, 2].flatMap((p) => keep[i].flatMap((h) => Array.from({ length: hd }, (_, j) => p * H * hd + h * hd + j)));
      arrays.set(`h${i}.attn.qkv`, takeCols(w.get(`h${i}.attn.qkv`)!, d, 3 * H * hd, cols));
      arrays.set(`h${i}.attn.proj`, takeRows(w.get(`h${i}.attn.proj`)!, d, keep[i].flatMap((h) => Array.from({ length: hd }, (_, j) => h * hd + j))));
      return { nHeads: keep[i].length, ffnDim: f };
    }
    arrays.set(`h${i}.mlp.fc`, takeCols(w.get(`h${i}.mlp.fc`)!, d, f, keep[i]));
    arrays.set(`h${i}.mlp.out`, takeRows(w.get(`h${i}.mlp.out`)!, d, keep[i]));
    return { nHeads: H, ffnDim: keep[i].length };
  });
  const headDim = blockShape(c, 0).headDim;
  return { config: { ...c, headDim, layers }, arrays };
}
