/**
 * A synthetic teacher for tests, benchmarks and `kd train --data synthetic`: a random bigram
 * language model whose next-token distribution after token a has its mass on K ids. Sequences are
 * sampled from the teacher itself, so a student can really learn it and its KL falls toward 0.
 * Batch i is a pure function of (seed, i): the cursor is just the batch index.
 */
import { Rng } from '../core/rng.js';
import type { Batch, BatchSource, BatchSourceFactory } from './batch.js';

export interface SyntheticOptions {
  vocabSize: number;
  seqLen: number;
  batchSize: number;
  topK: number;
  seed: number;
  /** spread of the teacher's logits; larger = peakier teacher */
  sharpness?: number;
  /** same teacher, disjoint sample streams */
  split?: 'train' | 'val';
}

export function syntheticTeacher(o: SyntheticOptions): BatchSourceFactory {
  const { vocabSize: V, topK: K } = o;
  const ids = new Int32Array(V * K);
  const logprobs = new Float32Array(V * K);
  const cdf = new Float64Array(V * K);
  const root = new Rng(o.seed);
  const sharp = o.sharpness ?? 3;
  for (let a = 0; a < V; a++) {
    const r = root.fork(a);
    const chosen = new Set<number>();
    while (chosen.size < Math.min(K, V)) chosen.add(r.int(V));
    const logits = [...chosen].map(() => r.normal() * sharp);
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((s, x) => s + Math.exp(x - m), 0));
    let acc = 0;
    [...chosen].forEach((id, k) => {
      ids[a * K + k] = id;
      logprobs[a * K + k] = logits[k] - lse;
      acc += Math.exp(logits[k] - lse);
      cdf[a * K + k] = acc;
    });
  }
  const sample = (a: number, r: Rng) => {
    const u = r.next() * cdf[a * K + K - 1];
    for (let k = 0; k < K; k++) if (u < cdf[a * K + k]) return ids[a * K + k];
    return ids[a * K + K - 1];
  };
  const makeBatch = (index: number): Batch => {
    const { batchSize: B, seqLen: T } = o;
    const r = root.fork((o.split === 'val' ? 2_000_003 : 1_000_003) + index);
    const b: Batch = {
      B, T, K,
      inputIds: new Int32Array(B * T), topIds: new Int32Array(B * T * K), topLogprobs: new Float32Array(B * T * K),
      mask: new Float32Array(B * T).fill(1), targets: new Int32Array(B * T),
    };
    for (let s = 0; s < B; s++) {
      let tok = r.int(V);
      for (let t = 0; t < T; t++) {
        const n = s * T + t;
        b.inputIds[n] = tok;
        b.topIds.set(ids.subarray(tok * K, tok * K + K), n * K);
        b.topLogprobs.set(logprobs.subarray(tok * K, tok * K + K), n * K);
        tok = sample(tok, r);
        b.targets[n] = tok;
      }
    }
    return b;
  };
  return {
    open(cursor?: unknown): BatchSource {
      let index = typeof cursor === 'number' ? cursor : 0;
      return { next: () => makeBatch(index++), cursor: () => index };
    },
    describe: () => ({ kind: 'synthetic', ...o }),
  };
}
