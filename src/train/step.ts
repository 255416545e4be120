/**
 * One replica of the model and its optimizer, and what a training step does to it. The trainer
 * drives one in-process (LocalStepper) or several in worker threads (ParallelStepper, parallel.ts)
 * through the same Stepper interface.
 */
import * as tf from '@tensorflow/tfjs';
import { KdError } from '../core/errors.js';
import type { ModelConfig } from '../model/config.js';
import { type Model, disposeModel, forwardHidden, initModel } from '../model/gpt.js';
import type { NamedArray } from '../schema/checkpoint.js';
import type { Batch } from '../data/batch.js';
import type { TrainConfig } from './config.js';
import { type KdLabels, type LossCounts, lossWeights } from './kd-kernel.js';
import { type KdLossValue, evalKdLoss, headKdLoss } from './losses.js';
import { type AdamWState, adamWStep, clipCoefficient, disposeAdamW, flattenGrads, globalNorm, initAdamW } from './optimizer.js';

/** A batch's labels as the loss kernels take them: N = B·T positions, flat. */
export function batchLabels(b: Batch): KdLabels {
  return { N: b.B * b.T, K: b.K, topIds: b.topIds, topLogprobs: b.topLogprobs, mask: b.mask, targets: b.targets };
}

export interface StepResult {
  loss: number;
  kd: number;
  ce: number;
  gradNorm: number;
}

export interface EvalResult {
  loss: number;
  kd: number;
}

/** A model + optimizer that can take steps, evaluate, and hand out its tensors for a checkpoint. */
export interface Stepper {
  readonly params: number;
  step(micro: Batch[], lr: number): Promise<StepResult>;
  evaluate(batches: Batch[]): Promise<EvalResult>;
  /** weights and AdamW moments, checkpoint-ready, plus the optimizer's update count */
  state(): Promise<{ arrays: NamedArray[]; optimizerT: number }>;
  /** hand over the model (the caller owns it) and free the rest */
  release(keepModel: boolean): Promise<Model | undefined>;
}

export interface Gradients {
  /** summed over the micro-batches, already divided by the step's counts */
  grads: Map<string, tf.Tensor>;
  loss: number;
  kdSum: number;
  ceSum: number;
}

/**
 * Gradients of the step loss over `micro` batches. The step's loss is the mean over all its labelled
 * positions, whichever micro-batch (or worker) holds them: every call gets the step's totals as
 * denominators, so losses and gradients just add up.
 */
export function computeGradients(model: Model, micro: Batch[], c: TrainConfig, counts: LossCounts): Gradients {
  const vars = [...model.params.values()];
  const names = [...model.params.keys()];
  const nameOf = new Map(vars.map((v, i) => [v.name, names[i]]));
  const grads = new Map<string, tf.Tensor>();
  let loss = 0, kdSum = 0, ceSum = 0;
  for (const b of micro) {
    let stats!: KdLossValue;
    const { value, grads: g } = tf.variableGrads(() => {
      const ids = tf.tensor2d(b.inputIds, [b.B, b.T], 'int32');
      const h = forwardHidden(model, ids);
      return headKdLoss(h, model.params.get('wte') as unknown as tf.Tensor2D, { ...batchLabels(b), counts }, c.loss, (v) => { stats = v; });
    }, vars);
    value.dispose();
    loss += stats.loss;
    kdSum += stats.kdSum;
    ceSum += stats.ceSum;
    for (const [vn, t] of Object.entries(g)) {
      const name = nameOf.get(vn)!;
      const prev = grads.get(name);
      grads.set(name, prev ? tf.add(prev, t) : t);
      if (prev) { prev.dispose(); t.dispose(); }
    }
  }
  return { grads, loss, kdSum, ceSum };
}

/**
 * Clip and apply summed gradients, flat in parameter order (see flattenGrads). Returns the norm
 * before clipping.
 */
export function applyGradients(model: Model, opt: AdamWState, flat: Float32Array, c: TrainConfig, lr: number): number {
  const gradNorm = globalNorm(flat);
  adamWStep(model.params, flat, opt, c, lr, clipCoefficient(gradNorm, c.gradClip));
  return gradNorm;
}

export type WeightMasks = Map<string, Float32Array>;

/** Masks as tensors, checked against the model's shapes (name → 0/1 array of the weight's size). */
export function maskTensors(model: Model, masks: WeightMasks): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, m] of masks) {
    const v = model.params.get(name);
    if (!v || v.size !== m.length) throw new Error(`mask ${name} does not match a weight of the model`);
    out.set(name, tf.tensor(m, v.shape));
  }
  return out;
}

/**
 * weights ← weights ⊙ mask, after every optimizer update (kd prune): AdamW moves every entry, so
 * pruned entries are put back to exactly 0 each step rather than having their gradients masked.
 */
export function applyMasks(model: Model, masks: Map<string, tf.Tensor>): void {
  for (const [name, m] of masks) {
    const v = model.params.get(name)!;
    tf.tidy(() => v.assign(tf.mul(v, m)));
  }
}

/** One optimizer step over `micro` batches, in process. */
export function trainStep(model: Model, opt: AdamWState, micro: Batch[], c: TrainConfig, lr: number): StepResult {
  const counts = stepCounts(micro, c);
  const g = computeGradients(model, micro, c, counts);
  const gradNorm = applyGradients(model, opt, flattenGrads(model.params, g.grads), c, lr);
  return { loss: g.loss, kd: g.kdSum / counts.labelled, ce: g.ceSum / counts.targeted, gradNorm };
}

/** Labelled, targeted and fallback positions over all micro-batches of a step. */
export function stepCounts(micro: Batch[], c: TrainConfig): LossCounts {
  const counts: LossCounts = { labelled: 0, targeted: 0, fallback: 0 };
  for (const b of micro) {
    const w = lossWeights(batchLabels(b), c.loss);
    counts.labelled += w.labelled;
    counts.targeted += w.targeted;
    counts.fallback += w.fallback;
  }
  return counts;
}

/** Mean loss over validation batches. */
export function evaluate(model: Model, batches: Batch[], c: TrainConfig): EvalResult {
  let loss = 0, kd = 0, kdN = 0;
  for (const b of batches) {
    let v!: KdLossValue;
    tf.tidy(() => {
      const h = forwardHidden(model, tf.tensor2d(b.inputIds, [b.B, b.T], 'int32'));
      v = evalKdLoss(h, model.params.get('wte') as unknown as tf.Tensor2D, batchLabels(b), c.loss);
    });
    loss += v.loss / batches.length;
    if (Number.isFinite(v.kd)) { kd += v.kd; kdN++; }
  }
  return { loss, kd: kdN ? kd / kdN : NaN };
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

/** Rebuild model and optimizer from checkpoint arrays, checking every shape. */
export function restore(config: ModelConfig, arrays: Map<string, NamedArray>, file: string): { model: Model; opt: AdamWState } {
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

/** The in-process stepper. */
export class LocalStepper implements Stepper {
  readonly params: number;
  private readonly masks?: Map<string, tf.Tensor>;
  constructor(readonly model: Model, readonly opt: AdamWState, readonly config: TrainConfig, masks?: WeightMasks) {
    this.params = [...model.params.values()].reduce((n, v) => n + v.size, 0);
    if (masks) {
      this.masks = maskTensors(model, masks);
      applyMasks(model, this.masks);
    }
  }
  static create(model: ModelConfig, c: TrainConfig, from?: { arrays: Map<string, NamedArray>; optimizerT: number; file: string }, initFrom?: Model, masks?: WeightMasks): LocalStepper {
    if (from) {
      const { model: m, opt } = restore(model, from.arrays, from.file);
      opt.t = from.optimizerT;
      return new LocalStepper(m, opt, c, masks);
    }
    const m = initFrom ?? initModel(model, c.seed);
    return new LocalStepper(m, initAdamW(m.params), c, masks);
  }
  async step(micro: Batch[], lr: number): Promise<StepResult> {
    const r = trainStep(this.model, this.opt, micro, this.config, lr);
    if (this.masks) applyMasks(this.model, this.masks);
    return r;
  }
  async evaluate(batches: Batch[]): Promise<EvalResult> {
    return evaluate(this.model, batches, this.config);
  }
  async state() {
    return { arrays: checkpointArrays(this.model, this.opt), optimizerT: this.opt.t };
  }
  async release(keepModel: boolean): Promise<Model | undefined> {
    disposeAdamW(this.opt);
    if (this.masks) tf.dispose([...this.masks.values()]);
    if (keepModel) return this.model;
    disposeModel(this.model);
    return undefined;
  }
}
