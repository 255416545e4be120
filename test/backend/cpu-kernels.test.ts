import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { nativeKernels, setNativeEnabled } from '../../src/backend/native.js';
import { wrapKernel } from '../../src/backend/wrap-kernel.js';

/** Our cpu-backend kernels (cpu-kernels.ts), registered when kd runs on cpu, against plain references. */
beforeAll(async () => {
  expect((await initBackend({ backend: 'cpu' })).tfBackend).toBe('cpu');
});
afterEach(() => setNativeEnabled(true));

let seed = 7;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
const rand = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rnd), shape);

describe('wrapKernel', () => {
  it('replaces a kernel by a function of the original, keeping the rest of its config; a missing kernel throws', () => {
    const setupFunc = () => {};
    tf.registerKernel({ kernelName: 'KdTestOp', backendName: 'cpu', kernelFunc: (() => 'stock') as unknown as tf.KernelFunc, setupFunc });
    wrapKernel<() => string>('KdTestOp', 'cpu', (orig) => () => `ours over ${orig()}`);
    const k = tf.getKernel('KdTestOp', 'cpu')!;
    expect((k.kernelFunc as unknown as () => string)()).toBe('ours over stock');
    expect(k.setupFunc).toBe(setupFunc);
    expect(() => wrapKernel('KdNoSuchOp', 'cpu', (o) => o)).toThrow(/cpu kernel KdNoSuchOp not registered/);
    tf.unregisterKernel('KdTestOp', 'cpu');
  });
});

describe('UnsortedSegmentSum on cpu', () => {
  it('sums rows by id in one pass; ids out of range are dropped; int32 too', () => {
    const x = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]);
    const ids = tf.tensor1d([2, 0, 2, 9], 'int32');
    expect(tf.unsortedSegmentSum(x, ids, 3).arraySync()).toEqual([[3, 4], [0, 0], [6, 8]]);
    expect(tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([1, 1, 0], 'int32'), 2).arraySync()).toEqual([3, 3]);
  });
  it('is the gradient of an embedding lookup', () => {
    const w = rand([6, 3]);
    const ids = tf.tensor1d([5, 0, 5, 2], 'int32');
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, ids), tf.range(1, 13).reshape([4, 3]))))(w);
    expect(g.arraySync()).toEqual([[4, 5, 6], [0, 0, 0], [10, 11, 12], [0, 0, 0], [0, 0, 0], [8, 10, 12]]);
  });
});

describe('BatchMatMul on cpu', () => {
  /** float64 reference of op(a)·op(b) with numpy-style batch broadcasting */
  function reference(a: tf.Tensor, b: tf.Tensor, tA: boolean, tB: boolean): { shape: number[]; values: number[] } {
    const A = tA ? tf.transpose(a, [...a.shape.keys()].map((i, _, k) => (i < k.length - 2 ? i : 2 * k.length - 3 - i))) : a;
    const B = tB ? tf.transpose(b, [...b.shape.keys()].map((i, _, k) => (i < k.length - 2 ? i : 2 * k.length - 3 - i))) : b;
    const [m, k] = A.shape.slice(-2);
    const n = B.shape[B.rank - 1];
    const batchA = A.shape.slice(0, -2), batchB = B.shape.slice(0, -2);
    const len = Math.max(batchA.length, batchB.length);
    const outBatch = Array.from({ length: len }, (_, i) => Math.max(batchA[batchA.length - len + i] ?? 1, batchB[batchB.length - len + i] ?? 1));
    const av = Array.from(A.dataSync()), bv = Array.from(B.dataSync());
    const index = (dims: number[], i: number) => {
      let idx = 0, stride = 1, rem = i;
      const pad = [...new Array(outBatch.length - dims.length).fill(1), ...dims];
      for (let d = outBatch.length - 1; d >= 0; d--) {
        if (pad[d] > 1) idx += (rem % outBatch[d]) * stride;
        rem = Math.floor(rem / outBatch[d]);
        stride *= pad[d];
      }
      return idx;
    };
    const values: number[] = [];
    const count = outBatch.reduce((x, y) => x * y, 1);
    for (let t = 0; t < count; t++) {
      const ia = index(batchA, t) * m * k, ib = index(batchB, t) * k * n;
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += av[ia + i * k + p] * bv[ib + p * n + j];
        values.push(s);
      }
    }
    return { shape: [...outBatch, m, n], values };
  }

  const cases: [number[], number[]][] = [[[5, 7], [7, 3]], [[4, 6, 8], [4, 8, 5]], [[1, 5, 7], [4, 7, 3]], [[2, 3, 5, 7], [3, 7, 2]], [[3, 40, 300], [300, 33]]];
  const engines = nativeKernels() ? ['native', 'tfjs'] : ['tfjs'];
  for (const engine of engines) {
    for (const [sa, sb] of cases) {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
        it(`${engine}: ${sa} · ${sb}, transposeA ${tA}, transposeB ${tB}`, () => {
          setNativeEnabled(engine === 'native');
          const t = (s: number[], on: boolean) => (on ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s);
          const [a, b] = [rand(t(sa, tA)), rand(t(sb, tB))];
          const got = tf.matMul(a, b, tA, tB);
          const want = reference(a, b, tA, tB);
          expect(got.shape).toEqual(want.shape);
          const g = got.dataSync();
          for (let i = 0; i < g.length; i++) expect(Math.abs(g[i] - want.values[i])).toBeLessThan(1e-4);
          tf.dispose([a, b, got]);
        });
      }
    }
  }
});
