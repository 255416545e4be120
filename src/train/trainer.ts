/**
 * The training loop: AdamW, global-norm clipping, warm-up + cosine LR, gradient accumulation,
 * periodic validation, atomic checkpoints holding weights, optimizer state, step, data cursor and
 * RNG state, and exact resume (N straight steps = N/2 + resume + N/2, bit for bit).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { KdError } from '../errors.js';
import { Rng, type RngState } from '../rng.js';
import { type ModelConfig, flopsPerToken } from '../model/config.js';
import { type Model, countParams, disposeModel, forwardHidden, initModel } from '../model/gpt.js';
import { CHECKPOINT_FILE, type NamedArray, loadCheckpoint, saveCheckpoint } from '../schema/checkpoint.js';
import { type Batch, type BatchSourceFactory, type Cursor, batchLabels } from './batch.js';
import type { TrainConfig } from './config.js';
import { type KdLossValue, evalKdLoss, headKdLoss } from './losses.js';
import { lossWeights } from './kd-kernel.js';
import { type AdamWState, adamWStep, clipGlobalNorm, disposeAdamW, initAdamW, learningRate } from './optimizer.js';

export interface TrainOptions {
  model: ModelConfig;
  config: TrainConfig;
  data: BatchSourceFactory;
  val?: BatchSourceFactory;
  /** run directory: checkpoint.kdc, train-log.jsonl */
  outDir: string;
  /** continue from outDir's checkpoint */
  resume?: boolean;
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

/** One optimizer step over `micro` batches. Returns the mean loss parts and the gradient norm. */
export function trainStep(model: Model, opt: AdamWState, micro: Batch[], c: TrainConfig, lr: number): { loss: number; kd: number; ce: number; gradNorm: number } {
  const vars = [...model.params.values()];
  const nameOf = new Map(vars.map((v, i) => [v.name, [...model.params.keys()][i]]));
  const acc = new Map<string, tf.Tensor>();
  // The step's loss is the mean over all its labelled positions, whichever micro-batch holds them:
  // every call gets the step's totals as denominators, so losses and gradients just add up.
  const counts = stepCounts(micro, c);
  let loss = 0, kdSum = 0, ceSum = 0;
  for (const b of micro) {
    let stats!: KdLossValue;
    const { value, grads } = tf.variableGrads(() => {
      const ids = tf.tensor2d(b.inputIds, [b.B, b.T], 'int32');
      const h = forwardHidden(model, ids);
      return headKdLoss(h, model.params.get('wte') as unknown as tf.Tensor2D, { ...batchLabels(b), counts }, c.loss, (v) => { stats = v; });
    }, vars);
    value.dispose();
    loss += stats.loss;
    kdSum += stats.kdSum;
    ceSum += stats.ceSum;
    for (const [vn, g] of Object.entries(grads)) {
      const name = nameOf.get(vn)!;
      const prev = acc.get(name);
      acc.set(name, prev ? tf.add(prev, g) : g);
      if (prev) { prev.dispose(); g.dispose(); }
    }
  }
  const gradNorm = clipGlobalNorm(acc, c.gradClip);
  adamWStep(model.params, acc, opt, c, lr);
  return { loss, kd: kdSum / counts.labelled, ce: ceSum / counts.targeted, gradNorm };
}

/** Labelled and targeted positions over all micro-batches of a step. */
export function stepCounts(micro: Batch[], c: TrainConfig): { labelled: number; targeted: number } {
  let labelled = 0, targeted = 0;
  for (const b of micro) {
    const w = lossWeights(batchLabels(b), c.loss);
    labelled += w.labelled;
    targeted += w.targeted;
  }
  return { labelled, targeted };
}

/** Mean loss over the first `batches` batches of a validation source. */
export function evaluate(model: Model, val: BatchSourceFactory, c: TrainConfig, batches: number): { loss: number; kd: number } {
  const src = val.open();
  let loss = 0, kd = 0, kdN = 0;
  for (let i = 0; i < batches; i++) {
    const b = src.next();
    let v!: KdLossValue;
    tf.tidy(() => {
      const h = forwardHidden(model, tf.tensor2d(b.inputIds, [b.B, b.T], 'int32'));
      v = evalKdLoss(h, model.params.get('wte') as unknown as tf.Tensor2D, batchLabels(b), c.loss);
    });
    loss += v.loss / batches;
    if (Number.isFinite(v.kd)) { kd += v.kd; kdN++; }
  }
  return { loss, kd: kdN ? kd / kdN : NaN };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function checkpointArrays(model: Model, opt?: AdamWState): NamedArray[] {
  const out: NamedArray[] = [];
  const add = (prefix: string, m: Map<string, tf.Variable>) => {
    for (const [name, v] of m) out.push({ name: prefix + name, dtype: 'float32', shape: v.shape, data: v.dataSync() as Float32Array });
  };
  add('', model.params);
  if (opt) { add('adam.m/', opt.m); add('adam.v/', opt.v); }
  return out;
}

export async function train(o: TrainOptions): Promise<TrainSummary> {
  const c = o.config;
  const file = path.join(o.outDir, CHECKPOINT_FILE);
  const logFile = path.join(o.outDir, 'train-log.jsonl');
  let model: Model;
  let opt: AdamWState;
  let state: TrainState;
  if (o.resume && fs.existsSync(file)) {
    const ck = loadCheckpoint(file);
    if (!sameJson(ck.header.model, o.model)) {
      throw new KdError('resume-mismatch', `${file}: model config differs from this run's (checkpoint ${JSON.stringify(ck.header.model)})`);
    }
    if (!ck.header.state || !ck.header.train) throw new KdError('resume-mismatch', `${file}: has no training state to resume (was it exported or compressed?)`);
    const changed = Object.keys(c).filter((k) => !CADENCE.has(k) && !sameJson((ck.header.train as Record<string, unknown>)[k], (c as unknown as Record<string, unknown>)[k]));
    if (changed.length) {
      throw new KdError('resume-mismatch', `${file}: training config differs from this run's in ${changed.join(', ')}; on resume only steps and the log/eval/checkpoint cadence may change`);
    }
    ({ model, opt } = restore(o.model, ck.arrays, file));
    state = ck.header.state as unknown as TrainState;
    opt.t = Number((ck.header.state as Record<string, unknown>).optimizerT ?? state.step);
  } else {
    if (o.resume === undefined && fs.existsSync(file)) {
      throw new KdError('would-overwrite', `${file} exists: pass --resume to continue it, or choose another --out`);
    }
    model = o.initFrom ?? initModel(o.model, c.seed);
    opt = initAdamW(model.params);
    state = { step: 0, cursor: undefined, rng: new Rng(c.seed).state(), tokens: 0, elapsedSec: 0 };
    fs.mkdirSync(o.outDir, { recursive: true });
    if (fs.existsSync(logFile)) fs.rmSync(logFile);
  }
  const rng = Rng.from(state.rng);
  const startStep = state.step;
  const source = o.data.open(state.cursor);
  const params = countParams(model);
  const fpt = flopsPerToken(o.model, c.seqLen);

  const save = () => {
    state.cursor = source.cursor();
    state.rng = rng.state();
    saveCheckpoint(file, {
      model: o.model as unknown as Record<string, unknown>, train: c as unknown as Record<string, unknown>,
      state: { ...state, optimizerT: opt.t } as unknown as Record<string, unknown>,
      tokenizer: o.tokenizer, meta: { ...o.meta, data: o.data.describe() }, arrays: checkpointArrays(model, opt),
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
  try {
    while (state.step < c.steps) {
      if (o.signal?.aborted) break;
      const lr = learningRate(state.step, c);
      const micro: Batch[] = [];
      for (let i = 0; i < c.accumSteps; i++) micro.push(source.next());
      const r = trainStep(model, opt, micro, c, lr);
      if (!Number.isFinite(r.loss)) throw new KdError('diverged', `training diverged at step ${state.step + 1}: loss is ${r.loss} (try a lower lr or temperature)`);
      const tokens = micro.reduce((s, b) => s + b.B * b.T, 0);
      state.step++;
      stepsDone++;
      state.tokens += tokens;
      state.elapsedSec = elapsed0 + (performance.now() - t0) / 1000;
      lastLoss = r.loss;
      windowLoss += r.loss; windowKd += r.kd; windowCe += r.ce; windowN++; windowTokens += tokens;
      const runSec = (performance.now() - t0) / 1000;
      const tps = ((state.step - startStep) * tokens) / Math.max(runSec, 1e-9);
      o.onStep?.({ step: state.step, steps: c.steps, loss: r.loss, tokensPerSec: tps, etaSec: ((c.steps - state.step) * runSec) / (state.step - startStep) });
      const isLast = state.step === c.steps;
      let valLoss: number | undefined;
      let valKd: number | undefined;
      if (o.val && c.evalEvery > 0 && (state.step % c.evalEvery === 0 || isLast)) {
        const v = evaluate(model, o.val, c, c.evalBatches);
        valLoss = v.loss; valKd = v.kd; lastVal = v.loss;
      }
      if (state.step % c.logEvery === 0 || isLast || valLoss !== undefined) {
        const wsec = (performance.now() - windowStart) / 1000;
        log({
          step: state.step, lr, loss: windowLoss / windowN, kd: nz(windowKd / windowN), ce: nz(windowCe / windowN), gradNorm: r.gradNorm,
          tokens: state.tokens, tokensPerSec: windowTokens / Math.max(wsec, 1e-9), elapsedSec: state.elapsedSec,
          ...(valLoss !== undefined ? { valLoss, valKd: nz(valKd!) } : {}),
        });
        windowLoss = windowKd = windowCe = windowN = windowTokens = 0;
        windowStart = performance.now();
      }
      if (c.checkpointEvery > 0 && state.step % c.checkpointEvery === 0 && !isLast) save();
    }
    save();
  } catch (e) {
    if (!o.keepModel) { disposeModel(model); }
    disposeAdamW(opt);
    throw e;
  }
  disposeAdamW(opt);
  const seconds = (performance.now() - t0) / 1000;
  const tokensThisRun = stepsDone * c.batchSize * c.seqLen * c.accumSteps;
  const summary: TrainSummary = {
    steps: state.step, startStep, tokens: state.tokens, seconds,
    tokensPerSec: tokensThisRun / Math.max(seconds, 1e-9), msPerStep: (seconds * 1000) / Math.max(stepsDone, 1),
    flops: (3 * fpt * tokensThisRun) / Math.max(seconds, 1e-9),
    loss: lastLoss, ...(lastVal !== undefined ? { valLoss: lastVal } : {}), params, checkpoint: file,
  };
  if (o.keepModel) summary.model = model;
  else disposeModel(model);
  return summary;
}

/** Rebuild model and optimizer from checkpoint arrays, checking every shape. */
function restore(config: ModelConfig, arrays: Map<string, NamedArray>, file: string): { model: Model; opt: AdamWState } {
  const model = initModel(config, 0);
  const opt = initAdamW(model.params);
  const put = (name: string, v: tf.Variable) => {
    const a = arrays.get(name);
    if (!a || a.dtype !== 'float32' || a.data.length !== v.size) {
      disposeModel(model); disposeAdamW(opt);
      throw new KdError('corrupt-checkpoint', `${file}: tensor ${name} is missing or has the wrong shape`);
    }
    tf.tidy(() => v.assign(tf.tensor(a.data as Float32Array, v.shape)));
  };
  for (const [name, v] of model.params) put(name, v);
  for (const [name, v] of opt.m) put('adam.m/' + name, v);
  for (const [name, v] of opt.v) put('adam.v/' + name, v);
  return { model, opt };
}
