/**
 * Generation speed with the KV cache (src/model/kv.ts's KvDecoder, what kd serve and kd eval decode
 * with), on kd's default backend, one sequence (batch 1), greedy. Prints one JSON line:
 * - `student` / `teacher`: tokens/s generating 96 tokens after a 32-token prompt (prompt prefill
 *   included, as a user waits for it; the median of 5 runs), and `ratio` = student / teacher tokens/s. The student has the
 *   demo pipeline's shape (vocab 1024, d 80, 2 layers, 4 heads; random weights: speed does not depend on
 *   them) with a 512-token context; the teacher is the embedded one (checkpoints/teacher: vocab 4096,
 *   d 192, 4 layers, context 128).
 * - `per_token_ms`: the median time of one decoding step (one new token against the cache, its
 *   log-probs read back) when the context holds ≈ N tokens (the 16 steps ending at N, 8 times, the two
 *   contexts taking turns), at N = 32 and 512 for the student and 32 and 128 (its whole context) for the
 *   teacher; `ratio_long_to_32` says how much a token costs at the long context relative to 32 (≈ 1 when
 *   the cost does not grow with context).
 *   `no_cache_ms` is the same step without the cache (the whole context run again, nextTokenLogProbs):
 *   what the cache saves.
 * - `kv_step`: how a step ran — `native kernels` (the whole step as kernel calls, the cache in place) or
 *   `tfjs ops` (KD_NATIVE=0, the cpu backend without the addon, an addon built before decodeAttention).
 *
 *   npm run bench:generate
 */
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.js';
import { inPlaceKernels } from '../src/backend/io.js';
import { type ModelConfig, REFERENCE_CONFIG, parameterCount } from '../src/model/config.js';
import { type Model, disposeModel, initModel, nextTokenLogProbs } from '../src/model/gpt.js';
import { KvDecoder } from '../src/model/kv.js';
import { loadServedModel } from '../src/serve/model.js';
import { Rng } from '../src/core/rng.js';

const round = (v: number, d = 2) => Number(v.toFixed(d));
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const argmax = (a: ArrayLike<number>) => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i; return b; };

function prompt(m: Model, n: number, seed: number): number[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.int(m.config.vocabSize));
}

/** One decoding step: log-probs of the next token, read back, the greedy id. */
function step(dec: KvDecoder, ids: number[]): number {
  const lp = dec.next([ids]);
  const id = argmax(lp.dataSync());
  lp.dispose();
  return id;
}

/** tokens/s for `n` tokens after a prompt of `p` (prefill included). */
function tokensPerSecond(m: Model, p: number, n: number): number {
  const dec = new KvDecoder(m);
  const t0 = performance.now();
  let id = step(dec, prompt(m, p, 1));
  for (let i = 1; i < n; i++) id = step(dec, [id]);
  const s = (performance.now() - t0) / 1000;
  dec.dispose();
  return n / s;
}

/** ms of the 16 one-token steps whose contexts end at `ctx` (a fresh decoder with the same prompt each time) */
function kvSteps(m: Model, ctx: number): number[] {
  const steps = 16;
  const ids = prompt(m, ctx - steps, 2);
  const dec = new KvDecoder(m);
  let id = step(dec, ids);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    id = step(dec, [id]);
    times.push(performance.now() - t0);
  }
  dec.dispose();
  return times;
}

/** median ms of one step without the cache at context `ctx` (nextTokenLogProbs over the whole context) */
function noCache(m: Model, ctx: number): number {
  const ids = prompt(m, ctx, 2);
  const full: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const x = tf.tensor2d(Int32Array.from(ids), [1, ctx], 'int32');
    const lp = nextTokenLogProbs(m, x);
    argmax(lp.dataSync());
    tf.dispose([x, lp]);
    full.push(performance.now() - t0);
  }
  return median(full);
}

/**
 * Per-token ms at contexts 32 and `long`: the median of ROUNDS × 16 steps at each, the two contexts taking
 * turns (a step is a fraction of a millisecond: one run of 16 is at the mercy of a busy machine).
 */
const ROUNDS = 8;
function perToken(m: Model, long: number): { kv: [number, number]; noCache: [number, number] } {
  const a: number[] = [], b: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    a.push(...kvSteps(m, 32));
    b.push(...kvSteps(m, long));
  }
  return { kv: [round(median(a), 3), round(median(b), 3)], noCache: [round(noCache(m, 32), 3), round(noCache(m, long), 3)] };
}

function measure(m: Model, long: number) {
  tokensPerSecond(m, 32, 16); // warm-up: kernels, caches
  const tps = median(Array.from({ length: 5 }, () => tokensPerSecond(m, 32, 96)));
  const { kv, noCache: nc } = perToken(m, long);
  return {
    params: parameterCount(m.config), context: m.config.seqLen, tokens_per_s: round(tps, 1),
    per_token_ms: { 32: kv[0], [long]: kv[1], ratio_long_to_32: round(kv[1] / kv[0], 3) },
    no_cache_ms: { 32: nc[0], [long]: nc[1], ratio_long_to_32: round(nc[1] / nc[0], 3) },
  };
}

const info = await initBackend({});
const studentConfig: ModelConfig = { ...REFERENCE_CONFIG, vocabSize: 1024, dModel: 80, nLayers: 2, nHeads: 4, seqLen: 512 };
const student = initModel(studentConfig, 1);
const teacher = loadServedModel(path.resolve(import.meta.dirname, '../checkpoints/teacher')).model;
const s = measure(student, 512);
const t = measure(teacher, teacher.config.seqLen);
disposeModel(student);
disposeModel(teacher);
process.stdout.write(JSON.stringify({
  bench: 'generate', date: new Date().toISOString(), backend: info.backend, matmul: info.matmul, cpus: os.cpus().length, load_avg_1m: round(os.loadavg()[0]),
  kv_step: inPlaceKernels()?.decodeAttention ? 'native kernels' : 'tfjs ops',
  student: s, teacher: t, ratio: round(s.tokens_per_s / t.tokens_per_s, 2),
}) + '\n');
