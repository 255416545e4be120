/**
 * Request validation for /v1/completions, /v1/chat/completions and /v1/responses: pure functions from a parsed
 * JSON body to a typed request, or an ApiError (400) naming the parameter, its value and the limit.
 *
 * Known parameters with a wrong type or out of range are errors; parameters kd serve cannot honour
 * (tools, logit_bias, penalties, vLLM's prompt_logprobs, …) are errors rather than silently ignored,
 * because a client relying on them would get wrong results; unknown parameters are ignored, as
 * vendor extensions sent by generic clients should not break a request.
 */
import { ApiError, badParam } from './api-error.js';

export interface Limits {
  vocabSize: number;
  /** most alternatives per position (legacy `logprobs`, chat `top_logprobs`) */
  maxLogprobs: number;
  /** most choices per prompt */
  maxN: number;
  /** most tokens generated per choice */
  maxTokens: number;
  /** most prompts in one legacy request */
  maxPrompts: number;
}

export const DEFAULT_LIMITS: Omit<Limits, 'vocabSize'> = { maxLogprobs: 20, maxN: 128, maxTokens: 4096, maxPrompts: 64 };

export interface Sampling {
  /** tokens to generate per choice */
  maxTokens: number;
  /** 0 = greedy */
  temperature: number;
  topP: number;
  n: number;
  seed: number | null;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionRequest extends Sampling {
  /** text, or token ids */
  prompts: (string | number[])[];
  echo: boolean;
  /** alternatives per position; null = no logprobs */
  logprobs: number | null;
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest extends Sampling {
  messages: ChatMessage[];
  logprobs: boolean;
  topLogprobs: number;
}

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const show = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
};

/** Parse a request body; the top level must be an object. */
export function parseBody(text: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `We could not parse the JSON body of your request (${(e as Error).message})`, null, 'invalid_json');
  }
  if (!isObj(v)) throw new ApiError(400, 'The request body must be a JSON object', null, 'invalid_json');
  return v;
}

/** Typed readers over one body: each returns the default when the field is absent or null. */
class Fields {
  constructor(private readonly b: Json) {}
  has(k: string): boolean {
    return this.b[k] !== undefined && this.b[k] !== null;
  }
  raw(k: string): unknown {
    return this.b[k];
  }
  number(k: string, def: number, min: number, max: number): number {
    if (!this.has(k)) return def;
    const v = this.b[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw badParam(k, `${k} must be a number, got ${show(v)}`, 'invalid_type');
    if (v < min || v > max) throw badParam(k, `${k} must be between ${min} and ${max}, got ${v}`);
    return v;
  }
  int(k: string, def: number, min: number, max: number): number {
    const v = this.number(k, def, min, max);
    if (!Number.isInteger(v)) throw badParam(k, `${k} must be an integer, got ${v}`, 'invalid_type');
    return v;
  }
  bool(k: string, def: boolean): boolean {
    if (!this.has(k)) return def;
    const v = this.b[k];
    if (typeof v !== 'boolean') throw badParam(k, `${k} must be a boolean, got ${show(v)}`, 'invalid_type');
    return v;
  }
  string(k: string): string | null {
    if (!this.has(k)) return null;
    const v = this.b[k];
    if (typeof v !== 'string') throw badParam(k, `${k} must be a string, got ${show(v)}`, 'invalid_type');
    return v;
  }
}

function stops(f: Fields): string[] {
  if (!f.has('stop')) return [];
  const v = f.raw('stop');
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) throw badParam('stop', `stop must be a string or an array of strings, got ${show(v)}`, 'invalid_type');
  if (list.length > 4) throw badParam('stop', `stop takes at most 4 sequences, got ${list.length}`);
  return (list as string[]).filter((s) => s.length > 0);
}

/** Parameters kd serve cannot honour: refused unless they hold their neutral value. */
function refuseUnsupported(b: Json, names: string[]): void {
  for (const k of names) {
    const v = b[k];
    if (v === undefined || v === null) continue;
    const neutral = v === 0 || v === false || (isObj(v) && Object.keys(v).length === 0) || (Array.isArray(v) && v.length === 0)
      || (k === 'response_format' && isObj(v) && v.type === 'text') || (k === 'tool_choice' && v === 'none');
    if (!neutral) {
      const hint = k === 'prompt_logprobs' ? ' (for prompt log-probs use /v1/completions with echo: true, logprobs: k, max_tokens: 0)' : '';
      throw badParam(k, `kd serve does not support ${k}${hint}`, 'unsupported_parameter');
    }
  }
}

function sampling(f: Fields, lim: Limits, maxTokens: number): Sampling {
  f.string('model'); // any model name is accepted (one model is served); only its type is checked
  f.string('user');
  const stream = f.bool('stream', false);
  let includeUsage = false;
  if (f.has('stream_options')) {
    const so = f.raw('stream_options');
    if (!isObj(so)) throw badParam('stream_options', `stream_options must be an object, got ${show(so)}`, 'invalid_type');
    if (so.include_usage !== undefined && so.include_usage !== null && typeof so.include_usage !== 'boolean') {
      throw badParam('stream_options.include_usage', `stream_options.include_usage must be a boolean, got ${show(so.include_usage)}`, 'invalid_type');
    }
    includeUsage = so.include_usage === true;
  }
  const seed = f.has('seed') ? f.int('seed', 0, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER) : null;
  return {
    maxTokens,
    temperature: f.number('temperature', 1, 0, 2),
    topP: f.number('top_p', 1, 0, 1),
    n: f.int('n', 1, 1, lim.maxN),
    seed,
    stop: stops(f),
    stream,
    includeUsage,
  };
}

function prompts(v: unknown, lim: Limits): (string | number[])[] {
  const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((i) => typeof i === 'number');
  let list: unknown[];
  if (typeof v === 'string' || isIds(v)) list = [v];
  else if (Array.isArray(v) && v.length > 0) list = v;
  else throw badParam('prompt', `prompt must be a string, an array of strings, or token ids, got ${show(v)}`, v === undefined ? 'missing_required_parameter' : 'invalid_type');
  if (list.length > lim.maxPrompts) throw badParam('prompt', `at most ${lim.maxPrompts} prompts per request, got ${list.length}`);
  return list.map((p, i) => {
    if (typeof p === 'string') {
      if (p.length === 0) throw badParam('prompt', `prompt ${i} is empty (a kd model has no start token to condition on)`);
      return p;
    }
    if (isIds(p)) {
      const bad = p.find((id) => !Number.isInteger(id) || id < 0 || id >= lim.vocabSize);
      if (bad !== undefined) throw badParam('prompt', `prompt ${i}: token id ${bad} is outside the vocabulary (0..${lim.vocabSize - 1})`);
      return p;
    }
    throw badParam('prompt', `prompt ${i} must be a non-empty string or array of token ids, got ${show(p)}`, 'invalid_type');
  });
}

export function validateCompletion(b: Json, lim: Limits): CompletionRequest {
  const f = new Fields(b);
  refuseUnsupported(b, ['suffix', 'logit_bias', 'presence_penalty', 'frequency_penalty', 'prompt_logprobs']);
  const maxTokens = f.int('max_tokens', Math.min(16, lim.maxTokens), 0, lim.maxTokens);
  const s = sampling(f, lim, maxTokens);
  if (f.has('best_of') && f.int('best_of', 1, 1, lim.maxN) !== s.n) throw badParam('best_of', 'kd serve does not support best_of different from n', 'unsupported_parameter');
  const echo = f.bool('echo', false);
  const logprobs = f.has('logprobs') ? f.int('logprobs', 0, 0, lim.maxLogprobs) : null;
  return { ...s, prompts: prompts(b.prompt, lim), echo, logprobs };
}

function content(v: unknown, where: string, textTypes: string[] = ['text']): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    return v.map((part, j) => {
      if (isObj(part) && textTypes.includes(part.type as string) && typeof part.text === 'string') return part.text;
      throw badParam(`${where}.content[${j}]`, `${where}.content[${j}]: only text parts are supported, got ${show(part)}`, 'unsupported_parameter');
    }).join('');
  }
  throw badParam(`${where}.content`, `${where}.content must be a string or an array of text parts, got ${show(v)}`, 'invalid_type');
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant']);

function messages(v: unknown, param = 'messages', textTypes?: string[]): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw badParam(param, `${param} must be a non-empty array, got ${show(v)}`, v === undefined ? 'missing_required_parameter' : 'invalid_type');
  }
  return v.map((m, i) => {
    const where = `${param}[${i}]`;
    if (!isObj(m)) throw badParam(where, `${where} must be an object, got ${show(m)}`, 'invalid_type');
    if (param === 'input' && m.type !== undefined && m.type !== 'message') {
      throw badParam(`${where}.type`, `${where}: kd serve takes message items only, got type ${show(m.type)}`, 'unsupported_parameter');
    }
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) {
      throw badParam(`${where}.role`, `${where}.role must be one of ${[...ROLES].join(', ')}, got ${show(m.role)}`);
    }
    return { role: m.role as ChatMessage['role'], content: content(m.content, where, textTypes) };
  });
}

export function validateChat(b: Json, lim: Limits): ChatRequest {
  const f = new Fields(b);
  refuseUnsupported(b, ['tools', 'functions', 'tool_choice', 'function_call', 'response_format', 'logit_bias', 'presence_penalty',
    'frequency_penalty', 'prompt_logprobs', 'audio', 'prediction']);
  // max_completion_tokens is OpenAI's current name; max_tokens the deprecated one older servers know.
  const def = Math.min(256, lim.maxTokens);
  const maxTokens = f.has('max_completion_tokens')
    ? f.int('max_completion_tokens', def, 1, lim.maxTokens)
    : f.int('max_tokens', def, 1, lim.maxTokens);
  const s = sampling(f, lim, maxTokens);
  const logprobs = f.bool('logprobs', false);
  const topLogprobs = f.int('top_logprobs', 0, 0, lim.maxLogprobs);
  if (f.has('top_logprobs') && !logprobs) throw badParam('top_logprobs', 'top_logprobs needs logprobs: true');
  return { ...s, messages: messages(b.messages), logprobs, topLogprobs };
}

export interface ResponsesRequest {
  /** instructions (as a system message) and the input, as chat messages */
  messages: ChatMessage[];
  maxTokens: number;
  temperature: number;
  topP: number;
  /** include: ["message.output_text.logprobs"] */
  logprobs: boolean;
  topLogprobs: number;
  stream: boolean;
  instructions: string | null;
}

export const OUTPUT_TEXT_LOGPROBS = 'message.output_text.logprobs';

/** POST /v1/responses: text input (a string, or message items with text parts), text output. */
export function validateResponses(b: Json, lim: Limits): ResponsesRequest {
  const f = new Fields(b);
  refuseUnsupported(b, ['tools', 'tool_choice', 'previous_response_id', 'conversation', 'reasoning', 'prompt', 'background', 'max_tool_calls']);
  f.string('model');
  f.string('user');
  const instructions = f.string('instructions');
  const maxTokens = f.int('max_output_tokens', Math.min(256, lim.maxTokens), 1, lim.maxTokens);
  const include = f.has('include') ? f.raw('include') : [];
  if (!Array.isArray(include) || !include.every((x) => typeof x === 'string')) throw badParam('include', `include must be an array of strings, got ${show(include)}`, 'invalid_type');
  const other = (include as string[]).find((x) => x !== OUTPUT_TEXT_LOGPROBS);
  if (other !== undefined) throw badParam('include', `kd serve can include "${OUTPUT_TEXT_LOGPROBS}" only, got ${show(other)}`, 'unsupported_parameter');
  const text = f.raw('text');
  if (text !== undefined && text !== null) {
    const format = isObj(text) ? text.format : undefined;
    if (!isObj(text) || (format !== undefined && !(isObj(format) && format.type === 'text'))) {
      throw badParam('text.format', `kd serve answers plain text only (text: {format: {type: "text"}}), got ${show(text)}`, 'unsupported_parameter');
    }
  }
  const input = f.raw('input');
  if (typeof input === 'string' && input.length === 0) throw badParam('input', 'input is empty', 'invalid_value');
  const items = typeof input === 'string' ? [{ role: 'user' as const, content: input }] : messages(input, 'input', ['input_text', 'output_text', 'text']);
  return {
    messages: [...(instructions ? [{ role: 'system' as const, content: instructions }] : []), ...items],
    maxTokens,
    temperature: f.number('temperature', 1, 0, 2),
    topP: f.number('top_p', 1, 0, 1),
    logprobs: include.length > 0,
    topLogprobs: f.int('top_logprobs', 0, 0, lim.maxLogprobs),
    stream: f.bool('stream', false),
    instructions,
  };
}
