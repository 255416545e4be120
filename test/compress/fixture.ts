/** A tiny trained student on the synthetic teacher, shared by the compress tests. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveModelConfig } from '../../src/model/config.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { openData } from '../../src/data/open.js';
import { train } from '../../src/train/trainer.js';

export const tinyModel = resolveModelConfig({ vocabSize: 64, seqLen: 16, dModel: 32, nLayers: 2, nHeads: 4, ffnMult: 2 });

export const tmpDir = (prefix = 'kd-compress-') => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** Train `steps` steps on `synthetic` (the same data spec the compress stages then open). Returns the checkpoint file. */
export async function trainedCheckpoint(steps = 60, extra: { tokenizer?: unknown } = {}): Promise<string> {
  const dir = tmpDir('kd-student-');
  const config = resolveTrainConfig({
    steps, batchSize: 4, seqLen: 16, lr: 1e-2, warmupSteps: 5, logEvery: steps, evalEvery: 0, checkpointEvery: 0, evalBatches: 2,
    loss: { divergence: 'forward-kl', temperature: 1, alpha: 0, beta: 0.5 },
  });
  const data = openData('synthetic', { batchSize: 4, seqLen: 16, seed: config.seed, vocabSize: tinyModel.vocabSize, topK: 6 });
  const s = await train({ model: tinyModel, config, data: data.train, outDir: dir, tokenizer: extra.tokenizer });
  return s.checkpoint;
}
