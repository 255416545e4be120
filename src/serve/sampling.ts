/**
 * Choosing the next token from a log-prob vector on the CPU: greedy at temperature 0, else softmax
 * at temperature τ restricted to the nucleus (smallest set of top tokens with mass ≥ top_p), drawn
 * with a seeded RNG so a request with a seed is reproducible.
 *
 * The log-probs reported to clients are always the model's own (τ = 1, no nucleus), as vLLM's
 * default: temperature and top_p change which token is drawn, not the numbers a distiller learns from.
 */
import type { Rng } from '../core/rng.js';

export interface SampleOptions {
  temperature: number;
  topP: number;
}

/** Index of the largest value (the lowest index on ties). */
export function argmax(lp: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < lp.length; i++) if (lp[i]! > lp[best]!) best = i;
  return best;
}

/** Draw a token id.   lp: [V] log-probs */
export function sampleToken(lp: Float32Array, o: SampleOptions, rng: Rng): number {
  if (o.temperature === 0 || o.topP === 0) return argmax(lp);
  const V = lp.length;
  const m = lp[argmax(lp)]!;
  const w = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) total += w[i] = Math.exp((lp[i]! - m) / o.temperature);
  let ids: number[] | null = null;
  if (o.topP < 1) {
    // the nucleus: sort by weight, keep the head whose mass reaches top_p
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => w[b]! - w[a]! || a - b);
    ids = [];
    let mass = 0;
    for (const i of order) {
      ids.push(i);
      mass += w[i]!;
      if (mass >= o.topP * total) break;
    }
    total = mass;
  }
  const u = rng.next() * total;
  let acc = 0;
  const list = ids ?? Array.from({ length: V }, (_, i) => i);
  for (const i of list) {
    acc += w[i]!;
    if (u < acc) return i;
  }
  return list[list.length - 1]!;
}

export interface Alt {
  id: number;
  logprob: number;
}

/** The k most likely ids, best first (lower id first on ties).   lp: [V] */
export function topK(lp: ArrayLike<number>, k: number): Alt[] {
  const out: Alt[] = [];
  if (k <= 0) return out;
  for (let i = 0; i < lp.length; i++) {
    const v = lp[i]!;
    if (out.length === k && v <= out[k - 1]!.logprob) continue;
    let j = Math.min(out.length, k - 1);
    if (out.length < k) out.push({ id: i, logprob: v });
    else out[j] = { id: i, logprob: v };
    // insertion: move the new entry up past smaller ones (strictly smaller keeps lower ids first on ties)
    while (j > 0 && out[j - 1]!.logprob < v) {
      [out[j - 1], out[j]] = [out[j]!, out[j - 1]!];
      j--;
    }
  }
  return out;
}
