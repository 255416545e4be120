/**
 * A student vocabulary derived from the teacher's own tokens: the 256 bytes plus the multi-byte
 * teacher tokens that are most useful, up to `vocabSize`. Usefulness of a teacher token =
 * (times the teacher emitted it) + (its summed top-k probability) over the labelled positions —
 * both are "expected occurrences", so one number ranks tokens seen in the text and tokens the
 * teacher merely considered. Teacher tokens are identified by their bytes.
 *
 * {@link TeacherMap} then maps any teacher token to student ids: a kept token is one id, any other
 * its greedy encoding (bytes and shorter kept tokens). A top-k alternative that is not kept is
 * projected onto the FIRST id of its encoding — its first byte unless a kept token is a prefix of
 * it — which is exactly the id the student must produce first to say that alternative, and the id
 * the hard target names when the teacher sampled it.
 */
import type { RawRecord } from '../schema/raw.js';
import { Tokenizer } from './tokenizer.js';
import { usableLogprob } from '../core/logprob.js';

const utf8 = new TextEncoder();
const BYTES_RE = /^bytes:((?:\\x[0-9a-fA-F]{2})+)$/;

/** Where teacher bytes came from: reported by the server, or rebuilt from the token string. */
export interface ByteSourceStats {
  reported: number;
  /** token strings in OpenAI's "bytes:\xe2\x80" notation for partial characters */
  escaped: number;
  /** UTF-8 of the token string (lossy when a token holds part of a character) */
  fromString: number;
}

export const newByteStats = (): ByteSourceStats => ({ reported: 0, escaped: 0, fromString: 0 });

/** The teacher token's bytes: as reported; else decoded from "bytes:\x.." notation; else UTF-8 of the string. */
export function teacherBytes(token: string | null | undefined, bytes: Uint8Array | null | undefined, stats?: ByteSourceStats): Uint8Array | null {
  if (bytes && bytes.length > 0) {
    if (stats) stats.reported++;
    return bytes;
  }
  if (token == null || token === '') return null;
  const m = BYTES_RE.exec(token);
  if (m) {
    if (stats) stats.escaped++;
    return Uint8Array.from(m[1].split('\\x').slice(1), (h) => parseInt(h, 16));
  }
  if (stats) stats.fromString++;
  return utf8.encode(token);
}

/**
 * A map key for a byte string: byte i becomes UTF-16 unit i (latin1). Tokens are short, and building
 * the string a byte at a time is ~3× faster than a Buffer view's toString (no object per call).
 */
export function bytesKey(b: Uint8Array): string {
  if (b.length > 32) return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

export { usableLogprob } from '../core/logprob.js';

/**
 * The first teacher position of a record whose prediction is labelled: 0 in chat mode; in score
 * mode the first token at or after `score_from` (earlier tokens repeat the previous chunk's text).
 * Offsets come from `text_offsets`, else from the token strings' code-point lengths.
 */
export function firstLabelled(r: RawRecord): number {
  if (r.mode !== 'score' || r.score_from == null || r.chunk_index === 0) return 0;
  const n = r.tokens.length;
  let at = r.chunk_start ?? 0;
  for (let i = 0; i < n; i++) {
    const off = r.text_offsets?.[i] ?? at;
    if (off >= r.score_from) return i;
    at = off + [...(r.tokens[i] ?? '')].length;
  }
  return n;
}

interface Usefulness { count: number; mass: number }

/** Pass 1 of a build: how useful each teacher token is. Holds one entry per distinct teacher token. */
export class VocabCounter {
  readonly tokens = new Map<string, Usefulness>();
  readonly bytes = newByteStats();
  totalMass = 0;
  positions = 0;
  readonly models = new Set<string>();

  private entry(b: Uint8Array): Usefulness {
    const k = bytesKey(b);
    let e = this.tokens.get(k);
    if (!e) this.tokens.set(k, (e = { count: 0, mass: 0 }));
    return e;
  }

  add(r: RawRecord): void {
    if (r.model) this.models.add(r.model);
    for (let i = firstLabelled(r); i < r.tokens.length; i++) {
      const b = teacherBytes(r.tokens[i], r.token_bytes[i], this.bytes);
      if (!b) continue;
      this.positions++;
      this.entry(b).count++;
      const lps = r.top_logprobs[i];
      if (!lps) continue;
      lps.forEach((lp, j) => {
        if (!usableLogprob(lp)) return;
        const ab = teacherBytes(r.top_tokens[i]?.[j], r.top_bytes[i]?.[j], this.bytes);
        if (!ab) return;
        const p = Math.exp(lp);
        this.entry(ab).mass += p;
        this.totalMass += p;
      });
    }
  }
}

export interface DerivedVocab {
  tokenizer: Tokenizer;
  /** share of the teacher's top-k probability mass on tokens that map to one student id */
  massKept: number;
  /** distinct multi-byte teacher tokens seen */
  candidates: number;
}

/** The 256 bytes, then the most useful multi-byte teacher tokens by descending usefulness. */
export function deriveVocab(c: VocabCounter, vocabSize: number, meta: Record<string, unknown> = {}): DerivedVocab {
  const scored: [string, number, number][] = [];
  let byteMass = 0;
  for (const [k, u] of c.tokens) {
    if (k.length === 1) byteMass += u.mass;
    else scored.push([k, u.count + u.mass, u.mass]);
  }
  // ties broken by the bytes themselves so the vocabulary never depends on Map order
  scored.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const kept = scored.slice(0, Math.max(0, vocabSize - 256));
  const keptMass = byteMass + kept.reduce((s, e) => s + e[2], 0);
  const massKept = c.totalMass > 0 ? keptMass / c.totalMass : 1;
  const tokens = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
  for (const [k] of kept) tokens.push(Uint8Array.from(Buffer.from(k, 'latin1')));
  const tokenizer = new Tokenizer(tokens, {
    ...meta, source: 'teacher tokens', teacherModels: [...c.models].sort(), requestedVocabSize: vocabSize,
    teacherTokens: c.tokens.size, teacherPositions: c.positions, massKept, bytes: { ...c.bytes },
  });
  return { tokenizer, massKept, candidates: scored.length };
}

/** Teacher token bytes → student ids, cached (a teacher vocabulary repeats itself constantly). */
export class TeacherMap {
  private readonly cache = new Map<string, number[]>();
  constructor(readonly tokenizer: Tokenizer) {}

  /** Student ids spelling these bytes: one id when the token is kept. */
  split(b: Uint8Array): number[] {
    const k = bytesKey(b);
    let ids = this.cache.get(k);
    if (!ids) this.cache.set(k, (ids = this.tokenizer.encode(b)));
    return ids;
  }
}
