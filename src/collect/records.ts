/**
 * From answer bytes to records on disk: decode the JSON, parse it into raw records (parse.ts), append
 * them to the raw shards (shards.ts). This is most of the CPU a collect run spends per answer, so
 * `kd collect` runs it in a worker thread (records-worker.ts), leaving the main thread to HTTP and
 * bookkeeping; {@link inThreadSink} runs the very same {@link RecordPipeline} on the calling thread.
 *
 * Either way a result comes back only once the answer's records are written (or the answer is
 * refused): what counts as done is what is on disk, exactly as before.
 */
import { Worker } from 'node:worker_threads';
import { KdError } from '../core/errors.js';
import { rawSchema, type RawRecord } from '../schema/raw.js';
import { startWorker } from '../core/tsx.js';
import type { ShardInfo } from './ledger.js';
import { decodeBody, parseChat, parseEcho, parseVllm, type ParseStats, responsesAsChat } from './parse.js';
import type { PlannedRequest, ScoreApi } from './request.js';
import { ShardWriter } from './shards.js';

export interface RecordPipelineOptions {
  /** The output directory; shards are numbered from `firstIndex`. */
  dir: string;
  firstIndex: number;
  /** Extra schema metadata of the shards (mode, model, top_k…). */
  schemaMetadata: Record<string, string>;
  maxBytes: number;
  topK: number;
  scoreApi: ScoreApi;
}

/** One answer to turn into records. */
export interface ResponseJob {
  req: PlannedRequest;
  status: number;
  body: Uint8Array;
  latencyMs: number;
  attempts: number;
  /** Unix ms when the answer arrived. */
  completedAt: number;
}

/** What the answer said it cost (null: not reported). */
export interface ResponseUsage {
  promptTokens: number | null;
  completionTokens: number | null;
  cachedTokens: number;
}

export type JobResult =
  /** The body is not JSON: a failed attempt (retried). */
  | { kind: 'bad_json'; message: string }
  /** JSON without usable log-probs: the row is rejected (the answer was billed all the same). */
  | { kind: 'rejected'; reason: string; detail: string; usage: ResponseUsage }
  /** Records written. */
  | {
    kind: 'written'; usage: ResponseUsage; records: number; stats: ParseStats;
    /** Tokens over all records (chat: generated tokens). */
    tokens: number;
    /** What the records name, for the manifest. */
    models: string[]; fingerprints: string[]; cachedTokens: number;
  };

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function usageOf(json: unknown): ResponseUsage {
  const u = json && typeof json === 'object' ? (json as { usage?: { prompt_tokens?: unknown; completion_tokens?: unknown; prompt_tokens_details?: { cached_tokens?: unknown } } }).usage : undefined;
  return { promptTokens: num(u?.prompt_tokens), completionTokens: num(u?.completion_tokens), cachedTokens: num(u?.prompt_tokens_details?.cached_tokens) ?? 0 };
}

function writtenResult(records: RawRecord[], usage: ResponseUsage, stats: ParseStats): JobResult {
  const models = new Set<string>();
  const fingerprints = new Set<string>();
  let tokens = 0;
  let cachedTokens = 0;
  for (const r of records) {
    if (r.model) models.add(r.model);
    if (r.system_fingerprint) fingerprints.add(r.system_fingerprint);
    cachedTokens += r.cached_tokens ?? 0;
    tokens += r.tokens.length;
  }
  return { kind: 'written', usage, records: records.length, stats, tokens, models: [...models], fingerprints: [...fingerprints], cachedTokens };
}

/** Decode, parse, write: the same on the main thread and in the worker. */
export class RecordPipeline {
  private readonly shards: ShardWriter;
  constructor(private readonly o: RecordPipelineOptions) {
    this.shards = new ShardWriter({ dir: o.dir, firstIndex: o.firstIndex, schema: rawSchema(o.schemaMetadata), maxBytes: o.maxBytes });
  }

  /**
   * Resolves once the records are written; rejects if writing failed. Not an async function: while
   * the batch waits to be written nothing here keeps the answer's JSON or records alive (a worker
   * behind parses hundreds of answers in one go; their objects would all outlive young-generation
   * collections).
   */
  process(job: ResponseJob): Promise<JobResult> {
    try {
      const { req } = job;
      const vllm = req.endpoint === 'completions' && this.o.scoreApi === 'vllm';
      const decoded = decodeBody(job.body, job.status, vllm);
      if (!decoded.ok) return Promise.resolve({ kind: 'bad_json', message: decoded.message });
      const json = req.endpoint === 'responses' ? responsesAsChat(decoded.json) : decoded.json;
      const ctx = { req, topK: this.o.topK, latencyMs: job.latencyMs, attempts: job.attempts, completedAt: job.completedAt };
      const parsed = req.endpoint !== 'completions' ? parseChat(json, ctx) : vllm ? parseVllm(json, ctx) : parseEcho(json, ctx);
      const usage = usageOf(json);
      if (!parsed.ok) return Promise.resolve({ kind: 'rejected', reason: parsed.reason, detail: parsed.detail, usage });
      const result = writtenResult(parsed.records, usage, parsed.stats);
      return this.shards.add(parsed.records).then(() => result);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Writes what is queued and closes the shard; the shards closed. Throws a KdError if a write failed. */
  close(): ShardInfo[] {
    this.shards.close();
    return this.shards.closed;
  }
}

/** Where a collect run sends its answers. */
export interface RecordSink {
  process(job: ResponseJob): Promise<JobResult>;
  /** After the last process() settled: flush, close, the shards closed. Throws KdError('write') if a write failed. */
  close(): Promise<ShardInfo[]>;
}

export function inThreadSink(o: RecordPipelineOptions): RecordSink {
  const pipeline = new RecordPipeline(o);
  return { process: (job) => pipeline.process(job), close: async () => pipeline.close() };
}

/** Messages between {@link workerSink} and records-worker.ts. */
export type ToWorker = { type: 'jobs'; jobs: { id: number; job: ResponseJob }[] } | { type: 'close' };
export type JobOutcome = { id: number; result: JobResult } | { id: number; failed: string };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'results'; outcomes: JobOutcome[] }
  | { type: 'closed'; shards: ShardInfo[] }
  | { type: 'close_failed'; code: string | null; message: string };

/**
 * Calls `send` with what `push` collected, once per turn of the event loop: answers that arrive
 * together cross between threads as one message.
 */
export class Batcher<T> {
  private items: T[] = [];
  constructor(private readonly send: (items: T[]) => void) {}
  push(item: T): void {
    if (this.items.length === 0) setImmediate(() => this.flush());
    this.items.push(item);
  }
  flush(): void {
    if (this.items.length === 0) return;
    const items = this.items;
    this.items = [];
    this.send(items);
  }
}

/**
 * The pipeline in a worker thread. Answer bytes are moved there (transferred, not copied). Resolves
 * once the worker is loaded (so its start-up is not spent while answers wait).
 */
export async function workerSink(o: RecordPipelineOptions): Promise<RecordSink> {
  const worker: Worker = startWorker(import.meta.url, './records-worker', o);
  const pending = new Map<number, { resolve: (r: JobResult) => void; reject: (e: Error) => void }>();
  let closing: { resolve: (s: ShardInfo[]) => void; reject: (e: Error) => void } | null = null;
  let dead: Error | null = null;
  let nextId = 0;
  let ready!: () => void;
  let notReady!: (e: Error) => void;
  const started = new Promise<void>((resolve, reject) => {
    ready = resolve;
    notReady = reject;
  });
  const die = (e: Error) => {
    dead ??= new KdError('write', `the record writer thread failed: ${e.message}`);
    notReady(dead);
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
    closing?.reject(dead);
  };
  worker.on('error', die);
  worker.on('exit', (code) => die(new Error(`it exited with code ${code}`)));
  worker.on('message', (m: FromWorker) => {
    switch (m.type) {
      case 'ready':
        return ready();
      case 'results':
        for (const r of m.outcomes) {
          const p = pending.get(r.id)!;
          pending.delete(r.id);
          if ('result' in r) p.resolve(r.result);
          else p.reject(new KdError('write', `writing a raw shard in ${o.dir} failed: ${r.failed}`));
        }
        return;
      case 'closed':
        return closing?.resolve(m.shards);
      case 'close_failed':
        return closing?.reject(m.code ? new KdError(m.code, m.message) : new Error(m.message));
    }
  });
  await started;
  const jobs = new Batcher<{ id: number; job: ResponseJob }>((batch) => {
    // A body is moved when it owns its memory; else (a view into a pool) copied.
    const transfer = batch.map((j) => j.job.body).filter((b) => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer).map((b) => b.buffer as ArrayBuffer);
    worker.postMessage({ type: 'jobs', jobs: batch } satisfies ToWorker, transfer);
  });
  return {
    process(job) {
      if (dead) return Promise.reject(dead);
      const id = nextId++;
      return new Promise<JobResult>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        jobs.push({ id, job });
      });
    },
    async close() {
      if (dead) {
        await worker.terminate();
        throw dead;
      }
      try {
        return await new Promise<ShardInfo[]>((resolve, reject) => {
          closing = { resolve, reject };
          jobs.flush();
          worker.postMessage({ type: 'close' } satisfies ToWorker);
        });
      } finally {
        worker.removeAllListeners('exit');
        await worker.terminate();
      }
    },
  };
}
