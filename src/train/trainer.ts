/**
 * The training loop: AdamW, global-norm clipping, warm-up + cosine LR, gradient accumulation,
 * periodic validation, atomic checkpoints holding weights, optimizer state, step, data cursor and
 * RNG state, and exact resume (N straight steps = N/2 + resume + N/2, bit for bit).
 */
import fs from 'node:fs';
import path from 'node:path';
import { KdError } from '../core/errors.js';
import { Rng, type RngState } from '../core/rng.js';
import { type ModelConfig, flopsPerToken } from '../model/config.js';
import type { Model } from '../model/gpt.js';
import { CHECKPOINT_FILE, loadCheckpoint, saveCheckpoint } from '../schema/checkpoint.js';
import { removeLeftoverTemps, writeFileAtomic } from '../core/atomic.js';
import type { Batch, BatchSourceFactory, Cursor } from '../data/batch.js';
import type { TrainConfig } from './config.js';
import { learningRate } from './optimizer.js';
import { LocalStepper, type Stepper, type WeightMasks } from './step.js';

export interface TrainOptions {
  model: ModelConfig;
  config: TrainConfig;
  data: BatchSourceFactory;
  val?: BatchSourceFactory;
  /** run directory: checkpoint.kdc, train-log.jsonl */
  outDir: string;
  /** continue from outDir's checkpoint */
  resume?: boolean;
  /** that checkpoint, when the caller has already read it (kd train does, for its config): not read twice */
  resumeCheckpoint?: ReturnType<typeof loadCheckpoint>;
  /** start from these weights instead of a fresh initialisation (fine-tuning) */
  initFrom?: Model;
  tokenizer?: unknown;
  meta?: Record<string, unknown>;
  /** called after every optimizer step */
  onStep?: (p: StepProgress) => void;
  /** called every logEvery steps and after each validation */
  onLog?: (r: LogRecord) => void;
  /** stop early (e.g. SIGINT): a checkpoint is written first */
  signal?: AbortSignal;
  /** keep the trained model (the caller disposes it) instead of disposing it */
  keepModel?: boolean;
  /**
   * Data-parallel worker threads, each with its own backend and a replica of the model; they split
   * every batch and average gradients before one identical optimizer step. 1 = in process.
   */
  workers?: number;
  /** backend for the workers (the in-process one is whatever is initialised) */
  backend?: string;
  /**
   * Fixed 0/1 masks by weight name (kd prune): weights ← weights ⊙ mask at the start and after every
   * optimizer update, in process and in every worker, so pruned entries stay exactly 0.
   */
  masks?: WeightMasks;
}

export interface StepProgress {
  step: number;
  steps: number;
  loss: number;
  tokensPerSec: number;
  etaSec: number;
}

export interface LogRecord {
  step: number;
  lr: number;
  loss: number;
  kd: number | null;
  ce: number | null;
  gradNorm: number;
  tokens: number;
  tokensPerSec: number;
  elapsedSec: number;
  valLoss?: number;
  valKd?: number | null;
}

export interface TrainSummary {
  steps: number;
  startStep: number;
  tokens: number;
  seconds: number;
  tokensPerSec: number;
  msPerStep: number;
  /** model FLOPs per second (3 × forward) */
  flops: number;
  loss: number;
  valLoss?: number;
  params: number;
  workers: number;
  checkpoint: string;
  model?: Model;
}

interface TrainState {
  step: number;
  cursor: Cursor;
  rng: RngState;
  tokens: number;
  elapsedSec: number;
}

/** Fields that may change on resume: they do not touch the arithmetic of a step. */
const CADENCE = new Set(['steps', 'logEvery', 'evalEvery', 'evalBatches', 'checkpointEvery']);

const nz = (x: number) => (Number.isFinite(x) ? x : null);

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Load and check a checkpoint to resume from; null when starting fresh. */
function resumePoint(o: TrainOptions, file: string) {
  if (!o.resume || !fs.existsSync(file)) {
    if (o.resume === undefined && fs.existsSync(file)) {
      throw new KdError('would-overwrite', `${file} exists: pass --resume to continue it, or choose another --out`);
    }
    return null;
  }
  const ck = o.resumeCheckpoint && path.resolve(o.resumeCheckpoint.file) === path.resolve(file) ? o.resumeCheckpoint : loadCheckpoint(file);
  if (!sameJson(ck.header.model, o.model)) {
    throw new KdError('resume-mismatch', `${file}: model config differs from this run's (checkpoint ${JSON.stringify(ck.header.model)})`);
  }
  // same vocabulary size is not enough: ids must mean the same byte strings
  const vocab = (t: unknown) => (t && typeof t === 'object' ? (t as { tokens?: unknown }).tokens : undefined);
  if (o.tokenizer !== undefined && ck.header.tokenizer !== undefined && !sameJson(vocab(ck.header.tokenizer), vocab(o.tokenizer))) {
    throw new KdError('resume-mismatch', `${file}: trained with another tokenizer than this run's data; rebuild the data with the checkpoint's tokenizer or start a new run`);
  }
  if (!ck.header.state || !ck.header.train) throw new KdError('resume-mismatch', `${file}: has no training state to resume (was it exported or compressed?)`);
  const saved = ck.header.train as Record<string, unknown>;
  const changed = Object.keys(o.config).filter((k) => !CADENCE.has(k) && !sameJson(saved[k], (o.config as unknown as Record<string, unknown>)[k]));
  if (changed.length) {
    throw new KdError('resume-mismatch', `${file}: training config differs from this run's in ${changed.join(', ')}; on resume only steps and the log/eval/checkpoint cadence may change`);
  }
  const state = ck.header.state as unknown as TrainState & { optimizerT?: number };
  return { arrays: ck.arrays, file, state, optimizerT: Number(state.optimizerT ?? state.step) };
}

/** Keep the log lines up to `step` (the checkpoint resumed from). */
function trimLog(logFile: string, step: number): void {
  if (!fs.existsSync(logFile)) return;
  const lines = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const kept = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { step?: number }).step! <= step;
    } catch {
      return false; // a line cut off by the kill
    }
  });
  if (kept.length !== lines.length) writeFileAtomic(logFile, kept.map((l) => l + '\n').join(''));
}

async function makeStepper(o: TrainOptions, from: ReturnType<typeof resumePoint>): Promise<Stepper> {
  const workers = o.workers ?? 1;
  if (workers <= 1) return LocalStepper.create(o.model, o.config, from ?? undefined, o.initFrom, o.masks);
  const { ParallelStepper } = await import('./parallel.js');
  return ParallelStepper.create({ model: o.model, config: o.config, workers, backend: o.backend, from: from ?? undefined, initFrom: o.initFrom, masks: o.masks });
}

export async function train(o: TrainOptions): Promise<TrainSummary> {
  const c = o.config;
  const file = path.join(o.outDir, CHECKPOINT_FILE);
  const logFile = path.join(o.outDir, 'train-log.jsonl');
  const from = resumePoint(o, file);
  const state: TrainState = from?.state ?? { step: 0, cursor: undefined, rng: new Rng(c.seed).state(), tokens: 0, elapsedSec: 0 };
  if (!from) {
    fs.mkdirSync(o.outDir, { recursive: true });
    if (fs.existsSync(logFile)) fs.rmSync(logFile);
  } else trimLog(logFile, state.step); // a killed run logged steps past its last checkpoint: they are redone
  removeLeftoverTemps(file); // a checkpoint being written when the run was killed
  // the data first: opening it reads (and checks) a shard, and a bad one must fail before worker
  // threads start — they would keep the process alive after the error (nothing releases them yet)
  const source = o.data.open(state.cursor);
  const stepper = await makeStepper(o, from);
  const rng = Rng.from(state.rng);
  const startStep = state.step;
  const fpt = flopsPerToken(o.model, c.seqLen);
  const valBatches = (): Batch[] => {
    const src = o.val!.open();
    return Array.from({ length: c.evalBatches }, () => src.next());
  };

  const save = async () => {
    const { arrays, optimizerT } = await stepper.state();
    const { optimizerT: _old, ...plain } = state as TrainState & { optimizerT?: number };
    saveCheckpoint(file, {
      model: o.model as unknown as Record<string, unknown>, train: c as unknown as Record<string, unknown>,
      state: { ...plain, cursor: source.cursor(), rng: rng.state(), optimizerT } as unknown as Record<string, unknown>,
      tokenizer: o.tokenizer, meta: { ...o.meta, data: o.data.describe() }, arrays,
    });
  };
  const log = (r: LogRecord) => {
    fs.appendFileSync(logFile, JSON.stringify(r) + '\n');
    o.onLog?.(r);
  };

  const t0 = performance.now();
  const elapsed0 = state.elapsedSec;
  let windowLoss = 0, windowKd = 0, windowCe = 0, windowN = 0, windowTokens = 0, windowStart = performance.now();
  let lastLoss = NaN;
  let lastVal: number | undefined;
  let stepsDone = 0;
  let tokensThisRun = 0;
  let kept: Model | undefined;
  try {
    while (state.step < c.steps) {
      await new Promise<void>((r) => setImmediate(r)); // a turn of the event loop, so SIGINT/SIGTERM handlers run: a step on cpu awaits only microtasks
      if (o.signal?.aborted) break;
      const lr = learningRate(state.step, c);
      const micro: Batch[] = [];
      for (let i = 0; i < c.accumSteps; i++) micro.push(source.next());
      const r = await stepper.step(micro, lr);
      if (!Number.isFinite(r.loss)) throw new KdError('diverged', `training diverged at step ${state.step + 1}: loss is ${r.loss} (try a lower lr or temperature)`);
      const tokens = micro.reduce((s, b) => s + b.B * b.T, 0);
      state.step++;
      stepsDone++;
      tokensThisRun += tokens;
      state.tokens += tokens;
      state.elapsedSec = elapsed0 + (performance.now() - t0) / 1000;
      lastLoss = r.loss;
      windowLoss += r.loss; windowKd += r.kd; windowCe += r.ce; windowN++; windowTokens += tokens;
      const runSec = (performance.now() - t0) / 1000;
      o.onStep?.({ step: state.step, steps: c.steps, loss: r.loss, tokensPerSec: tokensThisRun / Math.max(runSec, 1e-9), etaSec: ((c.steps - state.step) * runSec) / stepsDone });
      const isLast = state.step === c.steps;
      let val: { loss: number; kd: number } | undefined;
      if (o.val && c.evalEvery > 0 && (state.step % c.evalEvery === 0 || isLast)) {
        val = await stepper.evaluate(valBatches());
        lastVal = val.loss;
      }
      if (state.step % c.logEvery === 0 || isLast || val) {
        const wsec = (performance.now() - windowStart) / 1000;
        log({
          step: state.step, lr, loss: windowLoss / windowN, kd: nz(windowKd / windowN), ce: nz(windowCe / windowN), gradNorm: r.gradNorm,
          tokens: state.tokens, tokensPerSec: windowTokens / Math.max(wsec, 1e-9), elapsedSec: state.elapsedSec,
          ...(val ? { valLoss: val.loss, valKd: nz(val.kd) } : {}),
        });
        windowLoss = windowKd = windowCe = windowN = windowTokens = 0;
        windowStart = performance.now();
      }
      if (c.checkpointEvery > 0 && state.step % c.checkpointEvery === 0 && !isLast) await save();
    }
    await save();
  } finally {
    kept = await stepper.release(Boolean(o.keepModel));
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    steps: state.step, startStep, tokens: state.tokens, seconds,
    tokensPerSec: tokensThisRun / Math.max(seconds, 1e-9), msPerStep: (seconds * 1000) / Math.max(stepsDone, 1),
    flops: (3 * fpt * tokensThisRun) / Math.max(seconds, 1e-9),
    loss: lastLoss, ...(lastVal !== undefined ? { valLoss: lastVal } : {}), params: stepper.params, workers: Math.max(1, o.workers ?? 1),
    checkpoint: file, ...(kept ? { model: kept } : {}),
  };
}
