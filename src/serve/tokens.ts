/**
 * How kd's byte-string tokens appear on the wire.
 *
 * A kd token is a byte string, and one token may hold part of a UTF-8 character (or bytes that are
 * never valid UTF-8). OpenAI shows such tokens as "bytes:\xNN\xNN" (the backslashes and hex digits are
 * literal characters); we do the same, and make the form reversible and injective:
 *   - a token whose bytes are valid UTF-8 and do not start with "bytes:" is its text;
 *   - any other token is "bytes:" followed by "\xNN" (lower-case hex) for every byte.
 * Distinct tokens therefore always have distinct strings, so keys of a legacy `top_logprobs` dict
 * never collide, and {@link tokenBytesOf} recovers the exact bytes. Chat responses also carry
 * `bytes` arrays, which clients should prefer.
 */
import { isUtf8 } from 'node:buffer';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

const PREFIX = 'bytes:';
const PREFIX_BYTES = Buffer.from(PREFIX, 'latin1');
const BYTES_FORM = /^bytes:((?:\\x[0-9a-f]{2})+)$/;

/** The wire string of one token's bytes. */
export function tokenString(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hasPrefix = buf.length >= PREFIX_BYTES.length && buf.subarray(0, PREFIX_BYTES.length).equals(PREFIX_BYTES);
  if (isUtf8(buf) && !hasPrefix) return buf.toString('utf8');
  let s = PREFIX;
  for (const b of buf) s += '\\x' + b.toString(16).padStart(2, '0');
  return s;
}

/** Inverse of {@link tokenString}: the bytes a wire token string stands for. */
export function tokenBytesOf(s: string): Uint8Array {
  const m = BYTES_FORM.exec(s);
  if (!m) return Uint8Array.from(Buffer.from(s, 'utf8'));
  const hex = m[1]!.replace(/\\x/g, '');
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/** Wire strings and byte arrays of a whole vocabulary, computed once at load. */
export interface TokenTable {
  tokenizer: Tokenizer;
  strings: string[];
  /** plain arrays for the chat `bytes` field */
  bytes: number[][];
}

export function tokenTable(tokenizer: Tokenizer): TokenTable {
  return {
    tokenizer,
    strings: tokenizer.tokens.map(tokenString),
    bytes: tokenizer.tokens.map((t) => Array.from(t)),
  };
}

/**
 * `text_offset`s in code points (what Python servers report and kd collect expects): for each token,
 * the index of the character holding its first byte, counting from `base`. UTF-8 characters start at
 * every byte that is not a continuation byte (10xxxxxx); a token starting inside a character gets
 * that character's index.
 */
export function textOffsets(tokens: Uint8Array[], base = 0): number[] {
  const out: number[] = [];
  let leads = 0; // characters started so far
  for (const t of tokens) {
    const inside = t.length > 0 && (t[0]! & 0xc0) === 0x80;
    out.push(base + (inside ? Math.max(0, leads - 1) : leads));
    for (const b of t) if ((b & 0xc0) !== 0x80) leads++;
  }
  return out;
}

/** Code points in a string (astral characters count once, as in Python). */
export function codePointLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}
