/**
 * Generating n choices for one prompt. The choices advance together, one batched forward pass per
 * step with a KV cache (all rows have the same length), and each has its own seeded RNG stream, so a request with a
 * seed gives the same tokens whatever else the server is doing. Each step goes through the engine's
 * queue on its own, so concurrent requests interleave step by step instead of waiting for each other.
 */
import { randomInt } from 'node:crypto';
import { Rng } from '../core/rng.js';
import { Choice, type Emission } from './choice.js';
import type { Engine } from './engine.js';
import { sampleToken, topK } from './sampling.js';

export interface GenerateOptions {
  prompt: number[];
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  /** null: a fresh random seed */
  seed: number | null;
  stop: string[];
  /** alternatives to report per generated token (0 = none) */
  topLogprobs: number;
  /** which RNG sub-streams to use: choice c of this prompt uses stream `streamBase + c` */
  streamBase?: number;
  /** stop early (client went away, server closing) */
  signal?: AbortSignal;
  /** called as text and tokens become final, per choice (streaming) */
  onEmit?: (choice: number, e: Emission) => void;
}

/** Seeds are any safe integer on the wire; the RNG takes 32 bits, so fold the high bits in. */
export function rngSeed(seed: number): number {
  return (seed % 0x100000000) ^ Math.floor(seed / 0x100000000);
}

export class Aborted extends Error {}

export async function generate(engine: Engine, vocab: Uint8Array[], o: GenerateOptions): Promise<Choice[]> {
  const root = new Rng(rngSeed(o.seed ?? randomInt(0, 0x7fffffff)));
  const base = o.streamBase ?? 0;
  const choices = Array.from({ length: o.n }, () => new Choice(vocab, o.stop));
  const rngs = choices.map((_, c) => root.fork(base + c));
  const ids = choices.map(() => [...o.prompt]);
  const emit = (c: number, e: Emission) => {
    if (o.onEmit && (e.text || e.tokens.length || e.finish)) o.onEmit(c, e);
  };
  if (o.maxTokens === 0) choices.forEach((ch, c) => emit(c, ch.finish('length')));
  const decoder = engine.decoder(); // KV cache: the prompt once, then one token per step
  try {
    let prev: number[] | null = null; // the rows of the previous step
    for (;;) {
      const active = choices.map((_, c) => c).filter((c) => !choices[c]!.done);
      if (active.length === 0) break;
      if (o.signal?.aborted) throw new Aborted('aborted');
      const lps = prev === null
        ? await decoder.next(active.map((c) => ids[c]!))
        : await decoder.next(active.map((c) => [ids[c]!.at(-1)!]), active.map((c) => prev!.indexOf(c)));
      prev = active;
      active.forEach((c, i) => {
        const lp = lps[i]!;
        const id = sampleToken(lp, o, rngs[c]!);
        ids[c]!.push(id);
        const ch = choices[c]!;
        emit(c, ch.push({ id, logprob: lp[id]!, top: topK(lp, o.topLogprobs) }));
        if (!ch.done && ch.generated >= o.maxTokens) emit(c, ch.finish('length'));
      });
    }
  } finally {
    decoder.dispose();
  }
  return choices;
}
