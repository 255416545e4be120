/**
 * Compression benchmark, printed as one JSON object (measured figures, no pass/fail):
 *   1. train a small student on the synthetic teacher;
 *   2. int8 per-channel: checkpoint and export size vs float32, validation KL change;
 *   3. 50% unstructured magnitude sparsity + KD fine-tuning: KL change — next to a control, the dense
 *      model fine-tuned for the same steps (on an undertrained student, extra steps alone lower KL);
 *   4. 25% of heads and MLP neurons removed + KD fine-tuning: forward-pass time ratio (same run,
 *      interleaved, median) and KL change.
 *   npm run bench:compress [-- --steps 200 --finetune-steps 60 --backend wasm]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { exportModel } from '../src/compress/export.js';
import { openCompressData, trainConfigOf, validationKl } from '../src/compress/io.js';
import { prune } from '../src/compress/prune.js';
import { quantize } from '../src/compress/quantize.js';
import { flopsPerToken, resolveModelConfig } from '../src/model/config.js';
import { type Model, disposeModel, forwardLogits } from '../src/model/gpt.js';
import { loadModel } from '../src/model/load.js';
import { resolveTrainConfig } from '../src/train/config.js';
import { openData } from '../src/data/open.js';
import { defaultWorkers } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const steps = Number(arg('steps', '200'));
const ftSteps = Number(arg('finetune-steps', '60'));

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const dirSize = (d: string) => fs.readdirSync(d).filter((f) => f === 'model.json' || f.endsWith('.bin')).reduce((s, f) => s + fs.statSync(path.join(d, f)).size, 0);

/** Median forward time of each model on the same ids, interleaved so machine noise hits both alike. */
function forwardMs(models: Model[], B: number, T: number, reps: number): number[] {
  const ids = tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i * 7) % models[0].config.vocabSize), [B, T], 'int32');
  const times = models.map(() => [] as number[]);
  for (let r = 0; r < reps + 2; r++) {
    models.forEach((m, k) => {
      const t0 = performance.now();
      const y = forwardLogits(m, ids);
      y.dataSync();
      y.dispose();
      if (r >= 2) times[k].push(performance.now() - t0); // first two rounds warm up
    });
  }
  ids.dispose();
  return times.map(median);
}

async function main() {
  const t0 = performance.now();
  const be = await initBackend(arg('backend', '') ? { backend: arg('backend', '') } : {});
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-bench-compress-'));
  const model = resolveModelConfig({ vocabSize: 256, seqLen: 64, dModel: 128, nLayers: 2, nHeads: 4, ffnMult: 4 });
  const config = resolveTrainConfig({
    steps, batchSize: 8, seqLen: 64, lr: 3e-3, minLr: 3e-4, warmupSteps: 20, logEvery: 50, evalEvery: 0, checkpointEvery: 0, evalBatches: 8,
    loss: { divergence: 'forward-kl', temperature: 1, alpha: 0, beta: 0.5 },
  });
  const workers = defaultWorkers(be.backend, config.batchSize);
  const data = openData('synthetic', { batchSize: 8, seqLen: 64, seed: 0, vocabSize: 256, topK: 20 });
  const trained = await train({ model, config, data: data.train, outDir: path.join(work, 'student'), workers, backend: be.backend });
  const ckpt = trained.checkpoint;
  const trainSec = (performance.now() - t0) / 1000;

  const q = await quantize({ checkpoint: ckpt, out: path.join(work, 'int8'), data: 'synthetic' });
  const e32 = exportModel({ checkpoint: ckpt, out: path.join(work, 'export-fp32') });
  const e8 = exportModel({ checkpoint: q.checkpoint, out: path.join(work, 'export-int8') });

  const common = { checkpoint: ckpt, data: 'synthetic', finetuneSteps: ftSteps, workers, backend: be.backend };
  const sparse = await prune({ ...common, out: path.join(work, 'sparse'), method: 'magnitude', sparsity: 0.5 });
  const gradual = await prune({ ...common, out: path.join(work, 'gradual'), method: 'magnitude', sparsity: 0.5, schedule: 'gradual' });
  const control = await prune({ ...common, out: path.join(work, 'dense-ft'), method: 'magnitude', sparsity: 0 });
  const structured = await prune({ ...common, out: path.join(work, 'structured'), method: 'structured', sparsity: 0.25 });

  const full = loadModel(ckpt).model;
  const small = loadModel(structured.checkpoint).model;
  const [msFull, msSmall] = forwardMs([full, small], 8, 64, 15);
  const loaded = loadModel(ckpt);
  const kl = validationKl(loaded.model, openCompressData('synthetic', loaded, trainConfigOf(loaded.header, model), 8).val, trainConfigOf(loaded.header, model));
  [full, small, loaded.model].forEach(disposeModel);

  const r = (x: number, d = 4) => Number(x.toPrecision(d));
  process.stdout.write(JSON.stringify({
    bench: 'compress', backend: be.backend, workers, model, trainSteps: steps, finetuneSteps: ftSteps, trainSeconds: r(trainSec, 3),
    studentValKl: r(kl),
    int8: {
      checkpointBytes: { fp32: q.bytesBefore, int8: q.bytesAfter, ratio: r(q.sizeRatio) },
      exportBytes: { fp32: dirSize(e32.dir), int8: dirSize(e8.dir), ratio: r(dirSize(e8.dir) / dirSize(e32.dir)) },
      valKl: { before: r(q.valKlBefore!), after: r(q.valKlAfter!), relChange: r(q.valKlRelChange!) },
    },
    magnitude50: {
      oneshot: { valKlBefore: r(sparse.valKlBefore), pruned: r(sparse.valKlPruned), finetuned: r(sparse.valKlAfter), relChange: r(sparse.valKlRelChange) },
      gradual: { finetuned: r(gradual.valKlAfter), relChange: r(gradual.valKlRelChange) },
      denseSameFinetune: { finetuned: r(control.valKlAfter), relChange: r(control.valKlRelChange) },
      oneshotVsDenseFinetune: r((sparse.valKlAfter - control.valKlAfter) / control.valKlAfter),
      nonzero: { before: sparse.nonzeroBefore, after: sparse.nonzeroAfter },
    },
    structured25: {
      params: { before: structured.paramsBefore, after: structured.paramsAfter },
      flopsPerToken: { before: flopsPerToken(model), after: flopsPerToken(loadModelConfig(structured.checkpoint)) },
      forwardMs: { full: r(msFull), pruned: r(msSmall), speedup: r(msFull / msSmall, 3), batch: [8, 64] },
      valKl: { before: r(structured.valKlBefore), pruned: r(structured.valKlPruned), finetuned: r(structured.valKlAfter), relChange: r(structured.valKlRelChange) },
      vsDenseFinetune: r((structured.valKlAfter - control.valKlAfter) / control.valKlAfter),
    },
    totalSeconds: r((performance.now() - t0) / 1000, 3),
  }, null, 2) + '\n');
  fs.rmSync(work, { recursive: true, force: true });
}

function loadModelConfig(file: string) {
  const m = loadModel(file);
  disposeModel(m.model);
  return m.model.config;
}

main().catch((e) => { console.error(e); process.exit(1); });
