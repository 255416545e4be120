/**
 * Our wasm kernels (src/backend/wasm-kernels.ts) against the cpu backend on small random inputs, and a
 * whole training step's gradients on wasm against cpu.
 */
// The @tensorflow/tfjs union package registers the gradients (tfjs-core's node bundle has none) and the cpu backend.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { registerWasmKernels } from '../../src/backend/wasm-kernels.js';
import { nativeKernels, nativeStatus, setNativeEnabled } from '../../src/backend/native.js';
import { resolveModelConfig } from '../../src/model/config.js';
import { disposeModel, forwardLogits, initModel } from '../../src/model/gpt.js';
import { KvDecoder } from '../../src/model/kv.js';

type Data = Float32Array | Int32Array | Uint8Array;

/** Deterministic N(0, 1) floats. */
function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}
const rand = (shape: number[], seed = shape.reduce((a, b) => a * 31 + b, 7)) =>
  tf.tensor(randn(shape.reduce((a, b) => a * b, 1), seed), shape);

/** Run `f` on cpu and on wasm; return each backend's output shapes and values. */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<{ cpu: [number[], Data][]; wasm: [number[], Data][] }> {
  const run = async (backend: string): Promise<[number[], Data][]> => {
    await tf.setBackend(backend);
    const out = tf.tidy(f);
    const ts = Array.isArray(out) ? out : [out];
    const r = await Promise.all(ts.map(async (t): Promise<[number[], Data]> => [t.shape, (await t.data()) as Data]));
    tf.dispose(ts);
    return r;
  };
  const cpu = await run('cpu');
  return { cpu, wasm: await run('wasm') };
}

function maxAbsDiff(a: Data, b: Data): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function expectSame(f: () => tf.Tensor | tf.Tensor[], tol = 1e-4): Promise<void> {
  const { cpu, wasm } = await onBoth(f);
  expect(wasm.map(([shape]) => shape)).toEqual(cpu.map(([shape]) => shape));
  cpu.forEach(([, want], i) => expect(maxAbsDiff(wasm[i][1], want)).toBeLessThan(tol));
}

beforeAll(async () => {
  const info = await initBackend({ backend: 'wasm' });
  expect(info.tfBackend).toBe('wasm');
  const wrapped = tf.getKernel('BatchMatMul', 'wasm');
  registerWasmKernels(); // initBackend already did: must be a no-op
  expect(tf.getKernel('BatchMatMul', 'wasm')).toBe(wrapped);
});

describe('UnsortedSegmentSum on wasm', () => {
  it('is registered', () => {
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeDefined();
  });
  it('sums rows with repeated ids; unused segments are 0', async () => {
    const ids = [3, 0, 3, 1, 3, 0];
    await expectSame(() => tf.unsortedSegmentSum(rand([6, 3, 2]), tf.tensor1d(ids, 'int32'), 5));
  });
  it('sums int32 data', async () => {
    await expectSame(() => tf.unsortedSegmentSum(tf.tensor1d([5, -2, 7, 1], 'int32'), tf.tensor1d([1, 1, 0, 1], 'int32'), 2));
  });
});

describe('GatherV2 on wasm', () => {
  it('batchDims 0: float rows, inner axis, int32 data', async () => {
    const idx = tf.tensor1d([4, 0, 4, 2], 'int32');
    await expectSame(() => tf.gather(rand([5, 3]), idx));
    await expectSame(() => tf.gather(rand([2, 5, 3]), tf.tensor2d([[1, 0], [4, 4]], [2, 2], 'int32'), 1));
    await expectSame(() => tf.gather(tf.tensor2d([[1, 2], [3, 4], [5, 6]], [3, 2], 'int32'), tf.tensor1d([2, 2, 0], 'int32')));
  });
  it('batchDims 0, slices of 16 and more (copied whole): embedding rows, rank 3, int32', async () => {
    const idx = tf.tensor1d([4, 0, 4, 2, 1], 'int32');
    await expectSame(() => tf.gather(rand([5, 40]), idx));
    await expectSame(() => tf.gather(rand([5, 2, 20]), idx));
    await expectSame(() => tf.gather(tf.reshape(tf.range(0, 5 * 17, 1, 'int32'), [5, 17]), idx));
    await expectSame(() => tf.gather(rand([3, 5, 16]), idx, 1));
  });
  it('rejects an index out of range', async () => {
    await tf.setBackend('wasm');
    expect(() => tf.gather(rand([5, 40]), tf.tensor1d([5], 'int32'))).toThrow(/not in \[0, 4\]/);
  });
  it('batchDims 1 (tfjs#8658), with outer dims and int32 data', async () => {
    const idx = tf.tensor2d([[2, 0], [1, 1], [0, 2]], [3, 2], 'int32');
    await expectSame(() => tf.gather(rand([3, 3, 4]), idx, 1, 1));
    await expectSame(() => tf.gather(rand([3, 2, 3]), idx, 2, 1));
    await expectSame(() => tf.gather(tf.reshape(tf.range(0, 27, 1, 'int32'), [3, 9]), idx, 1, 1));
  });
  it('batchDims 2', async () => {
    const idx = tf.tensor3d([[[1], [0]], [[2], [2]]], [2, 2, 1], 'int32');
    await expectSame(() => tf.gather(rand([2, 2, 3, 2]), idx, 2, 2));
  });
});

/** What runs BatchMatMul on wasm: each micro-kernel of kd's native matmul this CPU has, and XNNPACK. */
const native = nativeKernels();
const engines = [...(native?.kernels() ?? []), 'xnnpack'];
function useEngine(engine: string): void {
  setNativeEnabled(engine !== 'xnnpack');
  if (engine !== 'xnnpack') expect(native!.useKernel(engine)).toBe(true);
}

describe('kd native matmul', () => {
  it('is built by npm install (set KD_SKIP_NATIVE=1 to build without it)', () => {
    if (process.env.KD_SKIP_NATIVE === '1') return;
    expect(nativeStatus().detail).toMatch(/^(avx512|avx2|generic)$/);
    expect(nativeStatus().loaded).toBe(true);
  });
  it('rejects operands outside their arrays instead of reading past them', () => {
    if (!native) return;
    const heap = new Float32Array(16);
    expect(() => native.gemm(heap, new Int32Array([0]), heap, new Int32Array([8]), heap, 14, 2, 2, 4, false, false)).toThrow(/outside its array/);
    expect(() => native.gemm(heap, new Int32Array([0]), heap, new Int32Array([0]), heap, 0, 2, 2, 2, false, false)).not.toThrow();
    expect(() => native.gemm(heap, new Int32Array([0]), heap, new Int32Array([0]), new Float32Array(3), 0, 2, 2, 2, false, false)).toThrow(/outside its array/);
  });
});

describe.runIf(native)('kd native matmul of a few rows (a decoding step: no packing)', () => {
  it('1 to 5 rows (the blocked path from 5), with and without a transposed B, against float64', () => {
    for (const M of [1, 2, 3, 4, 5]) for (const N of [1, 17, 300]) for (const K of [1, 20, 300]) for (const tB of [false, true]) {
      const a = randn(M * K, M + N + K), b = randn(K * N, 7 * M + N), c = new Float32Array(M * N).fill(NaN);
      native!.gemm(a, new Int32Array([0]), b, new Int32Array([0]), c, 0, M, N, K, false, tB);
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let want = 0;
        for (let p = 0; p < K; p++) want += a[i * K + p] * b[tB ? j * K + p : p * N + j];
        expect(Math.abs(c[i * N + j] - want), `M ${M} N ${N} K ${K} tB ${tB} (${i}, ${j})`).toBeLessThan(1e-5 * Math.max(1, Math.sqrt(K)));
      }
    }
  });
});

describe.runIf(native?.decodeAttention)('kd native decodeAttention', () => {
  it('writes the new keys and values transposed at L.., attends causally over 0..L+i, rejects a cache too small', () => {
    const B = 2, H = 3, hd = 5, cap = 16, d = H * hd, scale = 0.4;
    for (const [L, t] of [[0, 1], [0, 9], [6, 1], [6, 3], [6, 8], [15, 1]]) {
      const kt = randn(B * H * hd * cap, L + 1), vt = randn(B * H * hd * cap, L + 2);
      const qkv = randn(B * t * 3 * d, t), out = new Float32Array(B * t * d);
      native!.decodeAttention!(qkv, kt, vt, out, B, t, L, cap, H, hd, scale);
      const at = (b: number, h: number, c: number, j: number) => ((b * H + h) * hd + c) * cap + j;
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
        for (let i = 0; i < t; i++) for (let c = 0; c < hd; c++) {
          const row = (b * t + i) * 3 * d + h * hd + c;
          expect(kt[at(b, h, c, L + i)]).toBe(qkv[row + d]);
          expect(vt[at(b, h, c, L + i)]).toBe(qkv[row + 2 * d]);
        }
        for (let i = 0; i < t; i++) {
          const n = L + i + 1, s: number[] = [];
          for (let j = 0; j < n; j++) { let x = 0; for (let c = 0; c < hd; c++) x += qkv[(b * t + i) * 3 * d + h * hd + c] * kt[at(b, h, c, j)]; s.push(x * scale); }
          const mx = Math.max(...s), e = s.map((x) => Math.exp(x - mx)), sum = e.reduce((x, y) => x + y, 0);
          for (let c = 0; c < hd; c++) {
            let want = 0;
            for (let j = 0; j < n; j++) want += (e[j] / sum) * vt[at(b, h, c, j)];
            expect(Math.abs(out[(b * t + i) * d + h * hd + c] - want), `L ${L} t ${t} b ${b} h ${h} i ${i} c ${c}`).toBeLessThan(1e-5);
          }
        }
      }
    }
    const small = new Float32Array(B * H * hd * cap);
    expect(() => native!.decodeAttention!(new Float32Array(B * 2 * 3 * d), small, small, new Float32Array(B * 2 * d), B, 2, 15, cap, H, hd, scale)).toThrow(/L \+ t <= cap/);
  });
});

describe.each(native?.kernels() ?? [])('kd native matmul, %s micro-kernel, against float64', (kernel) => {
  beforeAll(() => expect(native!.useKernel(kernel)).toBe(true));
  afterAll(() => native!.useKernel(native!.kernels()[0]));
  it('every tile edge and block boundary, all four transposes, batched with offsets', () => {
    const sizes = [1, 2, 5, 6, 7, 11, 12, 13, 17, 31, 32, 33, 191, 192, 193, 255, 256, 257];
    let seed = 1;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    for (let trial = 0; trial < 60; trial++) {
      const [M, N, K] = [0, 1, 2].map(() => sizes[Math.floor((rnd() + 0.5) * sizes.length)]);
      const [tA, tB] = [trial % 2 === 1, (trial >> 1) % 2 === 1];
      const batch = 1 + (trial % 3);
      const pad = 3; // operands start at odd offsets inside one heap
      const heap = Float32Array.from({ length: pad + batch * (M * K + K * N + M * N) }, rnd);
      const ao = Int32Array.from({ length: batch }, (_, i) => pad + i * M * K);
      const bo = Int32Array.from({ length: batch }, (_, i) => pad + batch * M * K + i * K * N);
      const cOff = pad + batch * (M * K + K * N);
      native!.gemm(heap, ao, heap, bo, heap, cOff, M, N, K, tA, tB);
      for (let b = 0; b < batch; b++) {
        for (let probe = 0; probe < 12; probe++) {
          const i = Math.floor((rnd() + 0.5) * M), j = Math.floor((rnd() + 0.5) * N);
          let want = 0;
          for (let p = 0; p < K; p++) want += heap[ao[b] + (tA ? p * M + i : i * K + p)] * heap[bo[b] + (tB ? j * K + p : p * N + j)];
          const got = heap[cOff + b * M * N + i * N + j];
          expect(Math.abs(got - want), `M ${M} N ${N} K ${K} tA ${tA} tB ${tB} batch ${b} (${i}, ${j})`).toBeLessThan(1e-5 * Math.max(1, Math.sqrt(K)));
        }
      }
    }
  });
  it('every entry, on shapes that fill whole panels and leave remainders (the packing\'s vector and scalar paths)', () => {
    let seed = 3;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    // rows and columns: whole 6/12-row and 16/32-column panels and one more; depth: whole 8s, a remainder, past KC
    for (const [M, N, K] of [[12, 32, 8], [24, 64, 16], [25, 33, 17], [13, 65, 9], [36, 96, 264], [7, 17, 23]]) {
      for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]]) {
        const a = Float32Array.from({ length: M * K }, rnd), b = Float32Array.from({ length: K * N }, rnd);
        const c = new Float32Array(M * N).fill(NaN);
        native!.gemm(a, Int32Array.of(0), b, Int32Array.of(0), c, 0, M, N, K, tA, tB);
        for (let i = 0; i < M; i++)
          for (let j = 0; j < N; j++) {
            let want = 0;
            for (let p = 0; p < K; p++) want += a[tA ? p * M + i : i * K + p] * b[tB ? j * K + p : p * N + j];
            const got = c[i * N + j];
            if (!(Math.abs(got - want) < 1e-5 * Math.sqrt(K)))
              throw new Error(`M ${M} N ${N} K ${K} tA ${tA} tB ${tB} (${i}, ${j}): ${got} vs ${want}`);
          }
      }
    }
  });
});

describe.each(native?.kernels() ?? [])('kd native causal products (attention\'s), %s micro-kernel', (kernel) => {
  beforeAll(() => expect(native!.useKernel(kernel)).toBe(true));
  afterAll(() => native!.useKernel(native!.kernels()[0]));
  it('bit for bit the full product where it matters, across tile edges and depth blocks (T past 256 and 512)', () => {
    let seed = 5;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    for (const [T, n] of [[1, 3], [5, 4], [6, 16], [7, 5], [33, 32], [130, 17], [300, 64], [530, 8]]) {
      for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]]) {
        // lower_c: S [T × T] = op(A)[T × n]·op(B)[n × T], only the entries on and below the diagonal are used
        const a = Float32Array.from({ length: T * n }, rnd), b = Float32Array.from({ length: n * T }, rnd);
        const full = new Float32Array(T * T), got = new Float32Array(T * T).fill(NaN);
        native!.gemm(a, Int32Array.of(0), b, Int32Array.of(0), full, 0, T, T, n, tA, tB);
        native!.gemmCausal!(a, b, got, T, T, n, tA, tB, 1);
        for (let i = 0; i < T; i++)
          for (let j = 0; j <= i; j++) if (!Object.is(got[i * T + j], full[i * T + j])) throw new Error(`lower_c T ${T} n ${n} tA ${tA} tB ${tB} (${i}, ${j}): ${got[i * T + j]} vs ${full[i * T + j]}`);
        // lower_a / upper_a: O [T × n] = op(P)[T × T]·op(B)[T × n] with op(P) triangular (zeros stored explicitly)
        for (const causal of [2, 3] as const) {
          const P = Float32Array.from({ length: T * T }, rnd);
          for (let i = 0; i < T; i++)
            for (let j = 0; j < T; j++) {
              const [r, c] = tA ? [j, i] : [i, j]; // op(P)[r, c] is stored at P[i, j]
              if (causal === 2 ? c > r : c < r) P[i * T + j] = 0;
            }
          const v = Float32Array.from({ length: T * n }, rnd);
          const want = new Float32Array(T * n), out = new Float32Array(T * n).fill(NaN);
          native!.gemm(P, Int32Array.of(0), v, Int32Array.of(0), want, 0, T, n, T, tA, tB);
          native!.gemmCausal!(P, v, out, T, n, T, tA, tB, causal);
          expect(out.every((x, k) => Object.is(x, want[k])), `causal ${causal} T ${T} n ${n} tA ${tA} tB ${tB}`).toBe(true);
        }
      }
    }
    expect(() => native!.gemmCausal!(new Float32Array(6), new Float32Array(6), new Float32Array(9), 3, 3, 2, false, false, 2)).toThrow(/square/);
  });
});

describe.each(engines)('BatchMatMul on wasm, %s', (engine) => {
  beforeAll(() => useEngine(engine));
  afterAll(() => {
    setNativeEnabled(true);
    if (native) native.useKernel(native.kernels()[0]);
  });
  const cases: [string, number[], number[]][] = [
    ['2-D', [5, 7], [7, 3]],
    ['batch > 1', [4, 6, 8], [4, 8, 5]],
    ['attention-like', [6, 16, 8], [6, 8, 16]],
    ['a batch 1, b batch 4', [1, 5, 7], [4, 7, 3]],
    ['a batch 4, b batch 1', [4, 5, 7], [1, 7, 3]],
    ['rank 3 times rank 2', [4, 5, 7], [7, 3]],
    ['rank 4 against rank 3', [2, 3, 5, 7], [3, 7, 2]],
    ['m = 1, n = 1', [3, 1, 7], [3, 7, 1]],
    // With transposeA this is the LM-head weight gradient's shape, which takes the swapped form on XNNPACK.
    ['tall a', [96, 64], [64, 12]],
    // More rows, depth and columns than the native matmul packs at once (192, 256, 4096): partial tiles
    // on every edge and accumulation across depth blocks.
    ['beyond one block of rows', [197, 300], [300, 40]],
    ['beyond one block of depth and columns', [23, 517], [517, 4099]],
  ];
  for (const [name, sa, sb] of cases) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        it(`${name}: ${sa} · ${sb}, transposeA ${tA}, transposeB ${tB}`, async () => {
          // `name` gives the untransposed product's shapes; swap the last two dims of transposed operands.
          const t = (s: number[], on: boolean) => (on ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s);
          const ta = t(sa, tA);
          const tb = t(sb, tB);
          await expectSame(() => tf.matMul(rand(ta, 11), rand(tb, 13), tA, tB), sa[sa.length - 1] > 100 ? 5e-4 : 1e-4);
        });
      }
    }
  }
});

describe('SplitV on wasm', () => {
  it('splits along any axis, by sizes or by count, float and int32', async () => {
    await expectSame(() => tf.split(rand([2, 6, 3]), [1, 3, 2], 1));
    await expectSame(() => tf.split(rand([4, 3]), 2, 0));
    await expectSame(() => tf.split(rand([2, 3, 6]), [2, -1], 2));
    await expectSame(() => tf.split(tf.reshape(tf.range(0, 24, 1, 'int32'), [2, 3, 4]), 2, 2));
  });
});

describe('Identity on wasm', () => {
  it('clones alias the data, refcounted: the clone outlives its source, nothing leaks', async () => {
    await tf.setBackend('wasm');
    const buffers = tf.engine().backend.numDataIds();
    const x = rand([3, 4]);
    const want = Array.from(await x.data());
    const y = tf.clone(x);
    x.dispose();
    expect(Array.from(await y.data())).toEqual(want);
    y.dispose();
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
  });
});

/** A 2-layer pre-LN transformer with tied head: every op family a training step uses. */
function tinyModel(seed: number) {
  const B = 2, T = 6, d = 16, H = 2, hd = d / H, V = 24, F = 32;
  let s = seed;
  const w = (shape: number[], scale = 0.3) => tf.variable(tf.mul(rand(shape, s++), scale));
  const params = {
    wte: w([V, d]), wpe: w([T, d]), lnfG: w([d]), lnfB: w([d]),
    layers: [0, 1].map(() => ({ g1: w([d]), b1: w([d]), qkv: w([d, 3 * d]), proj: w([d, d]), g2: w([d]), b2: w([d]), fc: w([d, F]), out: w([F, d]) })),
  };
  const ids = tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % 10), [B, T], 'int32'); // repeated ids
  const targets = tf.tensor1d(Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % V), 'int32');
  const soft = tf.softmax(rand([B * T, V], 99));
  const layerNorm = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), g), b);
  };
  const geluTanh = (x: tf.Tensor) =>
    tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1));
  const geluErf = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
  const pos = tf.range(0, T, 1, 'int32');
  const causal = tf.greaterEqual(tf.reshape(pos, [T, 1]), tf.reshape(pos, [1, T]));
  const loss = (): tf.Scalar => {
    let x = tf.add(tf.reshape(tf.gather(params.wte, tf.reshape(ids, [-1])), [B * T, d]), tf.tile(params.wpe, [B, 1]));
    params.layers.forEach((L, li) => {
      const qkv = tf.matMul(layerNorm(x, L.g1, L.b1), L.qkv);
      const heads = (z: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(z, [B, T, H, hd]), [0, 2, 1, 3]), [B * H, T, hd]);
      const [q, k, v] = tf.split(qkv, 3, 1).map(heads);
      const scores = tf.reshape(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), [B, H, T, T]);
      const att = tf.reshape(tf.softmax(tf.where(causal, scores, tf.fill([B, H, T, T], -1e9))), [B * H, T, T]);
      const o = tf.reshape(tf.transpose(tf.reshape(tf.matMul(att, v), [B, H, T, hd]), [0, 2, 1, 3]), [B * T, d]);
      x = tf.add(x, tf.matMul(o, L.proj));
      const gelu = li === 0 ? geluTanh : geluErf;
      x = tf.add(x, tf.matMul(gelu(tf.matMul(layerNorm(x, L.g2, L.b2), L.fc)), L.out));
    });
    const logits = tf.matMul(layerNorm(x, params.lnfG, params.lnfB), params.wte, false, true); // [B·T, V]
    const logp = tf.logSoftmax(logits);
    // Hard labels through a flat gather (GatherNd has no gradient), soft labels as cross-entropy.
    const flat = tf.add(tf.mul(tf.range(0, B * T, 1, 'int32'), tf.scalar(V, 'int32')), targets);
    const hard = tf.neg(tf.mean(tf.gather(tf.reshape(logp, [-1]), flat)));
    const softCe = tf.neg(tf.mean(tf.sum(tf.mul(soft, logp), -1)));
    const firstTokens = tf.concat([tf.slice(logits, [0, 0], [1, V]), tf.slice(logits, [T, 0], [1, V])], 0);
    return tf.add(tf.add(hard, softCe), tf.mul(tf.mean(tf.square(firstTokens)), 0.01)) as tf.Scalar;
  };
  const vars = [params.wte, params.wpe, params.lnfG, params.lnfB, ...params.layers.flatMap((L) => Object.values(L))];
  return { loss, vars, dispose: () => tf.dispose([...vars, ids, targets, soft, pos, causal]) };
}

describe('a training step on wasm', () => {
  async function gradsOn(backend: string): Promise<{ loss: number; grads: Data[] }> {
    await tf.setBackend(backend);
    const m = tinyModel(1);
    const { value, grads } = tf.variableGrads(m.loss, m.vars);
    const out = { loss: (await value.data())[0], grads: await Promise.all(m.vars.map((v) => grads[v.name].data() as Promise<Data>)) };
    tf.dispose([value, ...Object.values(grads)]);
    m.dispose();
    return out;
  }

  it('gives the same loss and gradients as cpu', async () => {
    const cpu = await gradsOn('cpu');
    const wasm = await gradsOn('wasm');
    expect(Math.abs(wasm.loss - cpu.loss)).toBeLessThan(1e-4);
    const worst = Math.max(...cpu.grads.map((g, i) => maxAbsDiff(wasm.grads[i], g)));
    expect(worst).toBeLessThan(1e-4);
    expect(Math.max(...cpu.grads.map((g) => Math.max(...g.map(Math.abs))))).toBeGreaterThan(1e-3); // not vacuous
  });

  it('does not leak tensors (or wasm buffers) across steps', async () => {
    await tf.setBackend('wasm');
    const m = tinyModel(2);
    const counts: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { value, grads } = tf.variableGrads(m.loss, m.vars);
      tf.dispose([value, ...Object.values(grads)]);
      counts.push(`${tf.memory().numTensors} tensors, ${tf.engine().backend.numDataIds()} buffers`);
    }
    m.dispose();
    expect(new Set(counts).size).toBe(1);
  });
});

describe.runIf(native?.decodeAttention)('KV-cached decoding on wasm (the native step on views of the wasm heap)', () => {
  beforeAll(async () => { await tf.setBackend('wasm'); });
  it('gives the full forward\'s log-probs, the heap growing between steps', () => {
    const m = initModel(resolveModelConfig({ vocabSize: 50, seqLen: 150, dModel: 16, nLayers: 2, nHeads: 4 }), 9);
    const rows = [0, 1].map((b) => Array.from({ length: 100 }, (_, i) => (i * 7 + b * 13 + ((i * i) % 11)) % 50));
    const want = tf.tidy(() => tf.logSoftmax(forwardLogits(m, tf.tensor2d(rows, [2, 100], 'int32'))).arraySync() as number[][][]);
    const d = new KvDecoder(m);
    let big: tf.Tensor | undefined;
    for (let at = 0, t = 20; at < 100; at += t, t = 1) {
      if (at === 50) big = tf.zeros([8_000_000]); // 32 MB: the heap grows, views taken before it detach
      const lp = d.next(rows.map((r) => r.slice(at, at + t)));
      const got = lp.arraySync();
      lp.dispose();
      for (let b = 0; b < 2; b++) expect(maxAbsDiff(Float32Array.from(got[b]), Float32Array.from(want[b][at + t - 1])), `position ${at + t - 1}`).toBeLessThan(5e-5);
    }
    big?.dispose();
    d.dispose();
    disposeModel(m);
  });
});
