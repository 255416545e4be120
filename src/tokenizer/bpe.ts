/**
 * Byte-level BPE training (Sennrich et al. 2016; the GPT-2 / minbpe recipe) for a tokenizer learned
 * from text — how kd's embedded teacher gets its vocabulary. Text is split into words with GPT-2's
 * pattern, word types are counted, and the most frequent adjacent pair is merged until the vocabulary
 * is full. Pair counts are updated incrementally, touching only the words that contain the merged pair.
 * The result is a plain kd Tokenizer (byte strings; encoding by greedy longest match, which on a BPE
 * vocabulary is close to, though not always identical with, applying the merges).
 */
import { Tokenizer } from './tokenizer.js';

/** GPT-2's pre-tokenisation pattern: contractions, letters, numbers, punctuation runs, spaces. */
export const GPT2_SPLIT = /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface BpeOptions {
  vocabSize: number;
  /** ignore word types seen fewer times (speed on large corpora); default 1 */
  minWordCount?: number;
}

const key = (a: number, b: number) => a * 65536 + b;

export function trainBpe(texts: Iterable<string>, o: BpeOptions): Tokenizer {
  if (!Number.isInteger(o.vocabSize) || o.vocabSize < 256 || o.vocabSize > 65536) throw new Error(`vocabSize must be in [256, 65536], got ${o.vocabSize}`);
  const wordCounts = new Map<string, number>();
  for (const text of texts) for (const m of text.matchAll(GPT2_SPLIT)) wordCounts.set(m[0], (wordCounts.get(m[0]) ?? 0) + 1);
  const words: number[][] = [];
  const counts: number[] = [];
  for (const [w, c] of wordCounts) {
    if (c < (o.minWordCount ?? 1)) continue;
    words.push([...Buffer.from(w, 'utf8')]);
    counts.push(c);
  }
  const tokens: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: number) => {
    const s = words[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const k = key(s[i], s[i + 1]);
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * counts[w]);
      if (sign > 0) {
        let set = pairWords.get(k);
        if (!set) pairWords.set(k, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, 1);

  while (tokens.length < o.vocabSize) {
    let best = -1, bestCount = 1; // a pair must occur at least twice to be worth a token
    for (const [k, c] of pairCount) if (c > bestCount || (c === bestCount && best >= 0 && k < best)) { best = k; bestCount = c; }
    if (best < 0) break;
    const a = Math.floor(best / 65536), b = best % 65536, id = tokens.length;
    const merged = new Uint8Array(tokens[a].length + tokens[b].length);
    merged.set(tokens[a]);
    merged.set(tokens[b], tokens[a].length);
    tokens.push(merged);
    for (const w of pairWords.get(best) ?? []) {
      const s = words[w];
      addPairs(w, -1);
      const out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { out.push(id); i++; } else out.push(s[i]);
      }
      words[w] = out;
      addPairs(w, 1);
    }
    pairCount.delete(best);
    pairWords.delete(best);
  }
  return new Tokenizer(tokens, { kind: 'bpe', vocabSize: tokens.length, wordTypes: words.length });
}
