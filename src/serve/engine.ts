/**
 * The tensor side of serving: next-token log-probs for generation (KV-cached) and teacher-forced scoring of a
 * prompt. Every call runs through one queue, so tfjs is never entered by two requests at once
 * (awaiting a download inside the queue keeps other requests' ops from interleaving), and every
 * tensor it makes is disposed before the call returns.
 */
import * as tf from '@tensorflow/tfjs';
import { type Model, forwardLogits } from '../model/gpt.js';
import { KvDecoder } from '../model/kv.js';

/** Lets timers and I/O run: socket writes of streamed chunks, newly arrived requests. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs async jobs one at a time, in arrival order. Each job starts on a fresh event-loop turn: on the
 * cpu backend `await tensor.data()` resolves as a microtask, so without this a long generation would
 * never let the server flush streamed chunks or accept other requests until it finished.
 */
export class Queue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(yieldToEventLoop).then(job);
    this.tail = result.catch(() => undefined);
    return result;
  }
  /** resolves once everything queued so far has finished */
  idle(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}

/** A scoring window: tokens [start, start + length) go in; positions [from, to) are scored from it. */
export interface Window {
  start: number;
  length: number;
  from: number;
  to: number;
}

/**
 * Windows for scoring L tokens with a model of context seqLen. Up to seqLen tokens: one window, every
 * position after the first. Longer: windows of seqLen tokens advancing by `stride`; each window
 * scores only the positions the previous one did not, so every position is scored once and (after
 * the first window) sees at least seqLen − stride tokens of context. The default stride seqLen/2
 * costs about 2× one pass and keeps half a window of context.
 */
export function planWindows(L: number, seqLen: number, stride = Math.max(1, Math.floor(seqLen / 2))): Window[] {
  if (L <= 1) return [];
  if (L <= seqLen) return [{ start: 0, length: L, from: 1, to: L }];
  const out: Window[] = [{ start: 0, length: seqLen, from: 1, to: seqLen }];
  let end = seqLen;
  while (end < L) {
    const next = Math.min(end + stride, L);
    out.push({ start: next - seqLen, length: seqLen, from: end, to: next });
    end = next;
  }
  return out;
}

export interface Scores {
  /** [L] log-prob of each token given the ones before it; NaN at position 0 */
  logprobs: Float32Array;
  /** [L·k] top-k ids and log-probs per position, best first (zeros at position 0) */
  topIds: Int32Array;
  topLogprobs: Float32Array;
  k: number;
}

/** Cap on one scoring batch's logits (floats), ~64 MB. */
const MAX_BATCH_FLOATS = 16 * 1024 * 1024;

export class Engine {
  readonly queue = new Queue();
  constructor(readonly model: Model) {}

  /**
   * A KV-cached decoder for one generation (src/model/kv.ts): `next(rows)` takes each row's prompt the
   * first time, then the one new token of each row still going; `keep` lists, by their index in the
   * previous call, the rows that go on (finished choices drop out). Each step runs through the queue.
   * Returns the next-token log-probs per row. The caller disposes the decoder.
   */
  decoder(): { next(rows: number[][], keep?: number[]): Promise<Float32Array[]>; dispose(): void } {
    const dec = new KvDecoder(this.model);
    return {
      next: (rows, keep) => this.queue.run(async () => {
        if (keep) dec.select(keep);
        const lp = dec.next(rows, 1); // [B, V]
        try {
          const data = (await lp.data()) as Float32Array;
          const V = this.model.config.vocabSize;
          return Array.from({ length: rows.length }, (_, b) => data.subarray(b * V, (b + 1) * V));
        } finally {
          lp.dispose();
        }
      }),
      dispose: () => dec.dispose(),
    };
  }

  /** Teacher-forced log-probs of every token of `ids` and the top-k at each position (sliding windows). */
  async score(ids: number[], k: number): Promise<Scores> {
    const { seqLen, vocabSize: V } = this.model.config;
    const L = ids.length;
    const out: Scores = { logprobs: new Float32Array(L).fill(NaN), topIds: new Int32Array(L * k), topLogprobs: new Float32Array(L * k), k };
    const windows = planWindows(L, seqLen);
    const perBatch = Math.max(1, Math.floor(MAX_BATCH_FLOATS / (Math.min(L, seqLen) * V)));
    for (let i = 0; i < windows.length; i += perBatch) await this.scoreBatch(ids, windows.slice(i, i + perBatch), out);
    return out;
  }

  /** Windows of one batch all have the same length (seqLen, or L when there is just one). */
  private scoreBatch(ids: number[], ws: Window[], out: Scores): Promise<void> {
    return this.queue.run(async () => {
      const V = this.model.config.vocabSize;
      const W = ws.length, T = ws[0]!.length, k = out.k;
      const input = Int32Array.from(ws.flatMap((w) => ids.slice(w.start, w.start + w.length)));
      // row r of the flattened [W·T, V] logits predicts the token after window position r mod T
      const rows: number[] = [], targets: number[] = [];
      ws.forEach((w, wi) => {
        for (let p = w.from; p < w.to; p++) {
          rows.push(wi * T + (p - 1 - w.start));
          targets.push(ids[p]!);
        }
      });
      const N = rows.length;
      const result = tf.tidy(() => {
        const logits = forwardLogits(this.model, tf.tensor2d(input, [W, T], 'int32')); // [W, T, V]
        const lsm = tf.logSoftmax(tf.gather(tf.reshape(logits, [W * T, V]), tf.tensor1d(rows, 'int32'))); // [N, V]
        const flat = tf.tensor1d(targets.map((t, n) => n * V + t), 'int32');
        const actual = tf.gather(tf.reshape(lsm, [N * V]), flat); // [N]
        const top = k > 0 ? tf.topk(lsm, k, true) : null; // [N, k]
        return top ? [actual, top.values, top.indices] : [actual];
      });
      try {
        const [actual, values, indices] = (await Promise.all(result.map((t) => t.data()))) as [Float32Array, Float32Array?, Int32Array?];
        let n = 0;
        for (const w of ws) {
          for (let p = w.from; p < w.to; p++, n++) {
            out.logprobs[p] = actual[n]!;
            if (values && indices) {
              out.topLogprobs.set(values.subarray(n * k, (n + 1) * k), p * k);
              out.topIds.set(indices.subarray(n * k, (n + 1) * k), p * k);
            }
          }
        }
      } finally {
        for (const t of result) t.dispose();
      }
    });
  }
}
