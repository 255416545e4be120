/**
 * One raw teacher record → one dataset sequence in student ids (the row layout is documented in
 * src/schema/dataset.ts). Pure: tested against hand-worked examples.
 *
 * Raw position i's top-k is the teacher's distribution OF token i (given tokens < i). In a
 * training batch position n describes the NEXT token after ids[n], so the label of teacher token i
 * moves to the student position just before token i's first student id.
 */
import { createHash } from 'node:crypto';
import type { Sequence, Split } from '../schema/dataset.js';

export type { Sequence } from '../schema/dataset.js';
import type { RawRecord } from '../schema/raw.js';
import { type ByteSourceStats, type TeacherMap, firstLabelled, teacherBytes, usableLogprob } from '../tokenizer/derive.js';

export interface ConvertStats {
  sequences: number;
  /** teacher positions in labelled regions */
  teacherPositions: number;
  labelled: number;
  /** a labelled-region token at student position 0 has no predecessor to carry its label */
  noPredecessor: number;
  /** positions without a usable alternative (echo's first token, all sentinels) */
  noAlternatives: number;
  /** tokens with neither bytes nor a string (vLLM's null first position): skipped */
  missingTokens: number;
  /** records with nothing to learn (no target, no label) */
  emptySequences: number;
  topMass: number;
  /** top-k mass on alternatives that are one student id */
  oneToOneMass: number;
  /** Σ entropy (nats) of the renormalised projected top-k, over labelled positions */
  entropySum: number;
  maxK: number;
  bytes: ByteSourceStats;
}

export const newConvertStats = (): ConvertStats => ({
  sequences: 0, teacherPositions: 0, labelled: 0, noPredecessor: 0, noAlternatives: 0, missingTokens: 0, emptySequences: 0,
  topMass: 0, oneToOneMass: 0, entropySum: 0, maxK: 0, bytes: { reported: 0, escaped: 0, fromString: 0 },
});

/** Converts a record; null when it has nothing to learn from. */
export function convertRecord(r: RawRecord, map: TeacherMap, stats: ConvertStats = newConvertStats()): Sequence | null {
  const ids: number[] = r.prompt ? map.tokenizer.encode(r.prompt) : [];
  const from = firstLabelled(r);
  const n = r.tokens.length;
  const starts = new Int32Array(n).fill(-1);
  let contextEnd = -1;
  for (let i = 0; i < n; i++) {
    const b = teacherBytes(r.tokens[i], r.token_bytes[i], stats.bytes);
    if (!b) {
      stats.missingTokens++;
      continue;
    }
    if (i >= from && contextEnd < 0) contextEnd = ids.length;
    starts[i] = ids.length;
    for (const id of map.split(b)) ids.push(id);
  }
  if (contextEnd < 0) contextEnd = ids.length;
  const L = ids.length;
  const seq: Sequence = { inputId: r.input_id, ids, mask: new Uint8Array(L), targetFrom: Math.max(0, contextEnd - 1), topCounts: [], topIds: [], topLogprobs: [] };
  const merged = new Map<number, number>();
  for (let i = from; i < n; i++) {
    if (starts[i] < 0) continue;
    stats.teacherPositions++;
    merged.clear();
    const lps = r.top_logprobs[i] ?? [];
    for (let j = 0; j < lps.length; j++) {
      const lp = lps[j];
      if (!usableLogprob(lp)) continue;
      const b = teacherBytes(r.top_tokens[i]?.[j], r.top_bytes[i]?.[j], stats.bytes);
      if (!b) continue;
      const split = map.split(b);
      const p = Math.exp(lp);
      stats.topMass += p;
      if (split.length === 1) stats.oneToOneMass += p;
      const prev = merged.get(split[0]);
      merged.set(split[0], prev === undefined ? lp : logAddExp(prev, lp));
    }
    if (merged.size === 0) {
      stats.noAlternatives++;
      continue;
    }
    const pos = starts[i] - 1;
    if (pos < 0) {
      stats.noPredecessor++;
      continue;
    }
    const entries = [...merged].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    seq.mask[pos] = 1;
    seq.topCounts.push(entries.length);
    for (const [id, lp] of entries) {
      seq.topIds.push(id);
      seq.topLogprobs.push(lp);
    }
    stats.entropySum += entropy(entries.map((e) => e[1]));
    stats.maxK = Math.max(stats.maxK, entries.length);
    stats.labelled++;
  }
  if (seq.topCounts.length === 0 && L - 1 <= seq.targetFrom) {
    stats.emptySequences++;
    return null;
  }
  stats.sequences++;
  return seq;
}

/** log(e^a + e^b) without overflow or underflow. */
export function logAddExp(a: number, b: number): number {
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(Math.min(a, b) - m));
}

/** Entropy (nats) of the distribution proportional to exp(lps[from..from+n)). */
export function entropy(lps: ArrayLike<number>, from = 0, n = lps.length - from): number {
  const end = from + n;
  let m = -Infinity;
  for (let k = from; k < end; k++) m = Math.max(m, lps[k]);
  // H = −Σ q log q with q = e/Z, e = exp(lp − m): = log Z − Σ e·(lp − m) / Z (one exp per entry)
  let z = 0, s = 0;
  for (let k = from; k < end; k++) {
    const x = lps[k] - m, e = Math.exp(x);
    z += e;
    s += e * x;
  }
  return Math.log(z) - s / z;
}

/**
 * The split of an input: a hash of (seed, input_id), so every record of one input (all choices, all
 * chunks) lands in the same split whatever the order of the raw shards — no leakage.
 */
export function splitOf(inputId: string, seed: number, valFraction: number): Split {
  const h = createHash('sha256').update(`${seed}\n${inputId}`).digest();
  return h.readUInt32BE(0) / 2 ** 32 < valFraction ? 'val' : 'train';
}
