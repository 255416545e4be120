/**
 * GFLOP/s of every matmul a training step of the reference config runs (2,048 tokens, d 128, vocab 8192,
 * ffn 512, 4 heads of 32, T 128), on wasm: the stock kernel (`stock`), ours on XNNPACK (`xnnpack`) and
 * kd's native matmul (`native`, when built). Prints one JSON line.
 *
 * Each product A[m×k]·B[k×n] comes in the three forms a step uses: `plain`, `bT` = [m×n]·[k×n]ᵀ (the
 * gradient w.r.t. A) and `aT` = [m×k]ᵀ·[m×n] (the gradient w.r.t. B). Run: npx tsx bench/matmul.ts
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import path from 'node:path';
import { registerWasmKernels } from '../src/backend/wasm-kernels.js';
import { nativeKernels, nativeStatus, setNativeEnabled } from '../src/backend/native.js';

const N = 2048, d = 128, V = 8192, F = 512, BH = 64, T = 128, hd = 32;
const products: [string, number, number, number, number][] = [
  // name, batch, m, k, n
  ['qkv', 1, N, d, 3 * d],
  ['attn.proj', 1, N, d, d],
  ['mlp.fc', 1, N, d, F],
  ['mlp.out', 1, N, F, d],
  ['head (dLogits·wte; bT = logits, aT = wte grad)', 1, N, V, d],
  ['attn q·kᵀ', BH, T, hd, T],
  ['attn p·v', BH, T, T, hd],
];
const forms = ['plain', 'bT', 'aT'] as const;

function gflops(batch: number, m: number, k: number, n: number, form: (typeof forms)[number]): number {
  const shapes = { plain: [[m, k], [k, n]], bT: [[m, n], [k, n]], aT: [[m, k], [m, n]] }[form];
  const [a, b] = shapes.map((s) => tf.randomNormal(batch > 1 ? [batch, ...s] : s));
  const run = () => tf.matMul(a, b, form === 'aT', form === 'bT').dispose();
  run(); // warm-up
  const times: number[] = [];
  const start = performance.now();
  while (times.length < 3 || (performance.now() - start < 1000 && times.length < 20)) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  tf.dispose([a, b]);
  return Number(((2 * batch * m * k * n) / (Math.min(...times) * 1e6)).toFixed(2));
}

function measure(): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [name, batch, m, k, n] of products) {
    const key = `${name} ${batch > 1 ? `${batch}×` : ''}[${m}×${k}]·[${k}×${n}]`;
    out[key] = Object.fromEntries(forms.map((f) => [f, gflops(batch, m, k, n, f)]));
  }
  return out;
}

// Set the backend up by hand (not initBackend, which registers our kernels first) to time the stock kernels.
const wasm = await import('@tensorflow/tfjs-backend-wasm');
const require = createRequire(import.meta.url);
wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep);
if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');
const before = measure();
registerWasmKernels();
setNativeEnabled(false);
const xnnpack = measure();
setNativeEnabled(true);
const native = nativeKernels() ? measure() : undefined;
const result = Object.fromEntries(Object.keys(before).map((k) => [k, { stock: before[k], xnnpack: xnnpack[k], ...(native ? { native: native[k] } : {}) }]));
console.log(JSON.stringify({ unit: 'GFLOP/s', threads: wasm.getThreadsCount(), tfjs: tf.version_core, native: nativeStatus().detail, result }));
