import os from 'node:os';
import { KdError } from '../core/errors.js';
import { DEFAULT_LOSS, type KdLossOptions, resolveLossOptions } from './kd-kernel.js';

/** Everything about a training run except the model sizes and the data. */
export interface TrainConfig {
  /** optimizer steps in the whole run (the cosine schedule ends here) */
  steps: number;
  batchSize: number;
  seqLen: number;
  /** micro-batches whose gradients are averaged into one step */
  accumSteps: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** global-norm clip; 0 disables */
  gradClip: number;
  loss: KdLossOptions;
  logEvery: number;
  /** 0 disables validation */
  evalEvery: number;
  evalBatches: number;
  /** 0 = only at the end */
  checkpointEvery: number;
  seed: number;
}

export const DEFAULT_TRAIN: TrainConfig = {
  steps: 1000, batchSize: 16, seqLen: 128, accumSteps: 1,
  lr: 3e-4, minLr: 3e-5, warmupSteps: 100, weightDecay: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 1,
  loss: DEFAULT_LOSS,
  logEvery: 10, evalEvery: 200, evalBatches: 4, checkpointEvery: 200, seed: 0,
};

const POSITIVE_INTS = ['steps', 'batchSize', 'seqLen', 'accumSteps', 'logEvery', 'evalBatches'] as const;
const NONNEG_INTS = ['warmupSteps', 'evalEvery', 'checkpointEvery', 'seed'] as const;

export function resolveTrainConfig(partial: Partial<Omit<TrainConfig, 'loss'>> & { loss?: Partial<KdLossOptions> }, source = 'train config'): TrainConfig {
  const known = new Set(Object.keys(DEFAULT_TRAIN));
  for (const k of Object.keys(partial)) if (!known.has(k)) throw new KdError('bad-config', `${source}: unknown field "${k}"`);
  const c: TrainConfig = { ...DEFAULT_TRAIN, ...partial, loss: resolveLossOptions({ ...DEFAULT_TRAIN.loss, ...partial.loss }, `${source}: loss`) } as TrainConfig;
  const fail = (f: string, want: string) => new KdError('bad-config', `${source}: ${f} must be ${want}, got ${JSON.stringify((c as unknown as Record<string, unknown>)[f])}`);
  for (const f of POSITIVE_INTS) if (!Number.isInteger(c[f]) || c[f] < 1) throw fail(f, 'a positive integer');
  for (const f of NONNEG_INTS) if (!Number.isInteger(c[f]) || c[f] < 0) throw fail(f, 'an integer ≥ 0');
  if (!(c.lr > 0)) throw fail('lr', '> 0');
  if (!(c.minLr >= 0 && c.minLr <= c.lr)) throw fail('minLr', 'in [0, lr]');
  if (!(c.weightDecay >= 0)) throw fail('weightDecay', '≥ 0');
  if (!(c.beta1 >= 0 && c.beta1 < 1)) throw fail('beta1', 'in [0, 1)');
  if (!(c.beta2 >= 0 && c.beta2 < 1)) throw fail('beta2', 'in [0, 1)');
  if (!(c.eps > 0)) throw fail('eps', '> 0');
  if (!(c.gradClip >= 0)) throw fail('gradClip', '≥ 0');
  return c;
}

/**
 * Workers by default: one per core (at most 8, at most one per sequence of a batch) on wasm and cpu,
 * whose kernels use one thread each; tfjs-node's kernels are multi-threaded already.
 */
export function defaultWorkers(backend: string, batchSize: number): number {
  if (backend !== 'wasm' && backend !== 'cpu') return 1;
  return Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8, batchSize));
}
