/**
 * Typed options of `kd collect`, their defaults and validation (pure). Runtime hooks (signal,
 * progress callback, env) are kept apart from the options recorded in the manifest.
 */
import { KdError } from '../core/errors.js';
import { type OptionsOf, type OptionsSpec, PRICE_OPTIONS, TEACHER_OPTIONS, TEACHER_TIMEOUT_SECONDS, flag } from '../core/options.js';
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
  timeoutMs: TEACHER_TIMEOUT_SECONDS * 1000,
  shardBytes: 256 * 1024 * 1024,
  dryRun: false,
  randomShare: 0.2,
  selectSeed: 0,
} satisfies Partial<CollectOptions>;

export type CollectInput = Pick<CollectOptions, 'model' | 'input' | 'out'> & Partial<Omit<CollectOptions, 'student'>> & {
  /** one checkpoint, or several for --select disagreement */
  student?: string | string[];
};

/** Every `kd collect` flag, once (src/cli/collect.ts maps seconds → ms, MiB → bytes and i/n → a shard). */
export const COLLECT_OPTIONS = {
  ...TEACHER_OPTIONS,
  model: { ...TEACHER_OPTIONS.model, describe: 'teacher model name (required; with --probe, default: the first of GET /models)' },
  input: { type: 'string', describe: 'CSV (header row) or JSONL file (required unless --probe)' },
  out: { type: 'string', describe: 'output directory, e.g. datasets/NAME/raw (required unless --probe)' },
  mode: { type: 'string', choices: ['chat', 'score'], describe: 'chat: generate with top-k log-probs; score: teacher-forced log-probs of given text', default: COLLECT_DEFAULTS.mode },
  format: { type: 'string', choices: ['csv', 'jsonl'], describe: 'input format', defaultText: 'from the extension' },
  column: { type: 'string', describe: 'CSV column / JSONL field with the prompt (chat) or text (score)', defaultText: '"prompt" in chat mode, "text" in score mode' },
  idColumn: { type: 'string', describe: 'column/field with row ids', defaultText: 'JSONL "id" if present, else the row number' },
  systemColumn: { type: 'string', describe: 'CSV column with a system prompt per row' },
  system: { type: 'string', describe: 'system prompt for rows without one' },
  topK: { type: 'number', describe: 'alternatives per position, ≤ 20 (≤ 5 for OpenAI echo scoring)', default: COLLECT_DEFAULTS.topK },
  maxTokens: { type: 'number', describe: 'chat: tokens to generate', default: COLLECT_DEFAULTS.maxTokens },
  temperature: { type: 'number', describe: 'chat sampling temperature', default: COLLECT_DEFAULTS.temperature },
  seed: { type: 'number', describe: 'chat sampling seed (best effort on the server)' },
  n: { type: 'number', describe: 'chat: choices per prompt, each billed', default: COLLECT_DEFAULTS.n },
  scoreApi: { type: 'string', choices: ['echo', 'vllm'], describe: 'score mode wire format: legacy echo+logprobs or vLLM prompt_logprobs', default: COLLECT_DEFAULTS.scoreApi },
  chatApi: { type: 'string', choices: ['chat', 'responses'], describe: 'chat mode wire format: /v1/chat/completions, or OpenAI\'s Responses API /v1/responses (no --seed, --n 1)', default: COLLECT_DEFAULTS.chatApi },
  chunkTokens: { type: 'number', describe: 'score: chunk length in approx. tokens (4 characters each)', default: COLLECT_DEFAULTS.chunkTokens },
  chunkOverlap: { type: 'number', describe: 'score: overlap between chunks in approx. tokens', default: COLLECT_DEFAULTS.chunkOverlap },
  maxPromptTokens: { type: 'number', describe: 'reject rows whose estimated prompt is longer' },
  concurrency: { type: 'number', describe: 'requests in flight', default: COLLECT_DEFAULTS.concurrency },
  retries: { type: 'number', describe: 'retries per request on 408/409/429/5xx/network/timeout', default: COLLECT_DEFAULTS.retries },
  maxFailures: { type: 'number', describe: 'stop after this many consecutive failed requests', default: COLLECT_DEFAULTS.maxFailures },
  timeout: { type: 'number', describe: 'seconds per request attempt', default: COLLECT_DEFAULTS.timeoutMs / 1000 },
  maxCost: { type: 'number', describe: 'USD budget for everything in --out; stops before it would be passed' },
  ...PRICE_OPTIONS,
  prices: { type: 'string', describe: 'JSON price file {"model": {"input": USD/1M, "output": USD/1M}}' },
  budgetTokens: { type: 'number', describe: 'teacher-token budget for everything in --out (estimated prompt + completion tokens): only the rows --select picks within it are sent' },
  select: { type: 'string', choices: SELECT_STRATEGIES, describe: 'how rows are picked under --budget-tokens / --max-cost: at random, or where --student is least sure (highest mean entropy, smallest top-2 margin), or where several --student checkpoints disagree most (mean Jensen–Shannon divergence)', defaultText: 'random with --budget-tokens' },
  student: { type: 'string', multiple: true, describe: 'student checkpoint (run directory) whose uncertainty ranks the rows for --select entropy|margin; repeat (≥ 2, one tokenizer) for --select disagreement' },
  randomShare: { type: 'number', describe: 'share of the budget picked at random for coverage with --select entropy|margin', default: COLLECT_DEFAULTS.randomShare },
  selectSeed: { type: 'number', describe: 'seed of the random picks', default: COLLECT_DEFAULTS.selectSeed },
  shardMb: { type: 'number', describe: 'roll to a new shard after this many MiB', default: COLLECT_DEFAULTS.shardBytes / (1024 * 1024) },
  shard: { type: 'string', requiresArg: true, describe: 'i/n: collect only slice i (0 ≤ i < n) of the input rows, by a hash of each row id; one --out per shard, then kd dataset merge (Kubernetes: --shard $JOB_COMPLETION_INDEX/8)' },
  probe: flag('only probe the teacher (--teacher-url, --model): does it score given text or only its own answers? 3 tiny requests, nothing collected'),
  dryRun: flag('estimate tokens and cost without calling the teacher'),
  json: flag('print one JSON summary on stdout'),
} as const satisfies OptionsSpec;

export type CollectArgs = OptionsOf<typeof COLLECT_OPTIONS>;


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
