/**
 * kd prune: remove weights, then recover quality by KD fine-tuning on the teacher's soft labels.
 *   - magnitude: unstructured; the smallest |w| of the block matrices are zeroed (per weight or global)
 *     and held at exactly 0 by masks during fine-tuning. 'gradual' ramps the sparsity up with the
 *     cubic schedule of Zhu & Gupta 2017 over the first half of the fine-tuning steps, recomputing the
 *     masks from the current magnitudes at each of (up to) 8 points, then fine-tunes at the target.
 *   - heads / neurons / structured (both): the lowest-scoring fraction of attention heads and/or MLP
 *     neurons of every block is physically removed (structured.ts); the model gets smaller and faster.
 *
 * Fine-tuning runs in `<out>/prune-work/stage-N/` (one train() run per stage; gradual has up to 8), each with
 * its checkpoints, so an interrupted prune (Ctrl-C, SIGTERM: `signal`; or a kill, from the last checkpoint)
 * continues with `resume`: the pruning is deterministic given the input and options (recorded in
 * prune-work/options.json and checked), finished stages hand back their final weights and data cursor, and the
 * interrupted one resumes bit for bit. The work directory is removed once the output is written.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { KdError } from '../core/errors.js';
import { PRUNE_DEFAULTS } from './options.js';
import { type ModelConfig, blockShape, parameterCount } from '../model/config.js';
import { type Model, disposeModel, modelFromArrays } from '../model/gpt.js';
import { loadModel } from '../model/load.js';
import type { Batch, BatchSourceFactory } from '../data/batch.js';
import { type StepProgress, type TrainConfig, resolveTrainConfig, type WeightMasks, computeGradients, stepCounts, train } from '../train/index.js';
import { resolveCheckpointPath } from '../schema/checkpoint.js';
import { writeFileAtomic } from '../core/atomic.js';
import { float32Arrays, openCompressData, prepareOut, trainConfigOf, validationKl, writeCompressed } from './io.js';
import { type LayerSparsity, type PruneScope, checkSparsity, cubicSparsity, magnitudeMasks, prunableNames, sparsityReport } from './masks.js';
import { type Importance, type Unit, importanceScores, keepIndices, removeUnits } from './structured.js';

export const PRUNE_METHODS = ['magnitude', 'heads', 'neurons', 'structured'] as const;
export type PruneMethod = (typeof PRUNE_METHODS)[number];

export interface PruneOptions {
  checkpoint: string;
  out: string;
  data: string;
  method: PruneMethod;
  /** fraction of weights (magnitude) or of heads/neurons per block removed, in [0, 1) */
  sparsity: number;
  schedule?: 'oneshot' | 'gradual';
  finetuneSteps?: number;
  scope?: PruneScope;
  importance?: Importance;
  /** fine-tuning peak learning rate (default: a third of the checkpoint's) */
  lr?: number;
  evalBatches?: number;
  workers?: number;
  backend?: string;
  force?: boolean;
  /** continue an interrupted prune from <out>/prune-work (a fresh start when there is none) */
  resume?: boolean;
  /** stop early (SIGINT, SIGTERM): the fine-tuning stage writes a checkpoint, then prune throws 'interrupted' */
  signal?: AbortSignal;
  /** after every fine-tuning step */
  onStep?: (p: FinetuneProgress) => void;
}

export interface FinetuneProgress extends StepProgress {
  /** 1-based fine-tuning stage (gradual: one per pruning point) of `stages` */
  stage: number;
  stages: number;
  /** fine-tuning steps done over all stages, of `finetuneSteps` */
  done: number;
  finetuneSteps: number;
}

export interface BlockReport {
  block: number;
  headsBefore: number;
  headsAfter: number;
  ffnBefore: number;
  ffnAfter: number;
}

export interface PruneSummary {
  checkpoint: string;
  method: PruneMethod;
  sparsity: number;
  schedule: 'oneshot' | 'gradual';
  finetuneSteps: number;
  paramsBefore: number;
  paramsAfter: number;
  nonzeroBefore: number;
  nonzeroAfter: number;
  /** magnitude: exact zeros per pruned weight */
  layers?: LayerSparsity[];
  /** structured: heads and MLP width per block */
  blocks?: BlockReport[];
  valKlBefore: number;
  /** right after pruning, before fine-tuning (gradual: after the last pruning step, before its fine-tuning) */
  valKlPruned: number;
  valKlAfter: number;
  valKlRelChange: number;
  seconds: number;
}

/**
 * One stream of batches across several train() calls (gradual stages see fresh data each time). A resumed
 * stage opens it at its checkpoint's cursor, a position in this whole stream: later stages go on from there.
 */
function continuing(f: BatchSourceFactory): BatchSourceFactory {
  let src = f.open();
  return { open: (cursor) => (cursor === undefined ? src : (src = f.open(cursor))), describe: f.describe };
}

const weightsOf = (m: Model) => new Map([...m.params].map(([n, v]) => [n, v.dataSync() as Float32Array]));
const nonzero = (m: Model) => [...m.params.values()].reduce((s, v) => s + (v.dataSync() as Float32Array).reduce((z, x) => z + (x !== 0 ? 1 : 0), 0), 0);

interface Tuner {
  c: TrainConfig;
  data: BatchSourceFactory;
  lr: number;
  workers?: number;
  backend?: string;
  /** prune-work: stage N fine-tunes in stage-N */
  work: string;
  stages: number;
  resume: boolean;
  signal?: AbortSignal;
  onStep?: (p: FinetuneProgress) => void;
  /** fine-tuning steps of the stages before this one, of `steps` in all */
  offset: number;
  steps: number;
}

/** KD fine-tuning of `model` for `steps` steps (consumed; returns the tuned model). */
async function finetune(model: Model, steps: number, t: Tuner, stage: number, masks?: WeightMasks): Promise<Model> {
  if (steps <= 0) return model;
  const config = resolveTrainConfig({
    ...t.c, steps, lr: t.lr, minLr: t.lr / 10, warmupSteps: Math.min(t.c.warmupSteps, Math.floor(steps / 10)),
    logEvery: steps, evalEvery: 0, checkpointEvery: Math.min(t.c.checkpointEvery, steps),
  }, 'fine-tuning config');
  const outDir = path.join(t.work, `stage-${stage}`);
  // a finished stage (its checkpoint at the last step) runs no step: train() hands its weights back
  const s = await train({
    model: model.config, config, data: t.data, outDir, initFrom: model, keepModel: true, masks, workers: t.workers, backend: t.backend,
    resume: t.resume, signal: t.signal,
    onStep: t.onStep && ((p) => {
      const done = t.offset + p.step; // the ETA of all stages left, at this stage's pace
      const etaSec = p.steps > p.step ? (p.etaSec * (t.steps - done)) / (p.steps - p.step) : p.etaSec;
      t.onStep!({ ...p, etaSec, stage, stages: t.stages, done, finetuneSteps: t.steps });
    }),
  });
  t.offset += steps;
  if (s.model !== model) disposeModel(model); // workers (and a resumed stage) hand back another model
  if (t.signal?.aborted && s.steps < steps) {
    disposeModel(s.model!);
    throw new KdError('interrupted', `stopped in fine-tuning stage ${stage} of ${t.stages} at step ${s.steps} of ${steps} (checkpoint in ${outDir}): run the same command with --resume to continue`);
  }
  return s.model!;
}

/** What an interrupted prune must match to be resumed: the input checkpoint's bytes and every option that shapes the result. */
function workKey(o: PruneOptions, inputFile: string, steps: number, schedule: string) {
  const sha = crypto.createHash('sha256').update(fs.readFileSync(inputFile)).digest('hex');
  return {
    input: { sha256: sha }, data: o.data, method: o.method, sparsity: o.sparsity, schedule,
    finetuneSteps: steps, scope: o.scope ?? PRUNE_DEFAULTS.scope, importance: o.importance ?? PRUNE_DEFAULTS.importance,
    lr: o.lr ?? null, evalBatches: o.evalBatches ?? null,
  };
}

/** prune-work for this run: new, or (resume) the interrupted run's, checked against this one's options. */
function prepareWork(dir: string, key: ReturnType<typeof workKey>, o: PruneOptions): string {
  const work = path.join(dir, 'prune-work');
  const keyFile = path.join(work, 'options.json');
  if (fs.existsSync(work)) {
    if (o.resume && fs.existsSync(keyFile)) {
      let saved: Record<string, unknown> = {};
      try {
        saved = JSON.parse(fs.readFileSync(keyFile, 'utf8')) as Record<string, unknown>;
      } catch { /* unreadable: nothing matches, so it is not resumed */ }
      const changed = Object.keys(key).filter((k) => JSON.stringify(saved[k]) !== JSON.stringify((key as Record<string, unknown>)[k]));
      if (changed.length && !o.force) {
        throw new KdError('resume-mismatch', `${work}: the interrupted prune had other ${changed.map((k) => k === 'input' ? 'input checkpoint bytes' : k).join(', ')}; rerun it as it was, or pass --force to start over`);
      }
      if (!changed.length) return work;
    } else if (!o.resume && !o.force) throw new KdError('would-overwrite', `${work} holds an interrupted prune: pass --resume to continue it, or --force to start over`);
    fs.rmSync(work, { recursive: true, force: true });
  }
  fs.mkdirSync(work, { recursive: true });
  writeFileAtomic(keyFile, JSON.stringify(key, null, 2) + '\n');
  return work;
}

/** Per-batch gradients of the KD loss for the Taylor importance. */
function batchGradients(model: Model, batches: Batch[], c: TrainConfig): Map<string, Float32Array>[] {
  return batches.map((b) => {
    const g = computeGradients(model, [b], c, stepCounts([b], c));
    const out = new Map([...g.grads].map(([n, t]) => [n, t.dataSync() as Float32Array]));
    tf.dispose([...g.grads.values()]);
    return out;
  });
}

async function magnitude(model: Model, o: PruneOptions, t: Tuner, steps: number, onPruned: (m: Model) => void): Promise<Model> {
  const names = prunableNames(model.config);
  const scope = o.scope ?? PRUNE_DEFAULTS.scope;
  const prune = (m: Model, s: number) => {
    const masks = magnitudeMasks(weightsOf(m), names, s, scope);
    const mt = new Map([...masks].map(([n, a]) => [n, tf.tensor(a, m.params.get(n)!.shape)]));
    for (const [n, mask] of mt) tf.tidy(() => m.params.get(n)!.assign(tf.mul(m.params.get(n)!, mask)));
    tf.dispose([...mt.values()]);
    return masks;
  };
  if ((o.schedule ?? PRUNE_DEFAULTS.schedule) === 'oneshot') {
    const masks = prune(model, o.sparsity);
    onPruned(model);
    return finetune(model, steps, t, 1, masks);
  }
  const ramp = Math.floor(steps / 2);
  const K = Math.min(8, ramp);
  const per = Math.floor(ramp / K);
  let m = model;
  for (let k = 1; k <= K; k++) {
    const stageSteps = k < K ? per : steps - (K - 1) * per; // the last stage, at the target sparsity, gets the rest
    const masks = prune(m, cubicSparsity(k, K, o.sparsity));
    if (k === K) onPruned(m);
    m = await finetune(m, stageSteps, t, k, masks);
  }
  return m;
}

async function structured(model: Model, o: PruneOptions, c: TrainConfig, batches: Batch[]): Promise<Model> {
  const units: Unit[] = o.method === 'structured' ? ['heads', 'neurons'] : [o.method as Unit];
  const how = o.importance ?? PRUNE_DEFAULTS.importance;
  const w = weightsOf(model);
  const grads = how === 'taylor' ? batchGradients(model, batches, { ...c, loss: { ...c.loss, alpha: 0 } }) : [];
  let config: ModelConfig = model.config;
  let arrays = w;
  for (const unit of units) {
    // Scores come from the unpruned model; heads and neurons touch disjoint weights.
    const keep = importanceScores(model.config, w, unit, how, grads).map((s) => keepIndices(s, o.sparsity));
    ({ config, arrays } = removeUnits(config, arrays, unit, keep));
  }
  return modelFromArrays(config, arrays);
}

export async function prune(o: PruneOptions): Promise<PruneSummary> {
  const t0 = performance.now();
  if (!PRUNE_METHODS.includes(o.method)) throw new KdError('bad-option', `--method ${o.method}: choose one of ${PRUNE_METHODS.join(', ')}`);
  checkSparsity(o.sparsity);
  const schedule = o.schedule ?? PRUNE_DEFAULTS.schedule;
  if (schedule !== 'oneshot' && schedule !== 'gradual') throw new KdError('bad-option', `--schedule ${schedule}: choose oneshot or gradual`);
  const steps = o.finetuneSteps ?? PRUNE_DEFAULTS.finetuneSteps;
  if (!Number.isInteger(steps) || steps < 0) throw new KdError('bad-option', `--finetune-steps ${steps}: must be an integer ≥ 0`);
  if (schedule === 'gradual' && (o.method !== 'magnitude' || steps < 2)) {
    throw new KdError('bad-option', '--schedule gradual needs --method magnitude and --finetune-steps ≥ 2 (it prunes while fine-tuning)');
  }
  const out = prepareOut(o.out, o.checkpoint, o.force);
  const input = loadModel(o.checkpoint);
  const c = trainConfigOf(input.header, input.model.config);
  let model: Model | undefined;
  try {
    const data = openCompressData(o.data, input, c, o.evalBatches ?? c.evalBatches);
    const work = prepareWork(out.dir, workKey(o, resolveCheckpointPath(o.checkpoint), steps, schedule), o);
    const stages = schedule === 'gradual' ? Math.min(8, Math.floor(steps / 2)) : 1;
    const t: Tuner = {
      c, data: continuing(data.train), lr: o.lr ?? c.lr / 3, workers: o.workers, backend: o.backend,
      work, stages, resume: Boolean(o.resume), signal: o.signal, onStep: o.onStep, offset: 0, steps,
    };
    const before = input.model.config;
    const valKlBefore = validationKl(input.model, data.val, c);
    const nonzeroBefore = nonzero(input.model);
    let valKlPruned = NaN;
    const copy = modelFromArrays(before, weightsOf(input.model));
    if (o.method === 'magnitude') {
      model = await magnitude(copy, o, t, steps, (m) => { valKlPruned = validationKl(m, data.val, c); });
    } else {
      const batches = Array.from({ length: Math.max(1, o.evalBatches ?? c.evalBatches) }, () => t.data.open().next());
      const pruned = await structured(copy, o, c, batches);
      disposeModel(copy);
      valKlPruned = validationKl(pruned, data.val, c);
      model = await finetune(pruned, steps, t, 1);
    }
    const after = model.config;
    const valKlAfter = validationKl(model, data.val, c);
    const names = prunableNames(after);
    const summary: PruneSummary = {
      checkpoint: out.file, method: o.method, sparsity: o.sparsity, schedule, finetuneSteps: steps,
      paramsBefore: parameterCount(before), paramsAfter: parameterCount(after), nonzeroBefore, nonzeroAfter: nonzero(model),
      ...(o.method === 'magnitude'
        ? { layers: sparsityReport(weightsOf(model), names) }
        : { blocks: Array.from({ length: after.nLayers }, (_, i) => ({
          block: i, headsBefore: blockShape(before, i).nHeads, headsAfter: blockShape(after, i).nHeads,
          ffnBefore: blockShape(before, i).ffnDim, ffnAfter: blockShape(after, i).ffnDim })) }),
      valKlBefore, valKlPruned, valKlAfter, valKlRelChange: (valKlAfter - valKlBefore) / valKlBefore, seconds: 0,
    };
    summary.seconds = (performance.now() - t0) / 1000;
    writeCompressed({
      out, input, model: after, arrays: float32Arrays(model), stage: 'prune',
      parameters: { method: o.method, sparsity: o.sparsity, schedule, finetuneSteps: steps, scope: o.scope ?? PRUNE_DEFAULTS.scope, importance: o.importance ?? PRUNE_DEFAULTS.importance, lr: t.lr, data: o.data },
      figures: () => ({ ...summary }),
    });
    fs.rmSync(work, { recursive: true, force: true });
    return summary;
  } finally {
    disposeModel(input.model);
    if (model) disposeModel(model);
  }
}
