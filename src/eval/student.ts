/**
 * The tensor side of `kd eval`: score a student on validation batches, time its next-token steps and
 * generate text. Everything here runs inside tf.tidy or disposes explicitly, so evaluating several
 * students in one process holds no tensors between calls.
 */
import * as tf from '@tensorflow/tfjs';
import { type Model, forwardLogits, nextTokenLogProbs } from '../model/gpt.js';
import { Rng } from '../rng.js';
import type { Batch } from '../train/batch.js';
import { type EvalMetrics, addPositions, emptySums, finishMetrics, percentile } from './metrics.js';

/** Metrics of `model` over `batches` (each T ≤ the model's seqLen). */
export function scoreStudent(model: Model, batches: Batch[], bins: number): EvalMetrics {
  const V = model.config.vocabSize;
  const sums = emptySums(bins);
  for (const b of batches) {
    const ls = tf.tidy(() => {
      const logits = forwardLogits(model, tf.tensor2d(b.inputIds, [b.B, b.T], 'int32')); // [B, T, V]
      return tf.logSoftmax(tf.reshape(logits, [b.B * b.T, V])).dataSync() as Float32Array; // [B·T·V]
    });
    addPositions(sums, ls, V, b);
  }
  return finishMetrics(sums);
}

export interface LatencyFigures {
  /** context length of every timed step */
  context: number;
  steps: number;
  p50Ms: number;
  p95Ms: number;
  meanMs: number;
  /** 1000 / meanMs: one stream, one token per step (no KV cache: each step runs the whole context) */
  tokensPerSec: number;
  /** every timed step, for the distribution chart */
  samplesMs: number[];
}

/**
 * Times greedy single-token steps: each step runs nextTokenLogProbs on the last `context` tokens,
 * takes the argmax and reads it back (the read-back is part of the latency a caller sees).
 * `warmup` untimed steps first (backend kernels compile and caches fill on the first calls).
 */
export function measureLatency(model: Model, seed: Int32Array, o: { steps: number; warmup: number; context: number }): LatencyFigures {
  const ctx = Math.max(1, Math.min(o.context, model.config.seqLen));
  const tokens = Array.from(seed.subarray(0, ctx));
  while (tokens.length < ctx) tokens.push(tokens.length % model.config.vocabSize);
  const samples: number[] = [];
  for (let i = 0; i < o.warmup + o.steps; i++) {
    const window = Int32Array.from(tokens.slice(-ctx));
    const t0 = performance.now();
    const next = tf.tidy(() => tf.argMax(nextTokenLogProbs(model, tf.tensor2d(window, [1, ctx], 'int32')), 1).dataSync()[0]);
    const ms = performance.now() - t0;
    tokens.push(next);
    if (i >= o.warmup) samples.push(ms);
  }
  const mean = samples.reduce((a, b) => a + b, 0) / Math.max(samples.length, 1);
  return {
    context: ctx, steps: samples.length, p50Ms: percentile(samples, 0.5) ?? NaN, p95Ms: percentile(samples, 0.95) ?? NaN,
    meanMs: mean, tokensPerSec: mean > 0 ? 1000 / mean : 0, samplesMs: samples,
  };
}

/** Greedy (temperature 0) or seeded sampling; returns only the new tokens. */
export function generate(model: Model, prompt: readonly number[], o: { maxNew: number; temperature: number; seed: number }): number[] {
  const rng = new Rng(o.seed);
  const tokens = prompt.length ? [...prompt] : [0];
  const out: number[] = [];
  const L = model.config.seqLen;
  for (let i = 0; i < o.maxNew; i++) {
    const window = Int32Array.from(tokens.slice(-L));
    const lp = tf.tidy(() => nextTokenLogProbs(model, tf.tensor2d(window, [1, window.length], 'int32'), o.temperature > 0 ? o.temperature : 1).dataSync() as Float32Array);
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
    tokens.push(next);
    out.push(next);
  }
  return out;
}
