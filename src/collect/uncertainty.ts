/**
 * The student's uncertainty over candidate texts, for `kd collect --select entropy|margin --student CKPT`:
 * mean next-token entropy (nats) and mean margin (p₁ − p₂ of its two most likely tokens) over the
 * first `maxTokens` tokens of each text, in windows of the model's context length.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import { KdError } from '../core/errors.js';
import { disposeModel, forwardLogits, type Model } from '../model/gpt.js';
import { loadModel } from '../model/load.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Uncertainty } from './select.js';

/** Entropy and margin of each row of a [N, V] probability matrix (pure, on plain arrays). */
export function rowStats(probs: Float32Array, V: number): { entropy: Float64Array; margin: Float64Array } {
  const N = probs.length / V;
  const entropy = new Float64Array(N), margin = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let h = 0, p1 = 0, p2 = 0;
    for (let v = n * V, e = v + V; v < e; v++) {
      const p = probs[v]!;
      if (p > 0) h -= p * Math.log(p);
      if (p > p1) { p2 = p1; p1 = p; } else if (p > p2) p2 = p;
    }
    entropy[n] = h;
    margin[n] = p1 - p2;
  }
  return { entropy, margin };
}

/** Uncertainty of `model` (with its own tokenizer) over each text. */
export function uncertaintyOf(model: Model, tokenizer: Tokenizer, texts: string[], maxTokens = 512, batch = 16): Uncertainty[] {
  const T = model.config.seqLen, V = model.config.vocabSize;
  const sums = texts.map(() => ({ h: 0, m: 0, n: 0 }));
  // windows [text index, token ids]: full windows are batched, a short last one goes alone
  const full: { t: number; ids: number[] }[] = [];
  const rest: { t: number; ids: number[] }[] = [];
  texts.forEach((text, t) => {
    const ids = tokenizer.encode(text).slice(0, maxTokens);
    for (let s = 0; s < ids.length; s += T) (ids.length - s >= T ? full : rest).push({ t, ids: ids.slice(s, s + T) });
  });
  const run = (group: { t: number; ids: number[] }[]) => {
    const len = group[0]!.ids.length;
    const probs = tf.tidy(() => tf.softmax(tf.reshape(forwardLogits(model, tf.tensor2d(group.flatMap((g) => g.ids), [group.length, len], 'int32')), [group.length * len, V])));
    const data = probs.dataSync() as Float32Array;
    probs.dispose();
    const { entropy, margin } = rowStats(data, V);
    group.forEach((g, i) => {
      const s = sums[g.t]!;
      for (let p = 0; p < len; p++) { s.h += entropy[i * len + p]!; s.m += margin[i * len + p]!; s.n++; }
    });
  };
  for (let i = 0; i < full.length; i += batch) run(full.slice(i, i + batch));
  for (const w of rest) run([w]);
  return sums.map((s) => ({ entropy: s.n ? s.h / s.n : NaN, margin: s.n ? s.m / s.n : NaN }));
}

/** Loads a student checkpoint (which must carry its tokenizer) and scores the texts. */
export async function studentUncertainty(checkpoint: string, texts: string[], maxTokens = 512): Promise<Uncertainty[]> {
  await initBackend({});
  const { model, tokenizer } = loadModel(checkpoint);
  try {
    if (!tokenizer) throw new KdError('student', `--student ${checkpoint}: the checkpoint holds no tokenizer (train it on a kd dataset)`);
    return uncertaintyOf(model, tokenizer, texts, maxTokens);
  } finally {
    disposeModel(model);
  }
}
