/**
 * The student's uncertainty over candidate texts, for `kd collect --select entropy|margin --student CKPT`:
 * mean next-token entropy (nats) and mean margin (p₁ − p₂ of its two most likely tokens) over the
 * first `maxTokens` tokens of each text, in windows of the model's context length.
 * `--select disagreement --student A --student B …`: the mean over positions of the Jensen–Shannon
 * divergence (nats) between the checkpoints' next-token distributions on the same windows.
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

/**
 * Generalised Jensen–Shannon divergence of each row across M [N, V] probability matrices (pure):
 * H(mean of the M rows) − mean of their entropies, in nats; 0 when they agree, ln M at most.
 */
export function rowDisagreement(probs: Float32Array[], V: number): Float64Array {
  const M = probs.length;
  const N = probs[0]!.length / V;
  const out = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let hMix = 0, hMean = 0;
    for (let v = n * V, e = v + V; v < e; v++) {
      let mix = 0;
      for (let m = 0; m < M; m++) {
        const p = probs[m]![v]!;
        mix += p;
        if (p > 0) hMean -= p * Math.log(p);
      }
      mix /= M;
      if (mix > 0) hMix -= mix * Math.log(mix);
    }
    out[n] = Math.max(0, hMix - hMean / M);
  }
  return out;
}

type Window = { t: number; ids: number[] };

/**
 * Every text cut into windows of `T` tokens (its first `maxTokens`), grouped for batching: full windows
 * `batch` at a time, a short last one alone (T: the shortest context of the models, so that every
 * model sees the same windows). `each` gets a group, its window length and each model's
 * [group·len, V] softmax over it.
 */
function overWindows(models: Model[], tokenizer: Tokenizer, texts: string[], maxTokens: number, batch: number, each: (group: Window[], len: number, probs: Float32Array[]) => void): void {
  const T = Math.min(...models.map((m) => m.config.seqLen));
  const V = models[0]!.config.vocabSize;
  const full: Window[] = [];
  const rest: Window[] = [];
  texts.forEach((text, t) => {
    const ids = tokenizer.encode(text).slice(0, maxTokens);
    for (let s = 0; s < ids.length; s += T) (ids.length - s >= T ? full : rest).push({ t, ids: ids.slice(s, s + T) });
  });
  const run = (group: Window[]) => {
    const len = group[0]!.ids.length;
    const probs = models.map((model) => {
      const p = tf.tidy(() => tf.softmax(tf.reshape(forwardLogits(model, tf.tensor2d(group.flatMap((g) => g.ids), [group.length, len], 'int32')), [group.length * len, V])));
      const data = p.dataSync() as Float32Array;
      p.dispose();
      return data;
    });
    each(group, len, probs);
  };
  for (let i = 0; i < full.length; i += batch) run(full.slice(i, i + batch));
  for (const w of rest) run([w]);
}

/** Per-position values summed into a per-text mean (NaN for a text with no tokens). */
function perText(texts: string[]) {
  const sums = texts.map(() => ({ s: 0, n: 0 }));
  return {
    add(group: Window[], len: number, values: Float64Array) {
      group.forEach((g, i) => { const x = sums[g.t]!; for (let p = 0; p < len; p++) { x.s += values[i * len + p]!; x.n++; } });
    },
    means: () => sums.map((x) => (x.n ? x.s / x.n : NaN)),
  };
}

/** Uncertainty of `model` (with its own tokenizer) over each text. */
export function uncertaintyOf(model: Model, tokenizer: Tokenizer, texts: string[], maxTokens = 512, batch = 16): Uncertainty[] {
  const h = perText(texts), m = perText(texts);
  overWindows([model], tokenizer, texts, maxTokens, batch, (group, len, [probs]) => {
    const { entropy, margin } = rowStats(probs!, model.config.vocabSize);
    h.add(group, len, entropy);
    m.add(group, len, margin);
  });
  const hs = h.means(), ms = m.means();
  return texts.map((_, i) => ({ entropy: hs[i]!, margin: ms[i]! }));
}

/** Mean per-position disagreement (generalised JSD, nats) of ≥ 2 models sharing `tokenizer` over each text. */
export function disagreementOf(models: Model[], tokenizer: Tokenizer, texts: string[], maxTokens = 512, batch = 16): number[] {
  if (models.length < 2) throw new Error('disagreementOf: needs at least two models');
  const V = models[0]!.config.vocabSize;
  if (models.some((m) => m.config.vocabSize !== V)) throw new Error('disagreementOf: the models have different vocabularies');
  const d = perText(texts);
  overWindows(models, tokenizer, texts, maxTokens, batch, (group, len, probs) => d.add(group, len, rowDisagreement(probs, V)));
  return d.means();
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

/**
 * Loads ≥ 2 checkpoints (one tokenizer between them: their distributions are compared token by token)
 * and scores each text by their mean disagreement (entropy and margin are left NaN: not computed).
 */
export async function studentDisagreement(checkpoints: string[], texts: string[], maxTokens = 512): Promise<Uncertainty[]> {
  await initBackend({});
  const loaded: ReturnType<typeof loadModel>[] = [];
  try {
    for (const c of checkpoints) loaded.push(loadModel(c));
    const tok = loaded[0]!.tokenizer;
    loaded.forEach((l, i) => {
      if (!l.tokenizer) throw new KdError('student', `--student ${checkpoints[i]}: the checkpoint holds no tokenizer (train it on a kd dataset)`);
      if (l.tokenizer.hash() !== tok!.hash()) throw new KdError('student', `--student ${checkpoints[i]}: its tokenizer differs from that of --student ${checkpoints[0]}; --select disagreement compares next-token distributions, so the checkpoints must share one`);
    });
    return disagreementOf(loaded.map((l) => l.model), tok!, texts, maxTokens).map((d) => ({ entropy: NaN, margin: NaN, disagreement: d }));
  } finally {
    for (const l of loaded) disposeModel(l.model);
  }
}
