/** A data-parallel training worker (see parallel.ts): one model replica on its own backend. */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import { isKdError } from '../core/errors.js';
import { modelFromArrays } from '../model/gpt.js';
import type { WorkerInit, WorkerRequest } from './parallel.js';
import { addInto, flattenGrads, initAdamW } from './optimizer.js';
import { applyGradients, applyMasks, checkpointArrays, computeGradients, evaluate, maskTensors } from './step.js';

const init = workerData as WorkerInit;
const port = parentPort!;

async function start() {
  await initBackend({ backend: init.backend });
  const byName = new Map(init.arrays.map((a) => [a.name, a.data as Float32Array]));
  const model = modelFromArrays(init.model, byName);
  const opt = initAdamW(model.params);
  for (const [prefix, moments] of [['adam.m/', opt.m], ['adam.v/', opt.v]] as const) {
    for (const [name, v] of moments) {
      const a = byName.get(prefix + name);
      if (a) tf.tidy(() => v.assign(tf.tensor(a, v.shape)));
    }
  }
  opt.t = init.optimizerT;
  const masks = init.masks ? maskTensors(model, init.masks) : undefined;
  if (masks) applyMasks(model, masks);
  let P = 0;
  for (const v of model.params.values()) P += v.size;
  const slots = Array.from({ length: init.workers }, (_, r) => new Float32Array(init.grads, 4 * P * r, P));
  const total = new Float32Array(P);

  const handle = (req: WorkerRequest | { type: 'ready' }): unknown => {
    switch (req.type) {
      case 'ready':
        return true;
      case 'grad': {
        const g = computeGradients(model, req.batches, init.config, req.counts);
        flattenGrads(model.params, g.grads, slots[init.rank]);
        return { loss: g.loss, kdSum: g.kdSum, ceSum: g.ceSum };
      }
      case 'apply': {
        total.set(slots[0]);
        for (let r = 1; r < init.workers; r++) addInto(total, slots[r]);
        const norm = applyGradients(model, opt, total, init.config, req.lr);
        if (masks) applyMasks(model, masks);
        return norm;
      }
      case 'eval':
        return evaluate(model, req.batches, init.config);
      case 'state':
        return { arrays: checkpointArrays(model, opt), optimizerT: opt.t };
    }
  };

  port.on('message', (req: WorkerRequest | { type: 'ready' }) => {
    try {
      port.postMessage({ ok: true, value: handle(req) });
    } catch (e) {
      const err = e as Error & { code?: string };
      port.postMessage({ ok: false, error: { message: err.message, stack: err.stack, ...(isKdError(e) ? { code: err.code } : {}) } });
    }
  });
}

start().catch((e) => {
  // Initialisation failed: answer every request with the reason.
  port.on('message', () => port.postMessage({ ok: false, error: { message: `worker start-up failed: ${(e as Error).message}` } }));
});
