/**
 * The tensor side of `kd eval`: score a model on validation batches, time its next-token steps and
 * generate text. Tensors are read after tf.tidy has returned them, never inside it: a typed array
 * returned from tidy is walked element by element (scoring 6.5k tokens with the teacher took 54 s
 * that way, 2.8 s with the read outside). Every tensor is disposed before a call returns.
 */
import * as tf from '@tensorflow/tfjs';
import { type Model, forwardLogits } from '../model/gpt.js';
import { KvDecoder, disposeCache, extendCache } from '../model/kv.js';
import { Rng } from '../core/rng.js';
import type { Batch } from '../data/batch.js';
import { type EvalMetrics, type MetricSums, addPositions, emptySums, finishMetrics, percentile } from './metrics.js';
import type { LatencyFigures } from '../schema/eval-report.js';
export type { LatencyFigures } from '../schema/eval-report.js';

/** Per-sequence sums (one entry per row of T tokens), for bootstrap intervals over sequences. */
export interface SequenceSums {
  labelled: Float64Array;
  kl: Float64Array;
  agree: Float64Array;
  recall: Float64Array;
  targeted: Float64Array;
  nll: Float64Array;
  correct: Float64Array;
  /** [n·bins] per calibration bin: positions, Σ confidence, Σ correct */
  binCount: Float64Array;
  binConf: Float64Array;
  binCorrect: Float64Array;
}

export interface Scored {
  metrics: EvalMetrics;
  sequences: SequenceSums;
}

const PER_SEQ = ['labelled', 'klSum', 'agreeSum', 'recallSum', 'targeted', 'ceSum', 'correctSum'] as const;

/** Metrics of `model` over `batches` (each T ≤ the model's seqLen), and the sums of each sequence. */
export function scoreStudent(model: Model, batches: Batch[], bins: number): Scored {
  const V = model.config.vocabSize;
  const sums = emptySums(bins);
  const n = batches.reduce((s, b) => s + b.B, 0);
  const f = () => new Float64Array(n);
  const seq: SequenceSums = {
    labelled: f(), kl: f(), agree: f(), recall: f(), targeted: f(), nll: f(), correct: f(),
    binCount: new Float64Array(n * bins), binConf: new Float64Array(n * bins), binCorrect: new Float64Array(n * bins),
  };
  const cols = [seq.labelled, seq.kl, seq.agree, seq.recall, seq.targeted, seq.nll, seq.correct];
  let row = 0;
  for (const b of batches) {
    const t = tf.tidy(() => {
      const logits = forwardLogits(model, tf.tensor2d(b.inputIds, [b.B, b.T], 'int32')); // [B, T, V]
      return tf.logSoftmax(tf.reshape(logits, [b.B * b.T, V]));
    });
    const ls = t.dataSync() as Float32Array; // [B·T·V], read outside tidy
    t.dispose();
    for (let r = 0; r < b.B; r++, row++) {
      const before: number[] = PER_SEQ.map((k) => sums[k]);
      const bc = [...sums.binCount], bf = [...sums.binConf], bk = [...sums.binCorrect];
      const p0 = r * b.T, p1 = (r + 1) * b.T;
      addPositions(sums, ls.subarray(p0 * V, p1 * V), V, {
        K: b.K, topIds: b.topIds.subarray(p0 * b.K, p1 * b.K), topLogprobs: b.topLogprobs.subarray(p0 * b.K, p1 * b.K),
        mask: b.mask.subarray(p0, p1), targets: b.targets.subarray(p0, p1),
      });
      PER_SEQ.forEach((k, i) => { cols[i][row] = sums[k] - before[i]; });
      for (let j = 0; j < bins; j++) {
        seq.binCount[row * bins + j] = sums.binCount[j] - bc[j];
        seq.binConf[row * bins + j] = sums.binConf[j] - bf[j];
        seq.binCorrect[row * bins + j] = sums.binCorrect[j] - bk[j];
      }
    }
  }
  return { metrics: finishMetrics(sums as MetricSums), sequences: seq };
}


/**
 * Times greedy single-token steps at a fixed context: the first `context` tokens of `seed` go
 * through one prefill into a KV cache, then every timed step runs one more token against that same
 * cache (which a step does not change), takes the argmax and reads it back (the read-back is part
 * of the latency a caller sees). `warmup` untimed steps first (kernels compile, caches fill).
 */
export function measureLatency(model: Model, seed: ArrayLike<number>, o: { steps: number; warmup: number; context: number }): LatencyFigures {
  const ctx = Math.max(1, Math.min(o.context, model.config.seqLen - 1));
  const tokens = Array.from({ length: ctx }, (_, i) => (i < seed.length ? seed[i] : i) % model.config.vocabSize);
  const t0 = performance.now();
  const input = tf.tensor2d(tokens, [1, ctx], 'int32');
  const pre = extendCache(model, null, input);
  input.dispose();
  const first = tf.tidy(() => tf.argMax(pre.logits, 1));
  let next = first.dataSync()[0];
  const prefillMs = performance.now() - t0;
  first.dispose();
  pre.logits.dispose();
  const samples: number[] = [];
  try {
    for (let i = 0; i < o.warmup + o.steps; i++) {
      const ids = tf.tensor2d([next], [1, 1], 'int32');
      const s0 = performance.now();
      const step = extendCache(model, pre.cache, ids);
      const am = tf.argMax(step.logits, 1);
      next = am.dataSync()[0];
      const ms = performance.now() - s0;
      for (const t of [ids, step.logits, am]) t.dispose();
      disposeCache(step.cache);
      if (i >= o.warmup) samples.push(ms);
    }
  } finally {
    disposeCache(pre.cache);
  }
  const mean = samples.reduce((a, b) => a + b, 0) / Math.max(samples.length, 1);
  return {
    context: ctx, steps: samples.length, p50Ms: percentile(samples, 0.5) ?? NaN, p95Ms: percentile(samples, 0.95) ?? NaN,
    meanMs: mean, tokensPerSec: mean > 0 ? 1000 / mean : 0, prefillMs, samplesMs: samples,
  };
}

/** Greedy (temperature 0) or seeded sampling with a KV cache; returns only the new tokens. */
export function generate(model: Model, prompt: readonly number[], o: { maxNew: number; temperature: number; seed: number }): number[] {
  const rng = new Rng(o.seed);
  const out: number[] = [];
  const dec = new KvDecoder(model);
  try {
    let feed: number[] = prompt.length ? [...prompt] : [0];
    for (let i = 0; i < o.maxNew; i++) {
      const t = dec.next([feed], o.temperature > 0 ? o.temperature : 1);
      const lp = t.dataSync() as Float32Array; // read outside any tidy
      t.dispose();
      let next = 0;
      if (o.temperature > 0) {
        const u = rng.next();
        let acc = 0;
        next = lp.length - 1;
        for (let v = 0; v < lp.length; v++) {
          acc += Math.exp(lp[v]);
          if (u < acc) { next = v; break; }
        }
      } else {
        for (let v = 1; v < lp.length; v++) if (lp[v] > lp[next]) next = v;
      }
      out.push(next);
      feed = [next];
    }
  } finally {
    dec.dispose();
  }
  return out;
}
