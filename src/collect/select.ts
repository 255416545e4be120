/**
 * Active selection for `kd collect --budget-tokens N --select …`: which input rows to send the teacher
 * when its tokens are paid for. Selection is per row (sequence level: that is how APIs bill).
 *
 * 1. Near-duplicates go first: rows whose word 3-gram sets overlap by Jaccard ≥ 0.8 (estimated with
 *    MinHash, banded for speed, then checked exactly) keep only their first occurrence.
 * 2. A `randomShare` of the budget is filled by a seeded shuffle (coverage: the student's own
 *    uncertainty is blind to what it does not know it lacks), the rest by the strategy's order:
 *    `entropy` — highest mean next-token entropy of the student over the row's text first;
 *    `margin` — smallest mean gap between the student's two most likely tokens first;
 *    `disagreement` — largest mean divergence (Jensen–Shannon, over positions) between the next-token
 *    distributions of ≥ 2 checkpoints (`--student A --student B …`, one tokenizer) first;
 *    `random` — the shuffle for all of it.
 * 3. Rows are taken in that order while their estimated teacher tokens (and cost, with --max-cost)
 *    fit what is left of the budget; rows that do not fit are skipped for smaller ones.
 *
 * Rounds: the budget covers everything in --out. Rows answered by earlier runs count against it and
 * are never candidates again, so `--select random` for a first round, `kd train`, then
 * `--select entropy --student CKPT` with a larger budget into the same --out is active learning in
 * rounds. A round's pick is stored in --out/selection.json and reused as-is when the same command is
 * run again (resume after a kill), so a resumed run sends exactly what the first one would have.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KdError } from '../core/errors.js';

export type SelectStrategy = 'random' | 'entropy' | 'margin' | 'disagreement';
export const SELECT_STRATEGIES: SelectStrategy[] = ['random', 'entropy', 'margin', 'disagreement'];
export const SELECTION_FILE = 'selection.json';

export interface Candidate {
  id: string;
  text: string;
  /** Estimated teacher tokens (prompt + completion bound) of all the row's requests. */
  tokens: number;
  /** Upper bound of the USD of all the row's requests (what --max-cost admits by). */
  costUsd: number;
}

/** The student's uncertainty over one text (higher entropy, lower margin, higher disagreement: less sure). */
export interface Uncertainty {
  entropy: number;
  margin: number;
  /** Mean divergence between checkpoints (--select disagreement only). */
  disagreement?: number;
}

// ---------------------------------------------------------------- near-duplicates

const NUM_HASHES = 32;
const BANDS = 8; // 8 bands of 4 rows: pairs at Jaccard 0.8 collide with probability 1 − (1 − 0.8⁴)⁸ ≈ 0.98

function shingles(text: string): Set<string> {
  const words = text.toLowerCase().normalize('NFKC').split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const out = new Set<string>();
  if (words.length < 3) out.add(words.join(' '));
  for (let i = 0; i + 3 <= words.length; i++) out.add(`${words[i]} ${words[i + 1]} ${words[i + 2]}`);
  return out;
}

function hash32(s: string, seed: number): number {
  // FNV-1a with a seed, then a murmur finaliser
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b) >>> 0; h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35) >>> 0; h ^= h >>> 16;
  return h >>> 0;
}

export function jaccard(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 && b.size === 0) return 1;
  let inter = 0;
  for (const x of a) if (b.has(x)) inter++;
  return inter / (a.size + b.size - inter);
}

/**
 * Indices of texts that near-duplicate an earlier one (word 3-gram Jaccard ≥ threshold), mapped to
 * the index of the earlier text they repeat.
 */
export function nearDuplicates(texts: string[], threshold = 0.8): Map<number, number> {
  const sets = texts.map(shingles);
  const buckets = new Map<string, number[]>();
  const dup = new Map<number, number>();
  const rows = NUM_HASHES / BANDS;
  sets.forEach((set, i) => {
    const sig = new Uint32Array(NUM_HASHES).fill(0xffffffff);
    for (const s of set) for (let k = 0; k < NUM_HASHES; k++) { const h = hash32(s, k * 0x9e3779b9); if (h < sig[k]!) sig[k] = h; }
    const candidates = new Set<number>();
    const keys: string[] = [];
    for (let b = 0; b < BANDS; b++) {
      const key = `${b}:${Array.from(sig.subarray(b * rows, (b + 1) * rows)).join(',')}`;
      keys.push(key);
      for (const j of buckets.get(key) ?? []) candidates.add(j);
    }
    for (const j of [...candidates].sort((x, y) => x - y)) {
      if (jaccard(set, sets[j]!) >= threshold) { dup.set(i, dup.get(j) ?? j); break; }
    }
    if (dup.has(i)) return; // only originals go into buckets: a chain of near-copies maps to its first
    for (const key of keys) { const l = buckets.get(key); if (l) l.push(i); else buckets.set(key, [i]); }
  });
  return dup;
}

// ---------------------------------------------------------------- the pick

/** Seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const a = xs.slice();
  const r = rng(seed);
  for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [a[i], a[j]] = [a[j]!, a[i]!]; }
  return a;
}

export interface PickOptions {
  strategy: SelectStrategy;
  /** Teacher tokens left to spend (Infinity: no token budget). */
  budgetTokens: number;
  /** USD left to spend (Infinity: no cost budget). */
  budgetUsd: number;
  /** Share of the budget filled at random (0..1). */
  randomShare: number;
  seed: number;
}

export interface Pick {
  /** Selected candidates' ids, in the order they were chosen. */
  ids: string[];
  /** How each was chosen. */
  by: ('random' | 'strategy')[];
  tokens: number;
  costUsd: number;
}

/**
 * Chooses candidates within the budget (pure). Candidates must be deduplicated already; entropy,
 * margin and disagreement need `scores` (one per candidate, same order).
 */
export function pickCandidates(cands: Candidate[], scores: Uncertainty[] | null, o: PickOptions): Pick {
  if (o.strategy !== 'random' && (!scores || scores.length !== cands.length)) throw new Error(`pickCandidates: ${o.strategy} needs one score per candidate`);
  const out: Pick = { ids: [], by: [], tokens: 0, costUsd: 0 };
  const taken = new Set<number>();
  const fill = (order: number[], tokenCap: number, usdCap: number, by: 'random' | 'strategy') => {
    for (const i of order) {
      if (taken.has(i)) continue;
      const c = cands[i]!;
      if (out.tokens + c.tokens > tokenCap || out.costUsd + c.costUsd > usdCap + 1e-12) continue;
      taken.add(i);
      out.ids.push(c.id);
      out.by.push(by);
      out.tokens += c.tokens;
      out.costUsd += c.costUsd;
    }
  };
  const random = shuffled(cands.map((_, i) => i), o.seed);
  if (o.strategy === 'random') {
    fill(random, o.budgetTokens, o.budgetUsd, 'random');
    return out;
  }
  const share = Math.min(1, Math.max(0, o.randomShare));
  fill(random, o.budgetTokens * share, o.budgetUsd * share, 'random');
  const key = (i: number) => {
    const u = scores![i]!;
    return o.strategy === 'entropy' ? -u.entropy : o.strategy === 'margin' ? u.margin : -(u.disagreement ?? NaN);
  };
  // ties (and NaN scores: empty texts) in input order, after every scored one
  const order = cands.map((_, i) => i).sort((a, b) => {
    const ka = key(a), kb = key(b);
    if (Number.isNaN(ka) || Number.isNaN(kb)) return Number.isNaN(ka) ? (Number.isNaN(kb) ? a - b : 1) : -1;
    return ka - kb || a - b;
  });
  fill(order, o.budgetTokens, o.budgetUsd, 'strategy');
  return out;
}

// ---------------------------------------------------------------- the stored pick (resume)

export interface SelectionRound {
  /** sha256 of what decides the pick: input file, strategy, budget, share, seed, student(s). */
  key: string;
  strategy: SelectStrategy;
  budget_tokens: number | null;
  max_cost: number | null;
  random_share: number;
  seed: number;
  student: string | null;
  /** --select disagreement: every checkpoint compared (student is the first). */
  students?: string[];
  created_at: string;
  candidates: number;
  near_duplicates: number;
  already_done: number;
  spent_tokens_before: number;
  selected: number;
  selected_tokens: number;
  selected_cost_usd: number;
  ids: string[];
  by: ('random' | 'strategy')[];
}

export interface SelectionFile {
  format: 'kd-selection';
  version: 1;
  rounds: SelectionRound[];
}

export function selectionKey(parts: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

export function readSelection(out: string): SelectionFile {
  const file = join(out, SELECTION_FILE);
  if (!existsSync(file)) return { format: 'kd-selection', version: 1, rounds: [] };
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as SelectionFile;
    if (j.format !== 'kd-selection' || !Array.isArray(j.rounds)) throw new Error('not a kd selection file');
    return j;
  } catch (e) {
    throw new KdError('selection', `${file}: unreadable (${(e as Error).message}); delete it to select again`);
  }
}

export function writeSelection(out: string, s: SelectionFile): void {
  const file = join(out, SELECTION_FILE);
  writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 1) + '\n');
  renameSync(`${file}.tmp`, file);
}
