/**
 * Data parallelism over worker threads: the cleanest way to use every core with the wasm backend
 * (its own threads are off under Node, tfjs#3830). Each worker holds a replica of the model and
 * optimizer on its own backend. A step:
 *   1. every worker gets its rows of each micro-batch and the step's label counts, computes its
 *      gradients and writes them, flat, into its slot of one SharedArrayBuffer;
 *   2. once all have written, every worker adds the slots up in rank order — the same float sums in
 *      every worker — then clips and applies AdamW. The replicas stay bit-identical, so worker 0
 *      alone answers for checkpoints and validation.
 */
import { Worker } from 'node:worker_threads';
import { KdError } from '../core/errors.js';
import { startWorker } from '../core/tsx.js';
import type { ModelConfig } from '../model/config.js';
import { type Model, disposeModel, initModel, modelFromArrays, paramShapes } from '../model/gpt.js';
import type { NamedArray } from '../schema/checkpoint.js';
import type { Batch } from '../data/batch.js';
import type { TrainConfig } from './config.js';
import type { LossCounts } from './kd-kernel.js';
import { type EvalResult, type StepResult, type Stepper, type WeightMasks, checkpointArrays, stepCounts } from './step.js';

export interface WorkerInit {
  rank: number;
  workers: number;
  backend?: string;
  model: ModelConfig;
  config: TrainConfig;
  /** weights (and AdamW moments when resuming), by checkpoint name */
  arrays: NamedArray[];
  optimizerT: number;
  grads: SharedArrayBuffer;
  /** kd prune: fixed 0/1 masks applied after every update (see TrainOptions.masks) */
  masks?: WeightMasks;
}

export type WorkerRequest =
  | { type: 'grad'; batches: Batch[]; counts: LossCounts }
  | { type: 'apply'; lr: number }
  | { type: 'eval'; batches: Batch[] }
  | { type: 'state' };

type Reply = { ok: true; value: unknown } | { ok: false; error: { message: string; code?: string; stack?: string } };

/** Rows [from, to) of a batch. */
export function sliceRows(b: Batch, from: number, to: number): Batch {
  const T = b.T, K = b.K;
  return {
    B: to - from, T, K,
    inputIds: b.inputIds.slice(from * T, to * T), topIds: b.topIds.slice(from * T * K, to * T * K),
    topLogprobs: b.topLogprobs.slice(from * T * K, to * T * K), mask: b.mask.slice(from * T, to * T), targets: b.targets.slice(from * T, to * T),
  };
}

class WorkerHandle {
  private pending: { resolve: (v: unknown) => void; reject: (e: Error) => void } | null = null;
  private dead: Error | null = null;
  constructor(readonly worker: Worker) {
    worker.on('message', (r: Reply) => {
      const p = this.pending;
      this.pending = null;
      if (!p) return;
      if (r.ok) p.resolve(r.value);
      else p.reject(r.error.code ? new KdError(r.error.code, r.error.message) : Object.assign(new Error(r.error.message), { stack: r.error.stack }));
    });
    const fail = (e: Error) => {
      this.dead = e;
      this.pending?.reject(e);
      this.pending = null;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => { if (code !== 0) fail(new Error(`training worker exited with code ${code}`)); });
  }
  call<T>(req: unknown): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.pending) return Promise.reject(new Error('worker busy'));
    return new Promise<T>((resolve, reject) => {
      this.pending = { resolve: resolve as (v: unknown) => void, reject };
      this.worker.postMessage(req);
    });
  }
}

export class ParallelStepper implements Stepper {
  private constructor(private readonly handles: WorkerHandle[], private readonly config: TrainConfig, private readonly modelConfig: ModelConfig, readonly params: number) {}

  static async create(o: {
    model: ModelConfig; config: TrainConfig; workers: number; backend?: string;
    from?: { arrays: Map<string, NamedArray>; optimizerT: number }; initFrom?: Model; masks?: WeightMasks;
  }): Promise<ParallelStepper> {
    let arrays: NamedArray[];
    if (o.from) arrays = [...o.from.arrays.values()];
    else if (o.initFrom) arrays = checkpointArrays(o.initFrom);
    else {
      const m = initModel(o.model, o.config.seed);
      arrays = checkpointArrays(m);
      disposeModel(m);
    }
    const params = paramShapes(o.model).reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
    const grads = new SharedArrayBuffer(4 * params * o.workers);
    const handles: WorkerHandle[] = [];
    for (let rank = 0; rank < o.workers; rank++) {
      const init: WorkerInit = { rank, workers: o.workers, backend: o.backend, model: o.model, config: o.config, arrays, optimizerT: o.from?.optimizerT ?? 0, grads, masks: o.masks };
      handles.push(new WorkerHandle(startWorker(import.meta.url, './worker', init)));
    }
    const stepper = new ParallelStepper(handles, o.config, o.model, params);
    try {
      await Promise.all(handles.map((h) => h.call({ type: 'ready' })));
    } catch (e) {
      await stepper.terminate();
      throw e;
    }
    return stepper;
  }

  async step(micro: Batch[], lr: number): Promise<StepResult> {
    const counts = stepCounts(micro, this.config);
    const n = this.handles.length;
    const parts = await Promise.all(this.handles.map((h, r) => {
      const batches = micro.map((b) => sliceRows(b, Math.floor((r * b.B) / n), Math.floor(((r + 1) * b.B) / n))).filter((b) => b.B > 0);
      return h.call<{ loss: number; kdSum: number; ceSum: number }>({ type: 'grad', batches, counts } satisfies WorkerRequest);
    }));
    const norms = await Promise.all(this.handles.map((h) => h.call<number>({ type: 'apply', lr } satisfies WorkerRequest)));
    const sum = (k: 'loss' | 'kdSum' | 'ceSum') => parts.reduce((s, p) => s + p[k], 0);
    return { loss: sum('loss'), kd: sum('kdSum') / counts.labelled, ce: sum('ceSum') / counts.targeted, gradNorm: norms[0] };
  }

  evaluate(batches: Batch[]): Promise<EvalResult> {
    return this.handles[0].call<EvalResult>({ type: 'eval', batches } satisfies WorkerRequest);
  }

  state(): Promise<{ arrays: NamedArray[]; optimizerT: number }> {
    return this.handles[0].call({ type: 'state' } satisfies WorkerRequest);
  }

  async release(keepModel: boolean): Promise<Model | undefined> {
    let model: Model | undefined;
    if (keepModel) {
      const { arrays } = await this.state();
      const byName = new Map(arrays.map((a) => [a.name, a.data as Float32Array]));
      model = modelFromArrays(this.modelConfig, byName);
    }
    await this.terminate();
    return model;
  }

  private async terminate(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }
}

