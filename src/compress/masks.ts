/**
 * Unstructured magnitude pruning, pure: which entries of which weights become zero.
 *
 * Prunable weights are the block matrices (attn.qkv, attn.proj, mlp.fc, mlp.out). The embeddings stay
 * dense: wte is also the tied output head and wpe is tiny, and zeroing either hurts far more per
 * parameter (the usual choice since Zhu & Gupta 2017 and Han et al. 2015).
 */
import type { ModelConfig } from '../model/config.js';
import { paramShapes } from '../model/gpt.js';
import type { WeightMasks } from '../train/index.js';
import { KdError } from '../core/errors.js';

export type PruneScope = 'layer' | 'global';

export function prunableNames(c: ModelConfig): string[] {
  return paramShapes(c).map(([n]) => n).filter((n) => /^h\d+\.(attn\.(qkv|proj)|mlp\.(fc|out))$/.test(n));
}

export function checkSparsity(s: number): number {
  if (!(typeof s === 'number' && s >= 0 && s < 1)) throw new KdError('bad-option', `--sparsity ${s}: must be in [0, 1) (the fraction of weights, heads or neurons removed)`);
  return s;
}

/** Indices of the k smallest |x| (ties broken by index, so the count is exact). */
function smallest(abs: Float32Array, k: number): Uint32Array {
  const idx = new Uint32Array(abs.length).map((_, i) => i);
  idx.sort((a, b) => abs[a] - abs[b] || a - b);
  return idx.subarray(0, k);
}

/**
 * 0/1 masks zeroing a fraction `sparsity` of each weight ('layer': exactly ⌊s·n⌋ per weight) or of
 * all prunable weights together ('global': the smallest magnitudes anywhere, so layers end up with
 * different sparsities).
 */
export function magnitudeMasks(weights: Map<string, Float32Array>, names: string[], sparsity: number, scope: PruneScope): WeightMasks {
  const masks: WeightMasks = new Map(names.map((n) => [n, new Float32Array(weights.get(n)!.length).fill(1)]));
  if (scope === 'layer') {
    for (const n of names) {
      const w = weights.get(n)!;
      const m = masks.get(n)!;
      for (const i of smallest(w.map(Math.abs), Math.floor(sparsity * w.length))) m[i] = 0;
    }
    return masks;
  }
  const total = names.reduce((s, n) => s + weights.get(n)!.length, 0);
  const all = new Float32Array(total);
  let off = 0;
  for (const n of names) { all.set(weights.get(n)!.map(Math.abs), off); off += weights.get(n)!.length; }
  const starts = names.map((_, i) => names.slice(0, i).reduce((s, n) => s + weights.get(n)!.length, 0));
  for (const g of smallest(all, Math.floor(sparsity * total))) {
    let t = starts.length - 1;
    while (starts[t] > g) t--;
    masks.get(names[t])![g - starts[t]] = 0;
  }
  return masks;
}

/** Cubic sparsity schedule (Zhu & Gupta 2017, s_i = 0): s_t = s_f · (1 − (1 − t/n)³), t ∈ [0, n]. */
export function cubicSparsity(t: number, n: number, final: number): number {
  const x = Math.min(1, Math.max(0, t / n));
  return final * (1 - (1 - x) ** 3);
}

export interface LayerSparsity {
  name: string;
  size: number;
  zeros: number;
  sparsity: number;
}

/** Exact zeros per weight (after fine-tuning these are the masked entries). */
export function sparsityReport(weights: Map<string, Float32Array>, names: string[]): LayerSparsity[] {
  return names.map((name) => {
    const w = weights.get(name)!;
    let zeros = 0;
    for (let i = 0; i < w.length; i++) if (w[i] === 0) zeros++;
    return { name, size: w.length, zeros, sparsity: zeros / w.length };
  });
}

/** Whether a checkpoint's compression history (meta.compress) includes unstructured magnitude pruning. */
export function magnitudePruned(meta: Record<string, unknown> | undefined): boolean {
  const history = meta?.compress;
  return Array.isArray(history) && history.some((s) => s && typeof s === 'object' && (s as { stage?: unknown }).stage === 'prune' && (s as { method?: unknown }).method === 'magnitude');
}

/**
 * What keeps a magnitude-pruned model pruned as it trains on (kd train --init-from, and --resume of such
 * a run): masks that are 1 where a prunable weight is non-zero — kd prune holds pruned entries at
 * exactly 0, so the zeros are the masks — their count, and the compression history for the new
 * checkpoint's meta. Undefined for a checkpoint not magnitude-pruned, or with no zero to keep.
 */
export function keptPruning(meta: Record<string, unknown> | undefined, weights: () => Map<string, Float32Array>, c: ModelConfig): { masks: WeightMasks; zeros: number; history: unknown[] } | undefined {
  if (!magnitudePruned(meta)) return undefined;
  const w = weights();
  const masks: WeightMasks = new Map();
  let zeros = 0;
  for (const n of prunableNames(c)) {
    const x = w.get(n);
    if (!x) continue;
    const m = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) if (x[i] !== 0) m[i] = 1; else zeros++;
    masks.set(n, m);
  }
  return zeros ? { masks, zeros, history: meta!.compress as unknown[] } : undefined;
}
