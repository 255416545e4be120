/** What a killed run leaves behind — log lines past its checkpoint, a half-written checkpoint — is cleaned on resume. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { syntheticTeacher } from '../../src/data/synthetic.js';
import { train } from '../../src/train/trainer.js';

const model = resolveModelConfig({ vocabSize: 32, seqLen: 8, dModel: 8, nLayers: 1, nHeads: 2 });
const config = (steps: number) => resolveTrainConfig({ steps, batchSize: 2, seqLen: 8, lr: 3e-3, warmupSteps: 1, logEvery: 1, evalEvery: 0, checkpointEvery: 0 });
const data = () => syntheticTeacher({ vocabSize: 32, seqLen: 8, batchSize: 2, topK: 4, seed: 1 });

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('resume after a kill', () => {
  it('logs each step once and leaves no checkpoint.kdc.tmp-* files', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-resume-'));
    await train({ model, config: config(2), data: data(), outDir: dir }); // checkpoint at step 2
    // killed later: step 3 was logged, its checkpoint was being written
    const log = path.join(dir, 'train-log.jsonl');
    fs.appendFileSync(log, JSON.stringify({ step: 3, loss: 1 }) + '\n' + '{"step":4,"lo');
    fs.writeFileSync(path.join(dir, 'checkpoint.kdc.tmp-99999-1'), 'half');
    await train({ model, config: config(4), data: data(), outDir: dir, resume: true });
    const steps = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step as number);
    expect(steps).toEqual([1, 2, 3, 4]);
    expect(fs.readdirSync(dir).sort()).toEqual(['checkpoint.kdc', 'train-log.jsonl']);
  });
});
