/**
 * Training throughput at three sizes, each beside PyTorch in the same run, printed as one JSON line:
 *   ref  the reference student (vocab 8192, d 128, 2 layers, 4 heads, seq 128, batch 16): 1.46M parameters
 *   4x   d 256, 5 layers, 8 heads, seq 128, batch 16: 6.07M (4.16× the reference)
 *   16x  d 512, 6 layers, 8 heads, seq 512, batch 8: 23.3M (16.0×)
 * all with top-k 20 soft labels. For each size kd trains in its own child process (so its peak RSS is
 * its own: process.resourceUsage().maxRSS, worker threads included), then bench/torch_reference.py
 * (unchanged, the same model: see its docstring) runs the same config through bench/torch_bench.py,
 * which adds the trainer's peak RSS (getrusage of the child). Machines are noisy: only ratios taken in
 * the same run mean anything.
 *
 * MFU: model FLOPs (3 × forward FLOPs per token, model/config.ts flopsPerToken, × tokens/s) over the
 * peak GEMM FLOP/s measured in the same run: kd's matmul (its native kernel when built, one thread)
 * times the workers; torch.matmul with all its threads for PyTorch (square float32 GEMMs of 512, 1024,
 * 2048; the best).
 *
 *   npm run bench:train [-- --sizes ref,4x,16x --steps N --warmup N --workers 2 --no-torch]
 * (steps/warmup default per size: ref 6/2, 4x 4/1, 16x 2/1)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { type ModelConfig, REFERENCE_CONFIG, flopsPerToken, parameterCount } from '../src/model/config.js';
import { resolveTrainConfig } from '../src/train/config.js';
import { syntheticTeacher } from '../src/data/synthetic.js';
import { LocalStepper, type Stepper } from '../src/train/step.js';
import { ParallelStepper } from '../src/train/parallel.js';
import { defaultWorkers } from '../src/train/config.js';

/** steps/warmup: defaults per size (the 16× step is ~40× the reference's), --steps/--warmup override them */
interface Size { model: ModelConfig; batchSize: number; steps: number; warmup: number }
const SIZES: Record<string, Size> = {
  ref: { model: REFERENCE_CONFIG, batchSize: 16, steps: 6, warmup: 2 },
  '4x': { model: { ...REFERENCE_CONFIG, dModel: 256, nLayers: 5, nHeads: 8 }, batchSize: 16, steps: 4, warmup: 1 },
  '16x': { model: { ...REFERENCE_CONFIG, dModel: 512, nLayers: 6, nHeads: 8, seqLen: 512 }, batchSize: 8, steps: 2, warmup: 1 },
};
const TOP_K = 20;

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const stepsOf = (s: Size) => Number(arg('steps', String(s.steps)));
const warmupOf = (s: Size) => Number(arg('warmup', String(s.warmup)));
const backendName = arg('backend', process.env.KD_BACKEND ?? '');

const here = path.dirname(fileURLToPath(import.meta.url));
const torchRef = path.resolve(here, 'torch_reference.py');
const torchBench = path.join(here, 'torch_bench.py');
const round = (v: number, d = 1) => Number(v.toFixed(d));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Peak GFLOP/s of the backend's 2-D matmul (kd's native kernel when built): square GEMMs, the best. */
function matmulPeak(): { gflops: number; at: number; bySize: Record<string, number> } {
  const bySize: Record<string, number> = {};
  for (const n of [512, 1024, 2048]) {
    const a = tf.randomNormal([n, n]) as tf.Tensor2D, b = tf.randomNormal([n, n]) as tf.Tensor2D;
    tf.matMul(a, b).dispose();
    const times: number[] = [];
    const start = performance.now();
    while (times.length < 3 || (performance.now() - start < 1000 && times.length < 20)) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      c.dataSync();
      times.push(performance.now() - t0);
      c.dispose();
    }
    tf.dispose([a, b]);
    bySize[n] = round((2 * n ** 3) / (Math.min(...times) / 1000) / 1e9, 2);
  }
  const at = Number(Object.keys(bySize).reduce((x, y) => (bySize[x] >= bySize[y] ? x : y)));
  return { gflops: bySize[at], at, bySize };
}

/** Child: kd's steps for one size, or the matmul peak. */
async function child(what: string): Promise<void> {
  const info = await initBackend(backendName ? { backend: backendName } : {});
  if (what === 'peak') {
    const p = matmulPeak();
    process.stdout.write(JSON.stringify({ gemm_peak_gflops: p.gflops, at: p.at, by_size: p.bySize, backend: info.backend, matmul: info.matmul, threads: info.threads }) + '\n');
    return;
  }
  const { model, batchSize } = SIZES[what];
  const steps = stepsOf(SIZES[what]), warmup = warmupOf(SIZES[what]);
  const T = model.seqLen;
  const c = resolveTrainConfig({ steps: warmup + steps, batchSize, seqLen: T, lr: 3e-4, weightDecay: 0.01, gradClip: 1, loss: { divergence: 'forward-kl', temperature: 2, alpha: 0, beta: 0.5 } });
  const src = syntheticTeacher({ vocabSize: model.vocabSize, seqLen: T, batchSize, topK: TOP_K, seed: 0 }).open();
  const workers = Number(arg('workers', String(defaultWorkers(info.backend, batchSize))));
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
    process.stderr.write(`bench:train ${what}: step ${s + 1}/${warmup + steps} ${Math.round(performance.now() - t0)} ms\n`);
  }
  await stepper.release(false);
  const stepMs = median(times);
  process.stdout.write(JSON.stringify({
    backend: info.backend, matmul: info.matmul, workers, threads_per_worker: info.threads,
    tokens_per_s: round((batchSize * T) / (stepMs / 1000)), step_ms_median: round(stepMs), steps, warmup, loss: round(loss, 4),
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024),
  }) + '\n');
}

function runChild(what: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', what, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

function torchAvailable(): string | null {
  if (args.includes('--no-torch')) return 'skipped (--no-torch)';
  if (!fs.existsSync('/usr/bin/python3')) return 'no /usr/bin/python3';
  if (!fs.existsSync(torchRef)) return `no ${torchRef}`;
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'torch not installed (apt-get install -y python3-torch libopenblas0-pthread)';
  }
}

function runTorch(size: Size, dir: string, name: string): Record<string, unknown> {
  const m = size.model;
  const cfg = path.join(dir, `${name}.json`);
  fs.writeFileSync(cfg, JSON.stringify({ vocab_size: m.vocabSize, d_model: m.dModel, n_layers: m.nLayers, n_heads: m.nHeads, ffn_mult: m.ffnMult, seq_len: m.seqLen, batch_size: size.batchSize, top_k: TOP_K, temperature: 2.0, lr: 3e-4 }));
  const out = execFileSync('/usr/bin/python3', [torchBench, 'train', torchRef, cfg, '--steps', String(stepsOf(size)), '--warmup', String(warmupOf(size))], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop()!);
}

async function main() {
  const sizes = arg('sizes', 'ref,4x,16x').split(',');
  for (const s of sizes) if (!SIZES[s]) throw new Error(`unknown size "${s}" (known: ${Object.keys(SIZES).join(', ')})`);
  const noTorch = torchAvailable();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-bench-train-'));
  try {
    const kdPeak = runChild('peak');
    const torchPeak = noTorch ? null : JSON.parse(execFileSync('/usr/bin/python3', [torchBench, 'peak'], { encoding: 'utf8' }).trim());
    const results: Record<string, unknown> = {};
    for (const name of sizes) {
      const size = SIZES[name];
      const m = size.model;
      const flopsPerStepToken = 3 * flopsPerToken(m);
      const kd = runChild(name);
      const kdTps = kd.tokens_per_s as number;
      const r: Record<string, unknown> = {
        params: parameterCount(m), x_reference: round(parameterCount(m) / parameterCount(REFERENCE_CONFIG), 2),
        config: { vocab: m.vocabSize, d: m.dModel, layers: m.nLayers, heads: m.nHeads, seq: m.seqLen, batch: size.batchSize, top_k: TOP_K },
        kd: { ...kd, model_gflops: round((flopsPerStepToken * kdTps) / 1e9, 2), mfu: round((flopsPerStepToken * kdTps) / ((kdPeak.gemm_peak_gflops as number) * 1e9 * (kd.workers as number) * (kd.threads_per_worker as number)), 3) },
      };
      if (torchPeak) {
        const t = runTorch(size, dir, name);
        const tTps = t.tokens_per_s as number;
        r.torch = { tokens_per_s: tTps, step_ms_median: t.step_ms_median, threads: t.threads, peak_rss_mb: t.peak_rss_mb, loss: t.loss, params: t.params, model_gflops: round((flopsPerStepToken * tTps) / 1e9, 2), mfu: round((flopsPerStepToken * tTps) / (torchPeak.gemm_peak_gflops * 1e9), 3) };
        r.ratio_vs_torch = round(kdTps / tTps, 3);
        r.rss_ratio_vs_torch = round((kd.peak_rss_mb as number) / (t.peak_rss_mb as number), 3);
      }
      results[name] = r;
    }
    process.stdout.write(JSON.stringify({
      bench: 'train', date: new Date().toISOString(), cpus: os.cpus().length, load_avg_1m: round(os.loadavg()[0], 2),
      gemm_peak: { kd: kdPeak, torch: torchPeak ?? noTorch }, sizes: results,
    }) + '\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const ci = args.indexOf('--child');
(ci >= 0 ? child(args[ci + 1]) : main()).catch((e) => {
  process.stderr.write(`bench:train failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
