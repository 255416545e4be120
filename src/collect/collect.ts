/**
 * `collect()`: the stage behind `kd collect`. Reads an input file, asks an OpenAI-compatible teacher
 * for log-probs (chat: generated tokens with top-k; score: teacher-forced top-k over given text),
 * and appends raw records to Arrow stream shards, exactly once per request across kills and restarts.
 *
 * With `shard` (`--shard i/n`) only the input rows of that slice exist for this run: others are
 * neither sent, rejected nor counted; the rest (resume, exactly-once) is per output directory as ever.
 *
 * Plan, then run: a first pass over the input checks it (structural errors before any request),
 * counts requests and what is already done; `dryRun` stops there with a token and cost estimate.
 */
import { setMaxListeners } from 'node:events';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KdError } from '../core/errors.js';
import { KD_VERSION } from '../core/version.js';
import { makeTeacherClient, SendError, type TeacherClient } from './client.js';
import { checkInputFile, readInput, type InputRow } from './input.js';
import { formatShard, inShard } from './partition.js';
import { RejectWriter, REJECTS_FILE, scanLedger, type LedgerScan, type RejectLine } from './ledger.js';
import {
  hashFile, readManifest, shapeHash, writeManifest, type CollectManifest, type CollectRunRecord,
} from './manifest.js';
import {
  RECORD_WORKER_MIN_REQUESTS, recordedOptions, requestParams, requestShape, resolveCollectOptions, safeUrl, type CollectInput, type CollectOptions, type CollectRuntime,
} from './options.js';
import { backoffMs, classifyStatus, Pacer, retryAfterMs, Semaphore, sleep } from './pacing.js';
import { boundRequest, costUsd, estimateRequest, resolvePrice, tokenCounter, type ResolvedPrice, type TokenCounter } from './pricing.js';
import type { CollectProgress } from './progress.js';
import { planRequests, rowRejectHash, type PlannedRequest, type RequestParams } from './request.js';
import { inThreadSink, workerSink, type JobResult, type RecordPipelineOptions, type RecordSink } from './records.js';

export type StopReason = 'complete' | 'budget' | 'max_failures' | 'fatal' | 'interrupted' | 'failed_requests';

export interface CollectSummary {
  out: string;
  mode: CollectOptions['mode'];
  model: string;
  dryRun: boolean;
  /** "i/n" with --shard: rows, requests and counts are those of this slice only. */
  shard: string | null;
  stopReason: StopReason;
  /** Why the run stopped early, for people. */
  stopDetail: string | null;
  rows: number;
  requestsTotal: number;
  /** Done before this run started (skipped now). */
  alreadyDone: number;
  answered: number;
  rejected: number;
  /** Requests neither answered nor rejected (a rerun does them). */
  pending: number;
  /** HTTP requests sent in this run, retries included. */
  sent: number;
  retries: number;
  failedRequests: number;
  records: number;
  tokens: { prompt: number; completion: number; method: string };
  /** USD of this run (dry run: estimate with every completion at its max length). */
  costUsd: number;
  /** USD of all records in --out (earlier runs included). */
  totalCostUsd: number;
  price: ResolvedPrice;
  estimate?: { promptTokens: number; maxCompletionTokens: number; minCostUsd: number; maxCostUsd: number };
  elapsedMs: number;
  reqPerSec: number;
  systemFingerprints: string[];
  repairs: string[];
  parseStats: { positions: number; sentinels: number; shortTopK: number; missingBytes: number };
  /** With --select / --budget-tokens: what was picked. */
  selection?: import('./select-run.js').SelectionSummary;
}

type Task =
  | { kind: 'reject'; row: InputRow; hash: string }
  | { kind: 'request'; req: PlannedRequest };

async function* tasks(o: CollectOptions, p: RequestParams, selected?: Set<string>): AsyncGenerator<Task> {
  for await (const row of readInput({ file: o.input, mode: o.mode, format: o.format, column: o.column, idColumn: o.idColumn, systemColumn: o.systemColumn, system: o.system })) {
    // Other shards' rows are still parsed (a malformed file fails the same on every shard), then skipped.
    if (!inShard(row.id, o.shard)) continue;
    // Rows --select did not pick (rejects are kept: they cost nothing and say what is wrong)
    if (selected && !row.reject && !selected.has(row.id)) continue;
    if (row.reject) yield { kind: 'reject', row, hash: rowRejectHash(row) };
    else for (const req of planRequests(row, p)) yield { kind: 'request', req };
  }
}

interface Plan {
  rows: number;
  requests: number;
  alreadyDone: number;
  promptTokens: number;
  maxCompletionTokens: number;
  minCostUsd: number;
  maxCostUsd: number;
  overContext: number;
}

/** First pass: checks the whole input (KdErrors before any request), counts and estimates. */
async function plan(o: CollectOptions, p: RequestParams, ledger: LedgerScan, counter: TokenCounter, price: ResolvedPrice, estimate: boolean, selected?: Set<string>): Promise<Plan> {
  const r: Plan = { rows: 0, requests: 0, alreadyDone: 0, promptTokens: 0, maxCompletionTokens: 0, minCostUsd: 0, maxCostUsd: 0, overContext: 0 };
  const ids = new Map<string, number>();
  if (selected) await plan(o, p, ledger, counter, price, false); // every row checked (ids unique, structure) before any selection counts
  for await (const t of tasks(o, p, selected)) {
    const row = t.kind === 'reject' ? t.row : t.req;
    if (t.kind === 'reject' || t.req.chunkIndex === 0) {
      r.rows++;
      const id = t.kind === 'reject' ? t.row.id : t.req.inputId;
      const seen = ids.get(id);
      if (seen !== undefined) throw new KdError('input-id', `${o.input}: row ${row.row}: id "${id}" repeats row ${seen}; ids must be unique (fix the id column or drop --id-column)`);
      ids.set(id, row.row);
    }
    r.requests++;
    const hash = t.kind === 'reject' ? t.hash : t.req.hash;
    if (ledger.done.has(hash)) {
      r.alreadyDone++;
      continue;
    }
    if (estimate && t.kind === 'request') {
      const e = estimateRequest(t.req, counter, price);
      if (o.maxPromptTokens !== undefined && e.promptTokens > o.maxPromptTokens) {
        r.overContext++;
        continue;
      }
      r.promptTokens += e.promptTokens;
      r.maxCompletionTokens += e.completionTokens;
      r.minCostUsd += costUsd(price, e.promptTokens, 0);
      r.maxCostUsd += boundRequest(t.req, counter, price).costUsd; // at most: the bound --max-cost admits by
    }
  }
  return r;
}

/** Runs `kd collect`. Throws KdError for bad options/inputs and for runs stopped by failures. */
export async function collect(input: CollectInput, rt: CollectRuntime = {}): Promise<CollectSummary> {
  const o = resolveCollectOptions(input);
  checkInputFile(o.input);
  if (existsSync(o.out) && !statSync(o.out).isDirectory()) throw new KdError('out-not-dir', `--out ${o.out}: exists and is not a directory (kd collect writes a directory of shards)`);
  const log = rt.log ?? (() => {});
  const t0 = performance.now();
  const p = requestParams(o);
  if (p.topK < o.topK) log(`note: --top-k ${o.topK} capped at ${p.topK} (${o.model} allows no more with --mode ${o.mode})`);
  const price = resolvePrice(o.model, { priceIn: o.priceIn, priceOut: o.priceOut, pricesFile: o.pricesFile });
  if (price.source === 'unknown') log(`note: no price known for "${o.model}": cost counts as $0 (use --price-in/--price-out or --prices)`);
  const counter = await tokenCounter(o.model);
  const out = resolve(o.out);

  // Scan (and, for a real run, repair) what earlier runs left.
  const ledger = scanLedger(out, { repair: !o.dryRun });
  for (const line of ledger.repairs) log(`repaired ${line}`);
  if (ledger.duplicates > 0) log(`warning: ${ledger.duplicates} request hash(es) appear more than once in ${out}`);
  const shape = requestShape(o);
  const shapeId = shapeHash(shape);
  const previous = readManifest(out, log);
  if (previous && previous.request_shape_hash !== shapeId && ledger.done.size > 0) {
    const changed = Object.keys(shape).filter((k) => JSON.stringify(shape[k]) !== JSON.stringify(previous.request_shape?.[k]));
    throw new KdError('resume-mismatch', `${out} holds a collection made with other request options (${changed.join(', ') || 'request shape'} differ); use a new --out, or the same options to resume`);
  }
  const shard = o.shard ? formatShard(o.shard) : null;
  const previousShard = previous?.shard ? formatShard(previous.shard) : null;
  if (previous && previousShard !== shard && ledger.done.size > 0) {
    throw new KdError('resume-mismatch', `${out} holds ${previousShard ? `shard ${previousShard}` : 'an unsharded collection'}, not ${shard ? `shard ${shard}` : 'an unsharded one'}; give each shard its own --out (e.g. datasets/NAME/raw-shard-${o.shard?.index ?? 'I'}-of-${o.shard?.count ?? 'N'})`);
  }
  const priorCost = costUsd(price, ledger.usage.promptTokens, ledger.usage.completionTokens, ledger.usage.cachedTokens);

  const selection = o.select ? await (await import('./select-run.js')).selectRows(o, p, ledger, counter, price, priorCost, out, log) : undefined;
  const planned = await plan(o, p, ledger, counter, price, o.dryRun, selection?.ids);
  const summary: CollectSummary = {
    out, mode: o.mode, model: o.model, dryRun: o.dryRun, shard, stopReason: 'complete', stopDetail: null,
    rows: planned.rows, requestsTotal: planned.requests, alreadyDone: planned.alreadyDone, answered: 0, rejected: 0,
    pending: planned.requests - planned.alreadyDone, sent: 0, retries: 0, failedRequests: 0, records: 0,
    tokens: { prompt: 0, completion: 0, method: counter.method }, costUsd: 0, totalCostUsd: priorCost, price,
    elapsedMs: 0, reqPerSec: 0, systemFingerprints: [...ledger.systemFingerprints].sort(), repairs: ledger.repairs,
    parseStats: { positions: 0, sentinels: 0, shortTopK: 0, missingBytes: 0 },
    ...(selection ? { selection: selection.summary } : {}),
  };
  if (o.dryRun) {
    summary.tokens.prompt = planned.promptTokens;
    summary.tokens.completion = planned.maxCompletionTokens;
    summary.estimate = { promptTokens: planned.promptTokens, maxCompletionTokens: planned.maxCompletionTokens, minCostUsd: planned.minCostUsd, maxCostUsd: planned.maxCostUsd };
    summary.costUsd = planned.maxCostUsd;
    summary.elapsedMs = performance.now() - t0;
    return summary;
  }

  const client = makeTeacherClient({ baseURL: o.teacherUrl, apiKeyEnv: o.apiKeyEnv, timeoutMs: o.timeoutMs, concurrency: o.concurrency, env: rt.env });
  mkdirSync(out, { recursive: true });
  const inputHash = await hashFile(o.input);
  const startedAt = new Date().toISOString();
  const run: CollectRunRecord = { started_at: startedAt, finished_at: null, stop_reason: 'running', sent: 0, retries: 0, answered: 0, rejected: 0, cost_usd: 0 };
  const manifest = (status: CollectManifest['status'], shards: CollectManifest['shards']): CollectManifest => ({
    format: 'kd-collect-manifest', version: 1, kd_version: KD_VERSION, status,
    stop_reason: status === 'running' ? null : summary.stopReason,
    created_at: previous?.created_at ?? startedAt, updated_at: new Date().toISOString(),
    input: { file: o.input, ...inputHash }, shard: o.shard ?? null, options: recordedOptions(o), request_shape: shape, request_shape_hash: shapeId,
    teacher: { base_url: safeUrl(client.baseURL), model: o.model, models_seen: [...models].sort(), system_fingerprints: [...fingerprints].sort() },
    counts: { requests_total: summary.requestsTotal, records: ledger.records + summary.records, rejects: ledger.rejects + summary.rejected, pending: summary.pending },
    tokens: { prompt: ledger.usage.promptTokens + summary.tokens.prompt, completion: ledger.usage.completionTokens + summary.tokens.completion, cached: ledger.usage.cachedTokens + cachedTokens, estimate_method: counter.method },
    price: { input: price.input, output: price.output, cached_input: price.cachedInput ?? null, source: price.source },
    cost_usd: summary.totalCostUsd, shards, runs: [...(previous?.runs ?? []), run],
  });
  const models = new Set(ledger.models);
  const fingerprints = new Set(ledger.systemFingerprints);
  let cachedTokens = 0;
  writeManifest(out, manifest('running', ledger.shards));

  const sinkOptions: RecordPipelineOptions = {
    dir: out, firstIndex: ledger.nextShardIndex, maxBytes: o.shardBytes, topK: p.topK, scoreApi: o.scoreApi,
    schemaMetadata: { 'kd.mode': o.mode, 'kd.model': o.model, 'kd.top_k': String(p.topK), 'kd.score_api': o.mode === 'score' ? o.scoreApi : '' },
  };
  let shardsWritten: CollectManifest['shards'];
  try {
    const sink = (rt.recordWorker ?? summary.pending >= RECORD_WORKER_MIN_REQUESTS) ? await workerSink(sinkOptions) : inThreadSink(sinkOptions);
    const engine = new Engine(o, rt, client, counter, price, ledger, summary, sink, out, priorCost);
    engine.onWritten = (r) => {
      for (const m of r.models) models.add(m);
      for (const f of r.fingerprints) fingerprints.add(f);
      cachedTokens += r.cachedTokens;
    };
    shardsWritten = await engine.run(tasks(o, p, selection?.ids));
  } catch (e) {
    summary.stopReason = 'fatal';
    Object.assign(run, { finished_at: new Date().toISOString(), stop_reason: 'fatal' });
    writeManifest(out, manifest('stopped', scanLedger(out, { repair: false }).shards));
    throw e;
  }

  summary.elapsedMs = performance.now() - t0;
  summary.reqPerSec = (summary.answered + summary.rejected) / Math.max(summary.elapsedMs / 1000, 1e-3);
  summary.systemFingerprints = [...fingerprints].sort();
  Object.assign(run, { finished_at: new Date().toISOString(), stop_reason: summary.stopReason, sent: summary.sent, retries: summary.retries, answered: summary.answered, rejected: summary.rejected, cost_usd: summary.costUsd });
  writeManifest(out, manifest(summary.stopReason === 'complete' ? 'complete' : 'stopped', [...ledger.shards, ...shardsWritten]));
  return summary;
}

const TASKS_PER_SLOT = 2;

/** A request's estimated prompt and total tokens (pacing, usage a teacher did not report) and its prompt bound. */
interface RequestFigures {
  prompt: number;
  tokens: number;
  boundPrompt: number;
}

/**
 * The worker pool: pacing, retries, budget, failure counting, writing. Twice `concurrency` tasks run
 * at once but only `concurrency` requests are in flight (`http`): a task whose answer is being
 * decoded and written (by the sink, off the main thread) does not hold a request slot meanwhile.
 */
class Engine {
  private readonly pacer = new Pacer();
  private readonly http: Semaphore;
  private readonly stopController = new AbortController();
  private stopping = false;
  /** A budget stop lets in-flight requests finish; the others abandon them. */
  private draining = false;
  private consecutiveFailures = 0;
  private lastFailure = '';
  /** Upper bound of the cost of the tasks under way (sent or about to be, not yet booked). */
  private inFlightCost = 0;
  /**
   * Prompt tokens the teacher billed beyond a request's bound (a chat template longer than the
   * bound's slack, seen in an answer's usage): added to every later bound.
   */
  private boundSlack = 0;
  private readonly rejects: RejectWriter;
  onWritten: (r: Extract<JobResult, { kind: 'written' }>) => void = () => {};

  constructor(
    private readonly o: CollectOptions,
    private readonly rt: CollectRuntime,
    private readonly client: TeacherClient,
    private readonly counter: TokenCounter,
    private readonly price: ResolvedPrice,
    ledger: LedgerScan,
    private readonly s: CollectSummary,
    private readonly sink: RecordSink,
    out: string,
    private readonly priorCost: number,
  ) {
    this.rejects = new RejectWriter(join(out, REJECTS_FILE));
    this.http = new Semaphore(o.concurrency);
    // Each task listens to the stop signal while it sends or waits (and stops listening after).
    setMaxListeners(TASKS_PER_SLOT * o.concurrency + 8, this.stopController.signal);
    this.done = new Set(ledger.done);
  }
  private readonly done: Set<string>;

  private progress(): CollectProgress {
    const s = this.s;
    return {
      total: s.requestsTotal, done: s.alreadyDone + s.answered + s.rejected, answered: s.answered, rejected: s.rejected,
      retries: s.retries, failures: s.failedRequests, inFlight: this.http.inUse, promptTokens: s.tokens.prompt,
      completionTokens: s.tokens.completion, costUsd: s.totalCostUsd, elapsedMs: 0,
    };
  }

  private stop(reason: StopReason, detail: string, abortInFlight: boolean): void {
    if (this.stopping) return;
    this.stopping = true;
    this.s.stopReason = reason;
    this.s.stopDetail = detail;
    if (abortInFlight) this.stopController.abort();
    else this.draining = true;
  }

  async run(source: AsyncGenerator<Task>): Promise<CollectManifest['shards']> {
    const t0 = performance.now();
    let closed: CollectManifest['shards'];
    const onAbort = () => this.stop('interrupted', 'interrupted', true);
    this.rt.signal?.addEventListener('abort', onAbort, { once: true });
    if (this.rt.signal?.aborted) onAbort();
    const timer = this.rt.onProgress ? setInterval(() => this.rt.onProgress!({ ...this.progress(), elapsedMs: performance.now() - t0 }), 200) : null;
    try {
      const worker = async () => {
        try {
          while (!this.stopping) {
            const next = await source.next();
            if (next.done) return;
            await this.handle(next.value);
          }
        } catch (e) {
          // Stop the other workers before anything is closed, then let the error surface.
          this.stop('fatal', (e as Error).message, true);
          throw e;
        }
      };
      const results = await Promise.allSettled(Array.from({ length: TASKS_PER_SLOT * this.o.concurrency }, worker));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    } finally {
      this.rt.signal?.removeEventListener('abort', onAbort);
      if (timer) clearInterval(timer);
      this.rejects.close();
      await source.return(undefined).catch(() => undefined);
      closed = await this.sink.close(); // throws a KdError if a write failed
    }
    this.rt.onProgress?.({ ...this.progress(), elapsedMs: performance.now() - t0 });
    if (!this.stopping && this.s.failedRequests > 0) {
      this.s.stopReason = 'failed_requests';
      this.s.stopDetail = `${this.s.failedRequests} request(s) failed after ${this.o.retries} retries (last: ${this.lastFailure}); run the same command again to retry them`;
    }
    this.s.pending = this.s.requestsTotal - this.s.alreadyDone - this.s.answered - this.s.rejected;
    return closed;
  }

  private reject(line: Omit<RejectLine, 'at'>): void {
    this.rejects.write({ ...line, at: new Date().toISOString() });
    this.done.add(line.request_hash);
    this.s.rejected++;
  }

  private failure(message: string): void {
    this.consecutiveFailures++;
    this.lastFailure = message;
    if (this.consecutiveFailures >= this.o.maxFailures) {
      this.stop('max_failures', `stopped after ${this.consecutiveFailures} consecutive failures (last: ${message}); run the same command again to resume`, true);
    }
  }

  private async handle(t: Task): Promise<void> {
    if (t.kind === 'reject') {
      if (this.done.has(t.hash)) return;
      this.reject({ id: t.row.id, row: t.row.row, reason: t.row.reject!.reason, detail: t.row.reject!.detail, request_hash: t.hash });
      return;
    }
    const req = t.req;
    if (this.done.has(req.hash)) return;
    const est = estimateRequest(req, this.counter, this.price);
    const rejectBase = { id: req.inputId, row: req.row, request_hash: req.hash, ...(req.chunkCount > 1 ? { chunk_index: req.chunkIndex } : {}) };
    if (this.o.maxPromptTokens !== undefined && est.promptTokens > this.o.maxPromptTokens) {
      this.reject({ ...rejectBase, reason: 'over_context', detail: `~${est.promptTokens} prompt tokens (${this.counter.method}) > --max-prompt-tokens ${this.o.maxPromptTokens}` });
      return;
    }
    // --max-cost admits a request only if what is spent, the bounds of those in flight and its own
    // bound (not the estimate: bytes/4 undercounts a byte-level teacher) stay within the cap
    const bound = boundRequest(req, this.counter, this.price);
    const boundPrompt = bound.promptTokens + this.boundSlack;
    const boundCost = costUsd(this.price, boundPrompt, bound.completionTokens);
    if (this.o.maxCost !== undefined && this.s.totalCostUsd + this.inFlightCost + boundCost > this.o.maxCost) {
      this.stop('budget', `stopped before passing --max-cost $${this.o.maxCost}: spent $${this.s.totalCostUsd.toFixed(4)}${this.inFlightCost > 0 ? `, up to $${this.inFlightCost.toFixed(4)} in flight` : ''}, the next request could cost up to $${boundCost.toFixed(4)}`, false);
      return;
    }
    this.inFlightCost += boundCost;
    try {
      await this.execute(req, { prompt: est.promptTokens, tokens: est.promptTokens + est.completionTokens, boundPrompt: bound.promptTokens }, rejectBase);
    } finally {
      this.inFlightCost -= boundCost;
    }
  }

  private async execute(req: PlannedRequest, est: RequestFigures, rejectBase: Omit<RejectLine, 'at' | 'reason' | 'detail'>): Promise<void> {
    const signal = this.stopController.signal;
    // The request slot is held through attempts and backoffs, and given up while the answer is written.
    let holding = false;
    const release = () => {
      if (holding) this.http.release();
      holding = false;
    };
    try {
      for (let attempt = 0; ; attempt++) {
        if (!holding) {
          await this.http.acquire();
          holding = true;
        }
        await this.pacer.acquire(est.tokens, signal);
        if (signal.aborted) return;
        this.s.sent++;
        let failed: SendError;
        try {
          const res = await this.client.sendRaw(req, signal);
          this.pacer.observe(res.headers);
          release();
          // Decoded, parsed and written by the sink (off the main thread); back once on disk or refused.
          const out = await this.sink.process({ req, status: res.status, body: res.body, latencyMs: res.latencyMs, attempts: attempt + 1, completedAt: Date.now() });
          if (out.kind !== 'bad_json') return this.accept(req, out, est, rejectBase);
          failed = new SendError('bad_json', out.message, res.status, res.headers);
        } catch (e) {
          if (!(e instanceof SendError)) throw e;
          if (e.kind === 'aborted') return;
          this.pacer.observe(e.headers);
          failed = e;
        }
        if (!this.retryAfter(failed, attempt, rejectBase)) return;
        const told = retryAfterMs(failed.headers);
        const wait = told ?? backoffMs(attempt, this.rt.backoffBaseMs);
        // A rate limit concerns everyone: pause all workers; other failures wait alone.
        if (failed.status === 429 || told !== null) this.pacer.pause(wait);
        else await sleep(wait, signal);
      }
    } finally {
      release();
    }
  }

  /** Books a failed attempt; true when the request is to be tried again. */
  private retryAfter(e: SendError, attempt: number, rejectBase: Omit<RejectLine, 'at' | 'reason' | 'detail'>): boolean {
    const kind = e.kind === 'http' ? classifyStatus(e.status!, e.headers, e.code) : 'retry';
    if (kind === 'fatal') {
      this.stop('fatal', `the teacher refused: ${e.message}${e.status === 401 ? ' (check the API key variable)' : e.status === 404 ? ` (is --model "${this.o.model}" served at ${this.client.baseURL}?)` : ''}`, true);
      return false;
    }
    if (kind === 'reject') {
      this.reject({ ...rejectBase, reason: `http_${e.status}`, detail: e.message });
      this.failure(e.message);
      return false;
    }
    if (attempt >= this.o.retries || this.draining) {
      this.s.failedRequests++;
      this.failure(e.message);
      return false;
    }
    this.s.retries++;
    return true;
  }

  /** Books an answer the sink has taken: written records, or a rejected row. */
  private accept(req: PlannedRequest, out: Exclude<JobResult, { kind: 'bad_json' }>, est: RequestFigures, rejectBase: Omit<RejectLine, 'at' | 'reason' | 'detail'>): void {
    // Billing happened whatever the parse says.
    if (out.usage.promptTokens !== null && out.usage.promptTokens - est.boundPrompt > this.boundSlack) this.boundSlack = out.usage.promptTokens - est.boundPrompt;
    const promptTokens = out.usage.promptTokens ?? est.prompt;
    const completionTokens = out.usage.completionTokens ?? (out.kind === 'written' && req.endpoint !== 'completions' ? out.tokens : 0);
    const cost = costUsd(this.price, promptTokens, completionTokens, out.usage.cachedTokens);
    this.s.costUsd += cost;
    this.s.totalCostUsd = this.priorCost + this.s.costUsd;
    this.s.tokens.prompt += promptTokens;
    this.s.tokens.completion += completionTokens;
    if (out.kind === 'rejected') {
      this.reject({ ...rejectBase, reason: out.reason, detail: out.detail });
      this.failure(`${out.reason}: ${out.detail}`);
      return;
    }
    this.consecutiveFailures = 0;
    const ps = this.s.parseStats;
    ps.positions += out.stats.positions;
    ps.sentinels += out.stats.sentinels;
    ps.shortTopK += out.stats.shortTopK;
    ps.missingBytes += out.stats.missingBytes;
    this.done.add(req.hash);
    this.s.answered++;
    this.s.records += out.records;
    this.onWritten(out);
  }
}
