/**
 * Typed options of `kd collect`, their defaults and validation (pure). Runtime hooks (signal,
 * progress callback, env) are kept apart from the options recorded in the manifest.
 */
import { KdError } from '../core/errors.js';
import type { CollectMode, InputOptions } from './input.js';
import { checkShardSpec, type ShardSpec } from './partition.js';
import { SELECT_STRATEGIES } from './select.js';
import { type ChatApi, effectiveTopK, isOpenAIModel, type RequestParams, type ScoreApi } from './request.js';

/** What to read (InputOptions without the file, which is `input` here) and how to ask. */
export interface CollectOptions extends Omit<InputOptions, 'file'> {
  /** Base URL of the OpenAI-compatible teacher (…/v1); else OPENAI_BASE_URL, else OpenAI. */
  teacherUrl?: string;
  model: string;
  input: string;
  out: string;
  /** Name of the environment variable holding the key (default OPENAI_API_KEY). */
  apiKeyEnv?: string;
  topK: number;
  maxTokens: number;
  temperature: number;
  seed?: number;
  n: number;
  scoreApi: ScoreApi;
  /** chat mode: /v1/chat/completions, or the Responses API */
  chatApi: ChatApi;
  chunkTokens: number;
  chunkOverlap: number;
  maxPromptTokens?: number;
  concurrency: number;
  retries: number;
  maxFailures: number;
  timeoutMs: number;
  maxCost?: number;
  priceIn?: number;
  priceOut?: number;
  pricesFile?: string;
  shardBytes: number;
  /** Collect only this slice of the input rows (fan-out over machines); absent: every row. */
  shard?: ShardSpec;
  dryRun: boolean;
  /** Active selection under a budget (select.ts): which rows to send. Absent: every row. */
  select?: import('./select.js').SelectStrategy;
  /** Teacher tokens (estimated prompt + completion) for everything in --out. */
  budgetTokens?: number;
  /** Student checkpoint(s) whose uncertainty ranks the rows: one (entropy, margin), ≥ 2 (disagreement). */
  student?: string[];
  /** Share of the budget picked at random (default 0.2). */
  randomShare: number;
  /** Seed of the random share (default 0). */
  selectSeed: number;
}

export interface CollectRuntime {
  /** Aborting stops the run cleanly (in-flight requests are abandoned and redone next time). */
  signal?: AbortSignal;
  onProgress?: (p: import('./progress.js').CollectProgress) => void;
  /** Informational lines (repairs, notes), e.g. to stderr. */
  log?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Base of the exponential backoff in ms (tests shorten it). */
  backoffBaseMs?: number;
  /**
   * Decode, parse and write answers in a worker thread (true) or on the calling thread (false).
   * Default: a worker when at least {@link RECORD_WORKER_MIN_REQUESTS} requests are to be sent.
   */
  recordWorker?: boolean;
}

/** Below this many requests a run writes on its own thread (a worker's start-up would not pay off). */
export const RECORD_WORKER_MIN_REQUESTS = 100;

export const COLLECT_DEFAULTS = {
  mode: 'chat' as CollectMode,
  topK: 20,
  maxTokens: 256,
  temperature: 1,
  n: 1,
  scoreApi: 'echo' as ScoreApi,
  chatApi: 'chat' as ChatApi,
  chunkTokens: 2048,
  chunkOverlap: 256,
  concurrency: 8,
  retries: 6,
  maxFailures: 10,
  timeoutMs: 120_000,
  shardBytes: 256 * 1024 * 1024,
  dryRun: false,
  randomShare: 0.2,
  selectSeed: 0,
} satisfies Partial<CollectOptions>;

export type CollectInput = Pick<CollectOptions, 'model' | 'input' | 'out'> & Partial<Omit<CollectOptions, 'student'>> & {
  /** one checkpoint, or several for --select disagreement */
  student?: string | string[];
};

/** Defaults filled in and every value checked; a bad one is a KdError naming its flag. */
export function resolveCollectOptions(o: CollectInput): CollectOptions {
  const r: CollectOptions = { ...COLLECT_DEFAULTS, ...stripUndefined(o) } as CollectOptions;
  if (typeof o.student === 'string') r.student = [o.student];
  const bad = (flag: string, v: unknown, want: string) => new KdError('bad-option', `--${flag}: ${JSON.stringify(v)} is not valid; want ${want}`);
  const int = (flag: string, v: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (v !== undefined && (!Number.isInteger(v) || v < min || v > max)) throw bad(flag, v, `an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? '∞' : max}`);
  };
  const num = (flag: string, v: number | undefined, min: number, max = Infinity) => {
    if (v !== undefined && (!Number.isFinite(v) || v < min || v > max)) throw bad(flag, v, `a number in ${min}..${max}`);
  };
  if (!r.model) throw new KdError('bad-option', '--model: give the teacher model name');
  if (!r.input) throw new KdError('bad-option', '--input: give a CSV or JSONL file');
  if (!r.out) throw new KdError('bad-option', '--out: give the output directory (e.g. datasets/NAME/raw)');
  if (r.mode !== 'chat' && r.mode !== 'score') throw bad('mode', r.mode, 'chat or score');
  if (r.scoreApi !== 'echo' && r.scoreApi !== 'vllm') throw bad('score-api', r.scoreApi, 'echo or vllm');
  if (r.chatApi !== 'chat' && r.chatApi !== 'responses') throw bad('chat-api', r.chatApi, 'chat or responses');
  if (r.chatApi === 'responses') {
    if (r.mode !== 'chat') throw new KdError('bad-option', '--chat-api responses: the Responses API generates; it is for --mode chat (score mode uses --score-api)');
    if (r.n !== 1) throw new KdError('bad-option', '--chat-api responses: the Responses API answers one choice per request; leave --n at 1');
    if (r.seed !== undefined) throw new KdError('bad-option', '--chat-api responses: the Responses API takes no seed; leave --seed out');
  }
  int('top-k', r.topK, 1, 20); // 0 would collect no alternatives: a dataset with no soft labels
  int('max-tokens', r.maxTokens, 1);
  num('temperature', r.temperature, 0, 2);
  int('seed', r.seed, -(2 ** 53), 2 ** 53);
  int('n', r.n, 1, 128);
  int('chunk-tokens', r.chunkTokens, 16);
  int('chunk-overlap', r.chunkOverlap, 0);
  if (r.chunkOverlap * 2 > r.chunkTokens) throw bad('chunk-overlap', r.chunkOverlap, `at most half of --chunk-tokens (${r.chunkTokens})`);
  int('max-prompt-tokens', r.maxPromptTokens, 1);
  int('concurrency', r.concurrency, 1, 1024);
  int('retries', r.retries, 0, 100);
  int('max-failures', r.maxFailures, 1);
  num('timeout', r.timeoutMs, 1);
  num('max-cost', r.maxCost, 0);
  num('price-in', r.priceIn, 0);
  num('price-out', r.priceOut, 0);
  int('shard-bytes', r.shardBytes, 1024);
  if (r.shard !== undefined) r.shard = checkShardSpec(r.shard);
  int('budget-tokens', r.budgetTokens, 1);
  num('random-share', r.randomShare, 0, 1);
  int('select-seed', r.selectSeed, 0, 2 ** 32 - 1);
  if (r.select === undefined && r.budgetTokens !== undefined) r.select = 'random';
  if (r.select !== undefined) {
    if (!SELECT_STRATEGIES.includes(r.select)) throw bad('select', r.select, 'random, entropy, margin or disagreement');
    if (r.budgetTokens === undefined && r.maxCost === undefined) throw new KdError('bad-option', `--select ${r.select}: give a budget to select within (--budget-tokens N and/or --max-cost USD)`);
    const n = r.student?.length ?? 0;
    if (r.select === 'disagreement' && n < 2) throw new KdError('bad-option', `--select disagreement: give at least two checkpoints to compare (--student A --student B), got ${n}`);
    if ((r.select === 'entropy' || r.select === 'margin') && n > 1) throw new KdError('bad-option', `--select ${r.select}: give one --student (got ${n}); several are compared by --select disagreement`);
  } else if (r.student !== undefined) throw new KdError('bad-option', '--student: only used by --select entropy|margin|disagreement');
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function requestParams(o: CollectOptions): RequestParams {
  return {
    mode: o.mode,
    model: o.model,
    topK: effectiveTopK(o.topK, o.mode, o.scoreApi, o.model),
    maxTokens: o.maxTokens,
    temperature: o.temperature,
    seed: o.seed,
    n: o.n,
    scoreApi: o.scoreApi,
    chatApi: o.chatApi,
    maxTokensField: isOpenAIModel(o.model) ? 'max_completion_tokens' : 'max_tokens',
    chunkTokens: o.chunkTokens,
    chunkOverlap: o.chunkOverlap,
  };
}

/** The options that shape requests: a resumed run must use the same ones (else hashes differ). */
export function requestShape(o: CollectOptions): Record<string, unknown> {
  const { mode, model, topK, maxTokens, temperature, seed, n, maxTokensField, scoreApi, chatApi, chunkTokens, chunkOverlap } = requestParams(o);
  // Only what reaches the wire in this mode: --temperature does not matter to a score run.
  const p = mode === 'chat'
    ? { mode, model, topK, maxTokens, temperature, seed: seed ?? null, n, maxTokensField, ...(chatApi === 'responses' ? { chatApi } : {}) }
    : { mode, model, topK, scoreApi, chunkTokens, chunkOverlap };
  return {
    ...p,
    column: o.column ?? null,
    idColumn: o.idColumn ?? null,
    systemColumn: o.systemColumn ?? null,
    system: o.system ?? null,
  };
}

/** Options as recorded in the manifest: no secrets (the key's variable name only). */
export function recordedOptions(o: CollectOptions): Record<string, unknown> {
  return { ...o, teacherUrl: o.teacherUrl === undefined ? undefined : safeUrl(o.teacherUrl) };
}

/** A URL without user info or query (either could hold a credential). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}
