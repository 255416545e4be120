/**
 * Tiny students for the eval tests: an fp32 checkpoint (trained a few steps, or freshly initialised)
 * plus an int8 copy (per-channel symmetric on the last axis, LayerNorms kept fp32) and a pruned copy
 * (the smaller half of every matrix set to 0), written the way the compress stage will write them.
 */
import { channelAxis, quantizeArray } from '../../src/model/int8.js';
import fs from 'node:fs';
import path from 'node:path';
import { resolveModelConfig, type ModelConfig } from '../../src/model/config.js';
import { disposeModel, initModel } from '../../src/model/gpt.js';
import { loadCheckpoint, saveCheckpoint, type NamedArray } from '../../src/schema/checkpoint.js';
import { checkpointArrays } from '../../src/train/step.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { syntheticTeacher } from '../../src/data/synthetic.js';
import { train } from '../../src/train/trainer.js';

export const MODEL: ModelConfig = resolveModelConfig({ vocabSize: 32, seqLen: 12, dModel: 16, nLayers: 1, nHeads: 2, ffnMult: 2 });
export const TOPK = 6;
export const SEED = 3;

export interface Students { fp32: string; int8: string; pruned: string }

export async function makeStudents(dir: string, o: { trainSteps: number; config?: ModelConfig; tokenizer?: unknown }): Promise<Students> {
  const config = o.config ?? MODEL;
  const fp32 = path.join(dir, 'fp32');
  if (o.trainSteps > 0) {
    const data = (split: 'train' | 'val') => syntheticTeacher({ vocabSize: config.vocabSize, seqLen: config.seqLen, batchSize: 4, topK: TOPK, seed: SEED, split });
    await train({
      model: config, config: resolveTrainConfig({ steps: o.trainSteps, batchSize: 4, seqLen: config.seqLen, lr: 1e-2, warmupSteps: 2, logEvery: 5, evalEvery: 10, evalBatches: 1, checkpointEvery: 0, seed: SEED }),
      data: data('train'), val: data('val'), outDir: fp32, tokenizer: o.tokenizer,
    });
  } else {
    const m = initModel(config, 1);
    saveCheckpoint(path.join(fp32, 'checkpoint.kdc'), { model: config as unknown as Record<string, unknown>, tokenizer: o.tokenizer, meta: { data: { kind: 'synthetic', seed: SEED, topK: TOPK } }, arrays: checkpointArrays(m) });
    disposeModel(m);
  }
  const ck = loadCheckpoint(fp32);
  const weights = [...ck.arrays.values()].filter((a) => !a.name.startsWith('adam.'));
  const save = (name: string, arrays: NamedArray[]) => {
    const file = path.join(dir, name, 'checkpoint.kdc');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    saveCheckpoint(file, { model: ck.header.model, tokenizer: ck.header.tokenizer, meta: ck.header.meta, arrays });
    return file;
  };
  const int8 = save('int8', weights.map((a) => {
    if (a.shape.length !== 2) return a;
    // the compressor's own quantizer: per row for the embeddings, per output column for the rest
    const axis = channelAxis(a.name, a.shape);
    const { q, scales } = quantizeArray(a.data as Float32Array, a.shape, { bits: 8, scheme: 'per-channel', axis });
    return { name: a.name, dtype: 'int8' as const, shape: a.shape, data: q, scales, axis };
  }));
  const pruned = save('pruned', weights.map((a) => {
    if (a.shape.length !== 2) return a;
    const w = Float32Array.from(a.data as Float32Array);
    const cut = [...w].map(Math.abs).sort((x, y) => x - y)[Math.floor(w.length / 2)];
    for (let i = 0; i < w.length; i++) if (Math.abs(w[i]) < cut) w[i] = 0;
    return { ...a, data: w };
  }));
  return { fp32, int8, pruned };
}
