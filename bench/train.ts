/**
 * Training throughput of the reference student (vocab 8192, d 128, 2 layers, 4 heads, seq 128,
 * batch 16, top-k 20) on this machine, printed as one JSON line. When /usr/bin/python3 has torch,
 * bench/torch_reference.py runs in the same process tree right after, and the ratio is
 * printed: machines are noisy, so only the ratio means anything.
 *
 *   npm run bench:train [-- --steps 10 --warmup 2 --backend wasm --workers 2 --no-torch]
 * Model FLOP utilisation (mfu) is against the plain 2-D matmul peak measured here, times the workers.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { REFERENCE_CONFIG, flopsPerToken, parameterCount } from '../src/model/config.js';
import { resolveTrainConfig } from '../src/train/config.js';
import { syntheticTeacher } from '../src/data/synthetic.js';
import { LocalStepper, type Stepper } from '../src/train/step.js';
import { ParallelStepper } from '../src/train/parallel.js';
import { defaultWorkers } from '../src/train/config.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const steps = Number(arg('steps', '10'));
const warmup = Number(arg('warmup', '2'));
const backendName = arg('backend', process.env.KD_BACKEND ?? '');

const here = path.dirname(fileURLToPath(import.meta.url));
const torchRef = path.resolve(here, 'torch_reference.py');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Peak of the backend's plain 2-D matmul here, for model-FLOP utilisation. */
function matmulPeak(): number {
  const a = tf.randomNormal([1024, 1024]) as tf.Tensor2D, b = tf.randomNormal([1024, 1024]) as tf.Tensor2D;
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    c.dataSync();
    times.push(performance.now() - t0);
    c.dispose();
  }
  tf.dispose([a, b]);
  return (2 * 1024 ** 3) / (median(times.slice(1)) / 1000);
}

async function main() {
  const info = await initBackend(backendName ? { backend: backendName } : {});
  const model = REFERENCE_CONFIG;
  const c = resolveTrainConfig({ steps: warmup + steps, batchSize: 16, seqLen: 128, lr: 3e-4, weightDecay: 0.01, gradClip: 1, loss: { divergence: 'forward-kl', temperature: 2, alpha: 0, beta: 0.5 } });
  const src = syntheticTeacher({ vocabSize: model.vocabSize, seqLen: 128, batchSize: 16, topK: 20, seed: 0 }).open();
  const workers = Number(arg('workers', String(defaultWorkers(info.backend, 16))));
  const stepper: Stepper = workers > 1
    ? await ParallelStepper.create({ model, config: c, workers, backend: info.backend })
    : LocalStepper.create(model, c);
  const times: number[] = [];
  let loss = NaN;
  for (let s = 0; s < warmup + steps; s++) {
    const b = src.next();
    const t0 = performance.now();
    loss = (await stepper.step([b], c.lr)).loss;
    if (s >= warmup) times.push(performance.now() - t0);
  }
  await stepper.release(false);
  const stepMs = median(times);
  const tokens = 16 * 128;
  const tps = tokens / (stepMs / 1000);
  const flops = 3 * flopsPerToken(model) * tps;
  const peak = matmulPeak();
  const result: Record<string, unknown> = {
    bench: 'train', backend: info.backend, matmul: info.matmul, workers, threads_per_worker: info.threads, cpus: os.cpus().length,
    tokens_per_s: Math.round(tps * 10) / 10, step_ms_median: Math.round(stepMs * 10) / 10,
    model_gflops: Math.round(flops / 1e7) / 100, matmul_peak_gflops: Math.round(peak / 1e7) / 100, mfu: Math.round((flops / (peak * workers)) * 1000) / 1000,
    params: parameterCount(model), loss: Math.round(loss * 1e4) / 1e4, steps, warmup,
  };
  if (!args.includes('--no-torch') && fs.existsSync('/usr/bin/python3') && fs.existsSync(torchRef)) {
    try {
      const out = execFileSync('/usr/bin/python3', [torchRef, '--steps', String(steps), '--warmup', String(warmup)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const torch = JSON.parse(out.trim().split('\n').pop()!);
      result.torch = { tokens_per_s: torch.tokens_per_s, step_ms_median: torch.step_ms_median, threads: torch.threads, version: torch.torch };
      result.ratio_vs_torch = Math.round((tps / torch.tokens_per_s) * 1000) / 1000;
    } catch (e) {
      const msg = (e as { stderr?: string }).stderr ?? String(e);
      result.torch = { skipped: /No module named 'torch'/.test(msg) ? 'torch not installed (apt-get install -y python3-torch libopenblas0-pthread)' : msg.trim().split('\n').pop() };
    }
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench:train failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
