/**
 * Bits per byte of a model on plain text, with its own tokenizer: the total negative log-likelihood
 * of the text's tokens in bits divided by their UTF-8 bytes. Unlike perplexity it compares models
 * with different vocabularies (a student and its teacher), which is why it is kd's verdict on whether
 * distillation worked (see the README, "Did distillation pay?").
 *
 * Every token but the first is scored exactly once, with context: windows of the model's context
 * length T slide with a stride of T/2; the first window scores all its positions, each later one only
 * its second half (positions that already had ≥ T/2 tokens of context). The bytes counted are those of
 * the scored tokens, so nothing is counted that was not predicted.
 */
import * as tf from '@tensorflow/tfjs';
import { KdError } from '../core/errors.js';
import { type Model, forwardLogits } from '../model/gpt.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { BitsPerByte } from '../schema/eval-report.js';
export type { BitsPerByte } from '../schema/eval-report.js';


/** Bits and bytes per block of `blockBytes` bytes of the text (by each token's first byte): units for bootstrap intervals. */
export interface TextBlocks {
  blockBytes: number;
  bits: Float64Array;
  bytes: Float64Array;
}

export interface BpbOptions {
  /** windows per forward pass (default 16) */
  batch?: number;
  /** score at most this many bytes of the text's start (default: all) */
  maxBytes?: number;
  /** also sum bits and bytes per block of this many bytes (see TextBlocks) */
  blockBytes?: number;
}

/** Windows [start, start + T] over L tokens: predictions of tokens (from, start + T] are counted. */
export function slidingWindows(L: number, T: number): { start: number; from: number }[] {
  if (L < 2) return [];
  const stride = Math.max(1, Math.floor(T / 2));
  const out: { start: number; from: number }[] = [];
  let scored = 0; // tokens 1..scored are done
  for (let start = 0; scored < L - 1; start += stride) {
    const s = Math.min(start, Math.max(0, L - 1 - T)); // the last window ends at the text's end
    const end = Math.min(s + T, L - 1); // last target index
    out.push({ start: s, from: scored });
    scored = end;
  }
  return out;
}

/** Bits per byte of `text` under `model` with `tokenizer` (which must be the model's own). */
export function bitsPerByte(model: Model, tokenizer: Tokenizer, text: string, o: BpbOptions = {}): BitsPerByte & { blocks?: TextBlocks } {
  if (tokenizer.vocabSize !== model.config.vocabSize) {
    throw new KdError('bad-config', `the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${model.config.vocabSize}`);
  }
  const ids = tokenizer.encode(o.maxBytes !== undefined ? cutText(text, o.maxBytes) : text);
  const T = model.config.seqLen;
  const B = Math.max(1, o.batch ?? 16);
  const windows = slidingWindows(ids.length, T);
  const start = new Float64Array(ids.length); // each token's first byte
  for (let i = 1; i < ids.length; i++) start[i] = start[i - 1] + tokenizer.tokens[ids[i - 1]].length;
  const nBlocks = o.blockBytes ? Math.max(1, Math.ceil((start[ids.length - 1] + 1) / o.blockBytes)) : 0;
  const blocks = o.blockBytes ? { blockBytes: o.blockBytes, bits: new Float64Array(nBlocks), bytes: new Float64Array(nBlocks) } : undefined;
  let nats = 0, nBytes = 0, nTokens = 0;
  for (let w0 = 0; w0 < windows.length; w0 += B) {
    const group = windows.slice(w0, w0 + B);
    const len = Math.min(T, ids.length - 1 - group[0].start); // every window but a short text's is T long
    const inputs = new Int32Array(group.length * len);
    const targets = new Int32Array(group.length * len);
    group.forEach((w, g) => {
      for (let t = 0; t < len; t++) {
        inputs[g * len + t] = ids[w.start + t];
        targets[g * len + t] = ids[w.start + t + 1];
      }
    });
    const picked = tf.tidy(() => {
      const logits = forwardLogits(model, tf.tensor2d(inputs, [group.length, len], 'int32'));
      const ls = tf.logSoftmax(tf.reshape(logits, [group.length * len, model.config.vocabSize])) as tf.Tensor2D;
      return tf.gather(ls, tf.tensor2d(targets, [group.length * len, 1], 'int32'), 1, 1);
    });
    const lp = picked.dataSync(); // read outside tidy: tidy would walk a returned typed array
    picked.dispose();
    group.forEach((w, g) => {
      for (let t = 0; t < len; t++) {
        const target = w.start + t + 1; // index of the predicted token
        if (target <= w.from) continue;
        const nb = tokenizer.tokens[ids[target]].length;
        nats -= lp[g * len + t];
        nBytes += nb;
        nTokens++;
        if (blocks) {
          const k = Math.min(nBlocks - 1, Math.floor(start[target] / blocks.blockBytes));
          blocks.bits[k] -= lp[g * len + t] / Math.LN2;
          blocks.bytes[k] += nb;
        }
      }
    });
  }
  const bits = nats / Math.LN2;
  return { bpb: nBytes > 0 ? bits / nBytes : NaN, bits, bytes: nBytes, tokens: nTokens, ...(blocks ? { blocks } : {}) };
}

/** The longest prefix of `text` of at most `maxBytes` UTF-8 bytes that does not cut a character. */
export function cutText(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = Math.max(0, maxBytes);
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
