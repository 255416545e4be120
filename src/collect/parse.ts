/**
 * Response parsing for `kd collect`: one wire format in, raw records (src/schema/raw.ts) out, or a
 * reason to reject the row. Pure functions; every quirk of the servers kd talks to is handled
 * here: the -9999 sentinel, missing bytes, fewer alternatives than asked, the null first position of
 * an echo, vLLM's id-keyed prompt_logprobs.
 */
import { renderPrompt, type RawRecord } from '../schema/raw.js';
import type { PlannedRequest } from './request.js';
import { LOGPROB_SENTINEL } from '../core/logprob.js';

/** A log-prob at or below this is the "outside the top 20" / clamped -inf sentinel, not a value. */
export { LOGPROB_SENTINEL };

export interface ParseContext {
  req: PlannedRequest;
  topK: number;
  latencyMs: number;
  attempts: number;
  completedAt: number;
}

export interface ParseStats {
  positions: number;
  sentinels: number;
  /** Positions with fewer alternatives than asked. */
  shortTopK: number;
  missingBytes: number;
}

export type ParseResult =
  | { ok: true; records: RawRecord[]; stats: ParseStats }
  | { ok: false; reason: 'no_logprobs' | 'malformed_logprobs' | 'malformed_response'; detail: string };

class Malformed extends Error {}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function newStats(): ParseStats {
  return { positions: 0, sentinels: 0, shortTopK: 0, missingBytes: 0 };
}

/**
 * Where a value sits, for error messages: a string, or on the hot path (parseChat) one {@link ChatLoc}
 * updated in place, whose text is built only when a message needs it (no string or closure per
 * alternative: under tsx every closure also costs a `__name` call).
 */
type Where = string | ChatLoc;

class ChatLoc {
  choice = 0;
  pos = 0;
  /** -1: the position itself, not one of its alternatives. */
  alt = -1;
  toString(): string {
    return `choice ${this.choice} position ${this.pos}${this.alt >= 0 ? ` alternative ${this.alt}` : ''}`;
  }
}

/** The sentinel as a local constant (read per alternative: no module-binding indirection). */
const SENTINEL: number = LOGPROB_SENTINEL;

function logprob(v: unknown, where: Where, stats: ParseStats): number | null {
  if (v === null) return null;
  if (typeof v !== 'number' || Number.isNaN(v) || v > 1e-6) throw new Malformed(`${where}: log-prob ${JSON.stringify(v)} is not a number ≤ 0`);
  if (v <= SENTINEL) {
    stats.sentinels++;
    return null;
  }
  return Math.min(v, 0);
}

function bytesOf(v: unknown, where: Where): Uint8Array | null {
  if (v === null || v === undefined) return null;
  if (!Array.isArray(v)) throw new Malformed(`${where}: bytes must be an array of 0..255`);
  const out = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const b = v[i];
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) throw new Malformed(`${where}: bytes must be an array of 0..255`);
    out[i] = b;
  }
  return out;
}

function tokenOf(v: unknown, where: Where): string {
  if (typeof v !== 'string') throw new Malformed(`${where}: token must be a string`);
  return v;
}

function usageOf(json: Record<string, unknown>): Pick<RawRecord, 'prompt_tokens' | 'completion_tokens' | 'cached_tokens'> {
  const u = isObj(json.usage) ? json.usage : {};
  const int = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : null);
  const details = isObj(u.prompt_tokens_details) ? u.prompt_tokens_details : {};
  return { prompt_tokens: int(u.prompt_tokens), completion_tokens: int(u.completion_tokens), cached_tokens: int(details.cached_tokens) };
}

function baseRecord(json: Record<string, unknown>, ctx: ParseContext, choiceIndex: number): Omit<RawRecord,
  'tokens' | 'token_bytes' | 'token_logprobs' | 'top_ids' | 'top_tokens' | 'top_bytes' | 'top_logprobs' | 'text_offsets' | 'finish_reason'> {
  // Usage is per response: it goes on choice 0 only so that summing records never double-counts.
  const usage = choiceIndex === 0 ? usageOf(json) : { prompt_tokens: null, completion_tokens: null, cached_tokens: null };
  return {
    input_id: ctx.req.inputId,
    request_hash: ctx.req.hash,
    mode: ctx.req.endpoint === 'completions' ? 'score' : 'chat',
    choice_index: choiceIndex,
    chunk_index: ctx.req.chunkIndex,
    chunk_count: ctx.req.chunkCount,
    chunk_start: ctx.req.chunkStart,
    score_from: ctx.req.scoreFrom,
    ...usage,
    model: typeof json.model === 'string' ? json.model : null,
    system_fingerprint: typeof json.system_fingerprint === 'string' ? json.system_fingerprint : null,
    latency_ms: ctx.latencyMs,
    attempts: ctx.attempts,
    completed_at: ctx.completedAt,
    prompt: ctx.req.endpoint === 'completions' ? null : renderPrompt(ctx.req.body.messages ?? ctx.req.body.input),
  };
}

function guard(fn: () => ParseResult): ParseResult {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Malformed) return { ok: false, reason: 'malformed_logprobs', detail: e.message };
    throw e;
  }
}

function choicesOf(json: unknown): Record<string, unknown>[] | string {
  if (!isObj(json)) return 'the body is not a JSON object';
  if (!Array.isArray(json.choices) || json.choices.length === 0) return 'no choices in the response';
  if (!json.choices.every(isObj)) return 'choices must be objects';
  return json.choices as Record<string, unknown>[];
}

/** `/v1/chat/completions` with logprobs: one record per choice. */
export function parseChat(json: unknown, ctx: ParseContext): ParseResult {
  const choices = choicesOf(json);
  if (typeof choices === 'string') return { ok: false, reason: 'malformed_response', detail: choices };
  return guard(() => {
    const stats = newStats();
    const records: RawRecord[] = [];
    for (const [ci, choice] of choices.entries()) {
      const index = typeof choice.index === 'number' ? choice.index : ci;
      const content = isObj(choice.logprobs) ? choice.logprobs.content : undefined;
      if (!Array.isArray(content)) return { ok: false, reason: 'no_logprobs', detail: `choice ${index} has no logprobs.content` };
      const r: RawRecord = {
        ...baseRecord(json as Record<string, unknown>, ctx, index),
        tokens: [], token_bytes: [], token_logprobs: [], top_ids: null, top_tokens: [], top_bytes: [], top_logprobs: [],
        text_offsets: null, finish_reason: typeof choice.finish_reason === 'string' ? choice.finish_reason : null,
      };
      const where = new ChatLoc();
      where.choice = index;
      for (let i = 0; i < content.length; i++) {
        const item: unknown = content[i];
        where.pos = i;
        where.alt = -1;
        if (!isObj(item)) throw new Malformed(`${where}: not an object`);
        r.tokens.push(tokenOf(item.token, where));
        r.token_logprobs.push(logprob(item.logprob, where, stats));
        const b = bytesOf(item.bytes, where);
        if (!b) stats.missingBytes++;
        r.token_bytes.push(b);
        const alts = item.top_logprobs === undefined || item.top_logprobs === null ? [] : item.top_logprobs;
        if (!Array.isArray(alts)) throw new Malformed(`${where}: top_logprobs must be an array`);
        const n = Math.min(alts.length, ctx.topK);
        if (n < ctx.topK) stats.shortTopK++;
        const toks: string[] = [];
        const bytes: (Uint8Array | null)[] = [];
        const lps: (number | null)[] = [];
        for (let j = 0; j < n; j++) {
          const a: unknown = alts[j];
          where.alt = j;
          if (!isObj(a)) throw new Malformed(`${where}: not an object`);
          toks.push(tokenOf(a.token, where));
          lps.push(logprob(a.logprob, where, stats));
          bytes.push(bytesOf(a.bytes, where));
        }
        r.top_tokens.push(toks);
        r.top_bytes.push(bytes);
        r.top_logprobs.push(lps);
        stats.positions++;
      }
      records.push(r);
    }
    return { ok: true, records, stats };
  });
}

/**
 * A Responses API answer (/v1/responses) in the chat completion shape parseChat reads: its output_text
 * parts' log-probs as one choice, input/output tokens as prompt/completion tokens, "incomplete" as
 * finish_reason "length". A body without `output` is passed on as it is, for parseChat to reject.
 */
export function responsesAsChat(json: unknown): unknown {
  if (!isObj(json) || !Array.isArray(json.output)) return json;
  const parts = json.output.filter((o) => isObj(o) && o.type === 'message')
    .flatMap((m) => (Array.isArray(m.content) ? m.content : []).filter((c: unknown) => isObj(c) && c.type === 'output_text')) as Record<string, unknown>[];
  const u = isObj(json.usage) ? json.usage : {};
  const details = isObj(u.input_tokens_details) ? u.input_tokens_details : {};
  const withLogprobs = parts.length > 0 && parts.every((p) => Array.isArray(p.logprobs));
  return {
    model: json.model, system_fingerprint: null,
    usage: { prompt_tokens: u.input_tokens, completion_tokens: u.output_tokens, prompt_tokens_details: { cached_tokens: details.cached_tokens } },
    choices: [{
      index: 0, finish_reason: json.status === 'incomplete' ? 'length' : 'stop',
      logprobs: withLogprobs ? { content: parts.flatMap((p) => p.logprobs as unknown[]) } : null,
    }],
  };
}

const cpLength = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/**
 * Legacy `/v1/completions` with echo: the prompt's positions (the first has a null log-prob and no
 * alternatives). Positions at or past the end of the prompt (a generated token when max_tokens ≥ 1)
 * are dropped. `top_logprobs` dicts are ordered best first and cut to k (OpenAI may send k+1).
 */
export function parseEcho(json: unknown, ctx: ParseContext): ParseResult {
  const choices = choicesOf(json);
  if (typeof choices === 'string') return { ok: false, reason: 'malformed_response', detail: choices };
  return guard(() => {
    const stats = newStats();
    const choice = choices[0]!;
    const lp = choice.logprobs;
    if (!isObj(lp) || !Array.isArray(lp.tokens) || lp.tokens.length === 0) {
      return { ok: false, reason: 'no_logprobs', detail: 'choice 0 has no logprobs.tokens (does the server support echo with logprobs?)' };
    }
    const tokens = lp.tokens as unknown[];
    const n = tokens.length;
    const arr = (v: unknown, name: string, required: boolean): unknown[] | null => {
      if (v === undefined || v === null) {
        if (required) throw new Malformed(`logprobs.${name} is missing`);
        return null;
      }
      if (!Array.isArray(v) || v.length !== n) throw new Malformed(`logprobs.${name} must be an array of ${n} entries`);
      return v;
    };
    const tokenLps = arr(lp.token_logprobs, 'token_logprobs', true)!;
    const tops = arr(lp.top_logprobs, 'top_logprobs', false);
    const offsets = arr(lp.text_offset, 'text_offset', false);
    const promptLen = ctx.req.text !== null ? cpLength(ctx.req.text) : Infinity;
    const base = ctx.req.chunkStart ?? 0;
    const r: RawRecord = {
      ...baseRecord(json as Record<string, unknown>, ctx, 0),
      tokens: [], token_bytes: [], token_logprobs: [], top_ids: null, top_tokens: [], top_bytes: [], top_logprobs: [],
      text_offsets: offsets ? [] : null, finish_reason: typeof choice.finish_reason === 'string' ? choice.finish_reason : null,
    };
    for (let i = 0; i < n; i++) {
      const where = `position ${i}`;
      let offset: number | null = null;
      if (offsets) {
        const o = offsets[i];
        if (typeof o !== 'number' || !Number.isInteger(o) || o < 0) throw new Malformed(`${where}: text_offset must be an integer ≥ 0`);
        if (o >= promptLen && i > 0) break; // generated, not part of the scored text
        offset = o;
      }
      r.tokens.push(tokenOf(tokens[i], where));
      r.token_bytes.push(null);
      stats.missingBytes++;
      r.token_logprobs.push(logprob(tokenLps[i], where, stats));
      const top = tops ? tops[i] : null;
      if (top === null || top === undefined) {
        r.top_tokens.push(null);
        r.top_bytes.push(null);
        r.top_logprobs.push(null);
      } else {
        if (!isObj(top)) throw new Malformed(`${where}: top_logprobs entry must be an object or null`);
        const entries = Object.entries(top).map(([t, v]) => [t, logprob(v, `${where} alternative "${t}"`, stats)] as const);
        entries.sort((a, b) => (b[1] ?? -Infinity) - (a[1] ?? -Infinity));
        const kept = entries.slice(0, ctx.topK);
        if (kept.length < ctx.topK) stats.shortTopK++;
        r.top_tokens.push(kept.map((e) => e[0]));
        r.top_bytes.push(kept.map(() => null));
        r.top_logprobs.push(kept.map((e) => e[1]));
      }
      if (r.text_offsets) r.text_offsets.push(offset === null ? null : offset + base);
      stats.positions++;
    }
    return { ok: true, records: [r], stats };
  });
}

/**
 * JSON.parse that keeps the order of vLLM's token-id keys: JavaScript orders integer-like keys
 * numerically, but vLLM puts the prompt token first in each prompt_logprobs object. Keys that are
 * digits and hold an object get a `#` prefix before parsing (string values cannot match: their
 * quotes are escaped).
 */
export function parseJsonKeepingIdOrder(text: string): unknown {
  return JSON.parse(text.replace(/"(\d+)"(\s*:\s*\{)/g, '"#$1"$2'));
}

/**
 * The JSON of a 2xx body, or why it is none (a retryable failure: a truncated or garbled answer).
 * `keepIdOrder`: vLLM's token-id keys keep their order ({@link parseJsonKeepingIdOrder}).
 */
export function decodeBody(body: Uint8Array, status: number, keepIdOrder: boolean): { ok: true; json: unknown } | { ok: false; message: string } {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  try {
    return { ok: true, json: keepIdOrder ? parseJsonKeepingIdOrder(text) : JSON.parse(text) };
  } catch {
    return { ok: false, message: `HTTP ${status}: the body is not JSON (${text.length} bytes: ${JSON.stringify(text.slice(0, 80))})` };
  }
}

/**
 * vLLM `prompt_logprobs` (completions: inside the choice; chat: top level). Each position is an
 * object keyed by token id, the prompt token first, then the top-k by rank; the first position is
 * null. Text offsets are rebuilt only when the decoded tokens spell the end of the text exactly.
 */
export function parseVllm(json: unknown, ctx: ParseContext): ParseResult {
  const choices = choicesOf(json);
  if (typeof choices === 'string') return { ok: false, reason: 'malformed_response', detail: choices };
  return guard(() => {
    const stats = newStats();
    const choice = choices[0]!;
    const pl = choice.prompt_logprobs ?? (json as Record<string, unknown>).prompt_logprobs;
    if (!Array.isArray(pl) || pl.length === 0) return { ok: false, reason: 'no_logprobs', detail: 'no prompt_logprobs in the response (is the server vLLM?)' };
    const r: RawRecord = {
      ...baseRecord(json as Record<string, unknown>, ctx, 0),
      tokens: [], token_bytes: [], token_logprobs: [], top_ids: [], top_tokens: [], top_bytes: [], top_logprobs: [],
      text_offsets: null, finish_reason: typeof choice.finish_reason === 'string' ? choice.finish_reason : null,
    };
    for (const [i, pos] of pl.entries()) {
      const where = `prompt position ${i}`;
      stats.positions++;
      if (pos === null) {
        r.tokens.push(null);
        r.token_bytes.push(null);
        r.token_logprobs.push(null);
        r.top_ids!.push(null);
        r.top_tokens.push(null);
        r.top_bytes.push(null);
        r.top_logprobs.push(null);
        continue;
      }
      if (!isObj(pos)) throw new Malformed(`${where}: must be an object or null`);
      const entries = Object.entries(pos).map(([key, v], order) => {
        const id = Number(key.replace(/^#/, ''));
        if (!Number.isInteger(id) || !isObj(v)) throw new Malformed(`${where}: entry "${key}" must be {token id: {logprob, rank, decoded_token}}`);
        const decoded = typeof v.decoded_token === 'string' ? v.decoded_token : null;
        return { id, order, lp: logprob(v.logprob, `${where} token ${id}`, stats), rank: typeof v.rank === 'number' ? v.rank : null, decoded };
      });
      if (entries.length === 0) throw new Malformed(`${where}: empty object`);
      const actual = entries[0]!;
      r.tokens.push(actual.decoded ?? `token_id:${actual.id}`);
      r.token_bytes.push(null);
      stats.missingBytes++;
      r.token_logprobs.push(actual.lp);
      const top = entries
        .filter((e) => e.rank === null || e.rank <= ctx.topK)
        .sort((a, b) => (a.rank ?? a.order) - (b.rank ?? b.order))
        .slice(0, ctx.topK);
      if (top.length < ctx.topK) stats.shortTopK++;
      r.top_ids!.push(top.map((e) => e.id));
      r.top_tokens.push(top.map((e) => e.decoded ?? `token_id:${e.id}`));
      r.top_bytes.push(top.map(() => null));
      r.top_logprobs.push(top.map((e) => e.lp));
    }
    r.text_offsets = suffixOffsets(r.tokens, ctx.req.text, ctx.req.chunkStart ?? 0);
    return { ok: true, records: [r], stats };
  });
}

/** Offsets from decoded tokens 1..n-1 when they spell the text's end exactly; else null. */
function suffixOffsets(tokens: (string | null)[], text: string | null, base: number): number[] | null {
  if (text === null || tokens.length < 2 || tokens.slice(1).some((t) => t === null)) return null;
  const pieces = tokens.slice(1) as string[];
  const joined = pieces.join('');
  if (!text.endsWith(joined)) return null;
  let at = cpLength(text) - cpLength(joined);
  const out = [base];
  for (const p of pieces) {
    out.push(base + at);
    at += cpLength(p);
  }
  return out;
}
