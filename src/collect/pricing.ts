/**
 * Money and tokens for `kd collect`: a per-model price table (USD per 1M tokens, from
 * the providers' published prices as copied by hand — unverified, hence overridable), token estimates
 * (js-tiktoken for OpenAI models, bytes/4 otherwise), and cost arithmetic.
 *
 * Two figures per request: the estimate (what a typical tokenizer bills: selection budgets, pacing,
 * the dry run's prompt tokens) and an upper bound (what the teacher can bill at most: --max-cost).
 * bytes/4 undercounts a byte-level teacher (one token per byte: kd serve on a byte vocabulary,
 * ByT5-style models) fourfold, so --max-cost admits a request only when the bound still fits.
 */
import { readFileSync } from 'node:fs';
import { KdError } from '../core/errors.js';
import type { ChatMessage } from './input.js';
import { CHARS_PER_TOKEN, isOpenAIModel, type PlannedRequest } from './request.js';

export interface Price {
  /** USD per 1M input tokens */
  input: number;
  /** USD per 1M output tokens */
  output: number;
  /** USD per 1M cached input tokens (defaults to input) */
  cachedInput?: number;
}

/** Longest matching prefix wins, so dated snapshots (gpt-4o-2024-08-06) find their family. */
export const DEFAULT_PRICES: Record<string, Price> = {
  'gpt-4o': { input: 2.5, cachedInput: 1.25, output: 10 },
  'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, output: 0.6 },
};

export interface PriceOverrides {
  priceIn?: number;
  priceOut?: number;
  /** JSON file: {"model": {"input": USD/1M, "output": USD/1M, "cachedInput"?: USD/1M}} */
  pricesFile?: string;
}

export interface ResolvedPrice extends Price {
  source: 'table' | 'file' | 'flags' | 'unknown';
}

function checkPrice(p: unknown, where: string): Price {
  const o = p as Record<string, unknown>;
  const ok = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (!o || typeof o !== 'object' || !ok(o.input) || !ok(o.output) || (o.cachedInput !== undefined && !ok(o.cachedInput))) {
    throw new KdError('prices', `${where}: a price must be {"input": USD per 1M, "output": USD per 1M, "cachedInput"?: USD per 1M} with numbers ≥ 0`);
  }
  return { input: o.input as number, output: o.output as number, cachedInput: o.cachedInput as number | undefined };
}

export function loadPriceFile(file: string): Record<string, Price> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new KdError('prices', `${file}: cannot read the price file (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new KdError('prices', `${file}: expected {"model": {"input", "output"}}`);
  return Object.fromEntries(Object.entries(json).map(([m, p]) => [m, checkPrice(p, `${file}: model "${m}"`)]));
}

function lookup(table: Record<string, Price>, model: string): Price | undefined {
  const keys = Object.keys(table).filter((k) => model === k || model.startsWith(`${k}-`) || model.startsWith(`${k}:`));
  keys.sort((a, b) => b.length - a.length);
  return keys.length ? table[keys[0]!] : undefined;
}

/** The price for a model: flags over the price file over the built-in table; unknown models cost 0. */
export function resolvePrice(model: string, o: PriceOverrides = {}): ResolvedPrice {
  let base: ResolvedPrice = { input: 0, output: 0, source: 'unknown' };
  const fromTable = lookup(DEFAULT_PRICES, model);
  if (fromTable) base = { ...fromTable, source: 'table' };
  if (o.pricesFile) {
    const fromFile = lookup(loadPriceFile(o.pricesFile), model);
    if (fromFile) base = { ...fromFile, source: 'file' };
  }
  if (o.priceIn !== undefined || o.priceOut !== undefined) {
    base = { input: o.priceIn ?? base.input, output: o.priceOut ?? base.output, cachedInput: o.priceIn ?? base.cachedInput, source: 'flags' };
  }
  return base;
}

/** USD for token counts at a price; cached prompt tokens are part of promptTokens. */
export function costUsd(price: Price, promptTokens: number, completionTokens: number, cachedTokens = 0): number {
  const cached = Math.min(cachedTokens, promptTokens);
  return ((promptTokens - cached) * price.input + cached * (price.cachedInput ?? price.input) + completionTokens * price.output) / 1e6;
}

export interface TokenCounter {
  /** How tokens are counted, for the summary. */
  method: string;
  count(text: string): number;
  /** The teacher's own tokenizer (tiktoken for OpenAI models): the count is what it bills. */
  exact?: boolean;
}

/** js-tiktoken's encoding for OpenAI models; null for others. */
export function tiktokenEncodingFor(model: string): 'o200k_base' | 'cl100k_base' | null {
  if (!isOpenAIModel(model)) return null;
  if (/^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o\d|ft:gpt-4o)/.test(model)) return 'o200k_base';
  return 'cl100k_base';
}

/** The approximation used when no tokenizer is known: UTF-8 bytes / 4, rounded up. */
export function approxTokens(text: string): number {
  return Math.ceil(Buffer.byteLength(text, 'utf8') / CHARS_PER_TOKEN);
}

/** A token counter for the model (loads the tiktoken ranks lazily: they are a few MB). */
export async function tokenCounter(model: string): Promise<TokenCounter> {
  const enc = tiktokenEncodingFor(model);
  if (!enc) return { method: 'approx: UTF-8 bytes / 4', count: approxTokens };
  const cached = counters.get(enc);
  if (cached) return cached;
  const { Tiktoken } = await import('js-tiktoken/lite');
  const ranks = enc === 'o200k_base' ? (await import('js-tiktoken/ranks/o200k_base')).default : (await import('js-tiktoken/ranks/cl100k_base')).default;
  const tk = new Tiktoken(ranks);
  // Special-token text in prompts is counted as plain text (allowedSpecial 'all' would treat it as one token).
  const counter: TokenCounter = { method: `tiktoken ${enc}`, count: (t) => tk.encode(t, [], []).length, exact: true };
  counters.set(enc, counter);
  return counter;
}

const counters = new Map<string, TokenCounter>();

/** Chat prompt tokens as OpenAI counts them: 3 per message + content + 3 to prime the reply. */
export function chatPromptTokens(messages: ChatMessage[], counter: TokenCounter): number {
  let n = 3;
  for (const m of messages) n += 3 + counter.count(m.content) + (m.role === 'system' || m.role === 'user' || m.role === 'assistant' ? 0 : counter.count(m.role));
  return n;
}

export interface RequestEstimate {
  promptTokens: number;
  /** Upper bound: max tokens × n for chat; 0 (echo) or 1 (vLLM) for score. */
  completionTokens: number;
  costUsd: number;
}

/**
 * Slack of the upper bound for what a teacher adds to a prompt's bytes: per chat message beyond its
 * role's and content's bytes (template markers: Llama 3's header tokens and <|eot_id|>, kd serve's
 * ": " and newline), per chat request (BOS and the assistant's header: kd serve's "assistant: " is
 * 11 bytes), and per completions prompt (BOS, a SentencePiece dummy prefix). A template with more
 * (a long default system prompt) is learned from the first answers' usage (the collector's slack).
 */
export const BOUND_TOKENS_PER_MESSAGE = 8;
export const BOUND_TOKENS_PER_CHAT = 16;
export const BOUND_TOKENS_PER_PROMPT = 2;

const bytes = (t: string) => Buffer.byteLength(t, 'utf8');

/**
 * At most what the teacher can bill for the request (for --max-cost): the estimate when the counter
 * is the teacher's own tokenizer; else every prompt byte a token (no tokenizer with byte fallback
 * spends more) plus template slack, and every completion at its max length.
 */
export function boundRequest(req: PlannedRequest, counter: TokenCounter, price: Price): RequestEstimate {
  const e = estimateRequest(req, counter, price);
  if (counter.exact) return e;
  const promptTokens = req.endpoint === 'completions'
    ? bytes(req.body.prompt as string) + BOUND_TOKENS_PER_PROMPT
    : ((req.body.messages ?? req.body.input) as ChatMessage[]).reduce((n, m) => n + bytes(m.role) + bytes(m.content) + BOUND_TOKENS_PER_MESSAGE, BOUND_TOKENS_PER_CHAT);
  return { promptTokens, completionTokens: e.completionTokens, costUsd: costUsd(price, promptTokens, e.completionTokens) };
}

export function estimateRequest(req: PlannedRequest, counter: TokenCounter, price: Price): RequestEstimate {
  const body = req.body;
  let promptTokens: number;
  let completionTokens: number;
  if (req.endpoint !== 'completions') {
    promptTokens = chatPromptTokens((body.messages ?? body.input) as ChatMessage[], counter);
    const max = (body.max_completion_tokens ?? body.max_tokens ?? body.max_output_tokens) as number;
    completionTokens = max * ((body.n as number | undefined) ?? 1);
  } else {
    promptTokens = counter.count(body.prompt as string);
    completionTokens = (body.max_tokens as number) ?? 0;
  }
  return { promptTokens, completionTokens, costUsd: costUsd(price, promptTokens, completionTokens) };
}
