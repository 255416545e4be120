/**
 * Request building for `kd collect`: wire bodies for the three APIs, canonical JSON, the request hash
 * that keys the resume ledger, and chunking of long texts for score mode.
 */
import { createHash } from 'node:crypto';
import type { ChatMessage, CollectMode, InputRow } from './input.js';

export type ScoreApi = 'echo' | 'vllm';
/** Chat mode's wire format: /v1/chat/completions, or OpenAI's Responses API (/v1/responses). */
export type ChatApi = 'chat' | 'responses';
export type Endpoint = 'chat' | 'completions' | 'responses';

export interface RequestParams {
  mode: CollectMode;
  model: string;
  /** Alternatives per position; already capped for the API (see {@link effectiveTopK}). */
  topK: number;
  maxTokens: number;
  temperature: number;
  seed?: number;
  n: number;
  scoreApi: ScoreApi;
  /** chat mode's wire format (absent: chat) */
  chatApi?: ChatApi;
  /** OpenAI calls it max_completion_tokens; older servers (vLLM, llama.cpp, Ollama) know max_tokens. */
  maxTokensField: 'max_tokens' | 'max_completion_tokens';
  /** Score mode chunking, in approximate tokens (4 characters each). */
  chunkTokens: number;
  chunkOverlap: number;
}

export interface PlannedRequest {
  endpoint: Endpoint;
  body: Record<string, unknown>;
  hash: string;
  inputId: string;
  row: number;
  chunkIndex: number;
  chunkCount: number;
  /** Score mode: code-point offsets of the chunk in the row's text and of its first new character. */
  chunkStart: number | null;
  scoreFrom: number | null;
  /** Score mode: the chunk's text (to drop generated positions past it). */
  text: string | null;
}

/** Characters per token assumed when cutting chunks and estimating tokens without a tokenizer. */
export const CHARS_PER_TOKEN = 4;

const OPENAI_MODEL = /^(gpt-|o\d|chatgpt-|davinci-|babbage-|text-|ft:gpt-)/;

/** Models served by OpenAI itself (their limits and prices apply). */
export function isOpenAIModel(model: string): boolean {
  return OPENAI_MODEL.test(model);
}

/**
 * The top-k the API allows: chat ≤ 20 everywhere; legacy echo ≤ 5 on OpenAI's own models (kd serve,
 * vLLM and others allow 20); vLLM's prompt_logprobs ≤ 20 (its default --max-logprobs).
 */
export function effectiveTopK(requested: number, mode: CollectMode, scoreApi: ScoreApi, model: string): number {
  const cap = mode === 'score' && scoreApi === 'echo' && isOpenAIModel(model) ? 5 : 20;
  return Math.max(0, Math.min(requested, cap));
}

/** JSON with object keys sorted at every level: the same request always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * sha256 over the canonical body (with its endpoint), the input id and the chunk index: the id keeps
 * two rows with the same prompt apart, the chunk index two identical chunks of one text.
 */
export function requestHash(endpoint: Endpoint, body: unknown, inputId: string, chunkIndex = 0): string {
  return createHash('sha256')
    .update(canonicalJson({ endpoint, body }))
    .update('\n')
    .update(inputId)
    .update('\n')
    .update(String(chunkIndex))
    .digest('hex');
}

/** Hash for a row rejected before any request could be built (empty prompt, bad UTF-8). */
export function rowRejectHash(row: InputRow): string {
  return createHash('sha256').update(canonicalJson({ row: row.row, reason: row.reject?.reason ?? null })).update('\n').update(row.id).digest('hex');
}

export function chatBody(messages: ChatMessage[], p: RequestParams): Record<string, unknown> {
  return {
    model: p.model,
    messages,
    logprobs: true,
    top_logprobs: p.topK,
    [p.maxTokensField]: p.maxTokens,
    temperature: p.temperature,
    ...(p.seed !== undefined ? { seed: p.seed } : {}),
    ...(p.n !== 1 ? { n: p.n } : {}),
  };
}

/** The Responses API: the same messages as input items, the output text's log-probs included; no seed, no n. */
export function responsesBody(messages: ChatMessage[], p: RequestParams): Record<string, unknown> {
  return {
    model: p.model,
    input: messages.map((m) => ({ role: m.role, content: m.content })),
    include: ['message.output_text.logprobs'],
    top_logprobs: p.topK,
    max_output_tokens: p.maxTokens,
    temperature: p.temperature,
  };
}

/** Legacy completions, teacher-forced: echo the prompt with its log-probs and generate nothing. */
export function echoBody(text: string, p: RequestParams): Record<string, unknown> {
  return { model: p.model, prompt: text, echo: true, logprobs: p.topK, max_tokens: 0, temperature: 0 };
}

/** vLLM extension: per-prompt-position top-k keyed by token id; one token must be generated. */
export function vllmBody(text: string, p: RequestParams): Record<string, unknown> {
  return { model: p.model, prompt: text, max_tokens: 1, temperature: 0, prompt_logprobs: p.topK };
}

export interface Chunk {
  /** Code-point offsets [start, end) in the text. */
  start: number;
  end: number;
  /** First code point that the previous chunk did not cover (= start for the first chunk). */
  scoreFrom: number;
}

/**
 * Cuts a text into chunks of at most `chunkChars` code points, each (after the first) starting
 * `overlapChars` before the previous one's end so every scored token has left context. Cuts prefer a
 * whitespace boundary in the last fifth of a chunk; positions are code points (never inside a
 * surrogate pair), matching the character offsets Python servers report.
 */
export function chunkText(text: string, chunkChars: number, overlapChars: number): Chunk[] {
  const cps = Array.from(text);
  const n = cps.length;
  if (n <= chunkChars) return [{ start: 0, end: n, scoreFrom: 0 }];
  const overlap = Math.max(0, Math.min(overlapChars, Math.floor(chunkChars / 2)));
  const isSpace = (i: number) => i > 0 && i < n && /\s/u.test(cps[i - 1]!);
  const chunks: Chunk[] = [];
  let start = 0;
  let covered = 0;
  while (covered < n) {
    let end = Math.min(start + chunkChars, n);
    if (end < n) {
      const floor = start + Math.floor(chunkChars * 0.8);
      for (let i = end; i > floor; i--) {
        if (isSpace(i)) {
          end = i;
          break;
        }
      }
    }
    chunks.push({ start, end, scoreFrom: covered });
    covered = end;
    if (end >= n) break;
    let next = Math.max(end - overlap, start + 1);
    for (let i = next; i < end && i < next + Math.ceil(overlap / 2); i++) {
      if (isSpace(i)) {
        next = i;
        break;
      }
    }
    start = next;
  }
  return chunks;
}

/** Slices code points [start, end) out of a string. */
export function sliceCodePoints(text: string, start: number, end: number): string {
  return Array.from(text).slice(start, end).join('');
}

/** The requests for one input row (one for chat, one per chunk for score). */
export function planRequests(row: InputRow, p: RequestParams): PlannedRequest[] {
  if (p.mode === 'chat') {
    const endpoint = p.chatApi === 'responses' ? 'responses' : 'chat';
    const body = endpoint === 'responses' ? responsesBody(row.messages!, p) : chatBody(row.messages!, p);
    return [{
      endpoint, body, hash: requestHash(endpoint, body, row.id), inputId: row.id, row: row.row,
      chunkIndex: 0, chunkCount: 1, chunkStart: null, scoreFrom: null, text: null,
    }];
  }
  const text = row.text!;
  const chunks = chunkText(text, p.chunkTokens * CHARS_PER_TOKEN, p.chunkOverlap * CHARS_PER_TOKEN);
  const cps = chunks.length > 1 ? Array.from(text) : null;
  return chunks.map((c, i) => {
    const piece = cps ? cps.slice(c.start, c.end).join('') : text;
    const body = p.scoreApi === 'echo' ? echoBody(piece, p) : vllmBody(piece, p);
    return {
      endpoint: 'completions' as const, body, hash: requestHash('completions', body, row.id, i), inputId: row.id, row: row.row,
      chunkIndex: i, chunkCount: chunks.length, chunkStart: c.start, scoreFrom: c.scoreFrom, text: piece,
    };
  });
}
