/**
 * Kernels we register for the wasm backend (tfjs 4.22) so that a training step runs there, correctly and
 * fast. The measurements behind each choice come from bench/matmul.ts (run it to reproduce them here).
 *
 * - UnsortedSegmentSum: missing on wasm; it is the gradient of gather (embeddings, picked log-probs).
 * - GatherV2: wrong values when batchDims > 0 (tensorflow/tfjs#8658, fix #8659 unmerged), and slow in
 *   every case (index arithmetic per element: the embedding lookup took 7-14 ms a step); ours copies slices.
 * - BatchMatMul: the wasm kernel only uses XNNPACK for untransposed batch-1 products; every other case,
 *   i.e. every matmul gradient and all of attention, runs a scalar triple loop 10-15× slower. When kd's
 *   native matmul is built (src/backend/native.ts) every product runs there, in place on the heap;
 *   otherwise we reduce each product to XNNPACK's fast case.
 * - Identity, SplitV: correct but copy far more than needed (see each).
 *
 * Kernels work on the wasm heap directly: `makeOutput` allocates, `typedArrayFromHeap` views. Allocate
 * every output before taking views: malloc can grow the heap, which detaches views taken earlier.
 */
import { backend_util, registerKernel, util } from '@tensorflow/tfjs-core';
import type { KernelFunc, NamedAttrMap, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { nativeKernels, type NativeKernels } from './native.js';
import { segmentSum } from './segment-sum.js';
import { matmulGeometry, plainFloatProduct } from './matmul-geometry.js';
import { wrapKernel } from './wrap-kernel.js';

/** The parts of the Emscripten module we call; its .d.ts needs @types/emscripten, which we don't carry. */
interface WasmModule {
  cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
  tfjs: { disposeData(id: number): void };
  HEAPF32: Float32Array;
}

type Args = { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: NamedAttrMap };
type Kernel = (args: Args) => TensorInfo | TensorInfo[];

let registered = false;

/** Register our wasm kernels; call after importing the wasm backend, before or after tf.setBackend. */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  registerKernel({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSum as unknown as KernelFunc });
  const wrap = (name: string, make: (orig: Kernel) => Kernel) => wrapKernel<Kernel>(name, 'wasm', make);
  wrap('GatherV2', (orig) => (args) => (args.inputs.x.dtype === 'string' ? orig(args) : gather(args)));
  wrap('BatchMatMul', (orig) => (args) => batchMatMul(args, orig));
  wrap('Identity', () => identity);
  wrap('SplitV', (orig) => (args) => (args.inputs.x.dtype === 'string' ? orig(args) : splitV(args)));
}

/** See segment-sum.ts. */
function unsortedSegmentSum({ inputs: { x, segmentIds }, backend, attrs }: Args): TensorInfo {
  const numSegments = attrs.numSegments as number;
  const innerShape = x.shape.slice(segmentIds.shape.length);
  const out = backend.makeOutput([numSegments, ...innerShape], x.dtype);
  segmentSum(backend.typedArrayFromHeap(out), backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(segmentIds), numSegments, util.sizeFromShape(innerShape));
  return out;
}

/** GatherV2: out[b, o, i, :] = x[b, o, indices[b, i], :], whole slices at a time (tfjs#8658). */
function gather({ inputs: { x, indices }, backend, attrs }: Args): TensorInfo {
  const axis = util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const info = backend_util.segment_util.collectGatherOpShapeInfo(x as Tensor, indices as Tensor, axis, attrs.batchDims as number);
  const { batchSize, outerSize, dimSize, sliceSize } = info;
  for (const j of backend.typedArrayFromHeap(indices)) {
    if (!(j >= 0 && j < dimSize)) throw new Error(`GatherV2: the index value ${j} is not in [0, ${dimSize - 1}]`);
  }
  const out = backend.makeOutput(info.outputShape, x.dtype);
  const xs = backend.typedArrayFromHeap(x);
  const idx = backend.typedArrayFromHeap(indices);
  const o = backend.typedArrayFromHeap(out);
  const perBatch = idx.length / batchSize;
  let dst = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let r = 0; r < outerSize; r++) {
      const row = (b * outerSize + r) * dimSize;
      for (let i = 0; i < perBatch; i++) {
        const src = (row + idx[b * perBatch + i]) * sliceSize;
        if (sliceSize < 16) for (let k = 0; k < sliceSize; k++) o[dst++] = xs[src + k];
        else {
          o.set(xs.subarray(src, src + sliceSize), dst);
          dst += sliceSize;
        }
      }
    }
  }
  return out;
}

/**
 * Identity aliases the data (refcounted), as on the cpu and webgl backends; tensors are immutable. The
 * wasm kernel copies, and the engine clones (Identity) every tensor it saves for the backward pass: at the
 * reference config that was ~70 ms of copies per step, 16.7M-element logits among them.
 */
function identity({ inputs: { x }, backend }: Args): TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * SplitV via heap views. The wasm kernel slices once per output, and its Slice first copies the whole
 * input out of the heap (readSync): the qkv split cost ~20 ms per layer and step.
 */
function splitV({ inputs: { x }, backend, attrs }: Args): TensorInfo[] {
  const axis = util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const sizes = backend_util.prepareSplitSize(x as Tensor, attrs.numOrSizeSplits as number | number[], axis);
  const outer = util.sizeFromShape(x.shape.slice(0, axis));
  const inner = util.sizeFromShape(x.shape.slice(axis + 1));
  const row = x.shape[axis] * inner;
  const outs = sizes.map((s) => backend.makeOutput(x.shape.map((n, i) => (i === axis ? s : n)), x.dtype));
  const xs = backend.typedArrayFromHeap(x);
  let begin = 0;
  outs.forEach((out, i) => {
    const o = backend.typedArrayFromHeap(out);
    const w = sizes[i] * inner;
    for (let r = 0; r < outer; r++) o.set(xs.subarray(r * row + begin, r * row + begin + w), r * w);
    begin += w;
  });
  return outs;
}

/**
 * [batch, rows, cols] → [batch, cols, rows]. Cache-blocked JS on the heap views: 2-4× faster than the wasm
 * Transpose kernel here (16.7M elements: ~40 ms vs ~150 ms).
 */
function transpose3d(backend: BackendWasm, t: TensorInfo, batch: number, rows: number, cols: number): TensorInfo {
  const out = backend.makeOutput([batch, cols, rows], t.dtype);
  const src = backend.typedArrayFromHeap(t);
  const dst = backend.typedArrayFromHeap(out);
  const B = 64;
  for (let b = 0; b < batch; b++) {
    const base = b * rows * cols;
    for (let i0 = 0; i0 < rows; i0 += B) {
      const ie = Math.min(i0 + B, rows);
      for (let j0 = 0; j0 < cols; j0 += B) {
        const je = Math.min(j0 + B, cols);
        for (let j = j0; j < je; j++) {
          let o = base + j * rows + i0;
          for (let s = base + i0 * cols + j, e = base + ie * cols; s < e; s += cols) dst[o++] = src[s];
        }
      }
    }
  }
  return out;
}

const matmulFns = new WeakMap<BackendWasm, (...args: unknown[]) => void>();

/** The wasm C kernel, bound once per backend; with batch 1 and no transposes it runs XNNPACK. */
function cBatchMatMul(backend: BackendWasm): (...args: unknown[]) => void {
  let f = matmulFns.get(backend);
  if (!f) {
    f = (backend.wasm as unknown as WasmModule).cwrap('BatchMatMul', null,
      ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']);
    matmulFns.set(backend, f);
  }
  return f;
}

const shapeBytes = (shape: number[]) => new Uint8Array(new Int32Array(shape).buffer);

/**
 * A tensor id for `shape` elements of `t`'s heap memory starting at element `offset`: no copy. Release it
 * with releaseView, never backend.disposeData (that would free() a pointer malloc never returned).
 */
function view(backend: BackendWasm, t: TensorInfo, offset: number, shape: number[]): number {
  const base = backend.dataIdMap.get(t.dataId)!.memoryOffset;
  const v = backend.makeOutput(shape, 'float32', base + 4 * offset);
  const { id } = backend.dataIdMap.get(v.dataId)!;
  backend.dataIdMap.delete(v.dataId);
  return id;
}

/** Forget a view id; the C side also drops the XNNPACK operator cached for it as weights. */
function releaseView(backend: BackendWasm, id: number): void {
  (backend.wasm as unknown as WasmModule).tfjs.disposeData(id);
}

/**
 * For each output batch element i, out[i] (m×n) = x[xIdx[i]] (m×k) · w[wIdx[i]] (k×n), each a plain batch-1
 * XNNPACK product on zero-copy views. When w has batch 1 and x covers the output batch, that is a single
 * (batch·m)×k product. XNNPACK packs w (~k·n work) per call, cheap next to the m·k·n product.
 */
function productsOnViews(backend: BackendWasm, x: TensorInfo, xIdx: Int32Array, w: TensorInfo, wIdx: Int32Array,
  out: TensorInfo, m: number, k: number, n: number): void {
  const f = cBatchMatMul(backend);
  const batch = xIdx.length;
  const xBatch = util.sizeFromShape(x.shape) / (m * k);
  const wBatch = util.sizeFromShape(w.shape) / (k * n);
  const [steps, rows] = wBatch === 1 && xBatch === batch ? [1, batch * m] : [batch, m];
  let wId = -1;
  for (let i = 0; i < steps; i++) {
    if (wId < 0 || wBatch > 1) {
      if (wId >= 0) releaseView(backend, wId);
      wId = view(backend, w, wIdx[i] * k * n, [k, n]);
    }
    const xId = view(backend, x, xIdx[i] * m * k, [rows, k]);
    const oId = view(backend, out, i * m * n, [rows, n]);
    f(xId, shapeBytes([1, rows, k]), 3, wId, shapeBytes([1, k, n]), 3, 0, 0, oId);
    releaseView(backend, xId);
    releaseView(backend, oId);
  }
  releaseView(backend, wId);
}

/**
 * C = op(A)·op(B) by the native matmul, reading and writing the wasm heap in place. When B is shared by
 * the whole batch and A's batch is contiguous rows, the batch is one tall product (B packed once).
 */
function nativeProduct(native: NativeKernels, backend: BackendWasm, a: TensorInfo, aIdx: Int32Array, tA: boolean,
  b: TensorInfo, bIdx: Int32Array, tB: boolean, outShape: number[], m: number, k: number, n: number): TensorInfo {
  const out = backend.makeOutput(outShape, 'float32');
  const base = (t: TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset / 4;
  const heap = (backend.wasm as unknown as WasmModule).HEAPF32; // after makeOutput: the heap may have grown
  const batch = aIdx.length;
  const sharedB = bIdx.every((v) => v === 0);
  if (sharedB && !tA && aIdx.every((v, i) => v === i)) {
    native.gemm(heap, new Int32Array([base(a)]), heap, new Int32Array([base(b)]), heap, base(out), batch * m, n, k, false, tB);
  } else {
    const ao = aIdx.map((v) => base(a) + v * m * k);
    const bo = bIdx.map((v) => base(b) + v * k * n);
    native.gemm(heap, ao, heap, bo, heap, base(out), m, n, k, tA, tB);
  }
  return out;
}

/**
 * C = op(A)·op(B) using only XNNPACK's fast case, in one of two forms:
 *   direct:  transpose the transposed operands, then C = A'·B'; XNNPACK packs B' as its weights.
 *   swapped: Cᵀ = op(B)ᵀ·op(A)ᵀ, whose operands are the *untransposed* ones transposed; A is packed; then
 *            transpose Cᵀ.
 * Cost model, fitted on bench/matmul.ts shapes: elements transposed + 2 × elements packed (packing is a
 * strided copy, and large weights stream from memory once per few output rows). Of the 21 transposed
 * cases measured it never picks a form measurably slower than the other; e.g. the LM-head weight gradient [2048×8192]ᵀ·[2048×128] goes
 * direct (170 ms) rather than swapped (410 ms), and the MLP weight gradient [2048×128]ᵀ·[2048×512] swapped.
 */
function batchMatMul(args: Args, orig: Kernel): TensorInfo | TensorInfo[] {
  const { inputs: { a, b }, backend } = args;
  const tA = args.attrs.transposeA as boolean;
  const tB = args.attrs.transposeB as boolean;
  if (!plainFloatProduct(a, b)) return orig(args);
  const { m, k, n, outBatch, aIdx, bIdx } = matmulGeometry(a, b, tA, tB);
  const native = nativeKernels();
  if (native) return nativeProduct(native, backend, a, aIdx, tA, b, bIdx, tB, [...outBatch, m, n], m, k, n);
  const batchA = util.sizeFromShape(a.shape) / (m * k);
  const batchB = util.sizeFromShape(b.shape) / (k * n);
  const sizeA = batchA * m * k;
  const sizeB = batchB * k * n;
  const sizeC = aIdx.length * m * n;
  const direct = (tA ? sizeA : 0) + (tB ? sizeB : 0) + 2 * sizeB;
  const swapped = (tA ? 0 : sizeA) + (tB ? 0 : sizeB) + sizeC + 2 * sizeA;
  const temps: TensorInfo[] = [];
  const tr = (t: TensorInfo, batch: number, rows: number, cols: number) => {
    const r = transpose3d(backend, t, batch, rows, cols);
    temps.push(r);
    return r;
  };
  let out: TensorInfo;
  if (direct <= swapped) {
    const x = tA ? tr(a, batchA, k, m) : a;
    const w = tB ? tr(b, batchB, n, k) : b;
    out = backend.makeOutput([...outBatch, m, n], 'float32');
    productsOnViews(backend, x, aIdx, w, bIdx, out, m, k, n);
  } else {
    const x = tB ? b : tr(b, batchB, k, n); // op(B)ᵀ: [batchB, n, k]
    const w = tA ? a : tr(a, batchA, m, k); // op(A)ᵀ: [batchA, k, m]
    const outT = backend.makeOutput([aIdx.length, n, m], 'float32');
    temps.push(outT);
    productsOnViews(backend, x, bIdx, w, aIdx, outT, n, k, m);
    out = transpose3d(backend, outT, aIdx.length, n, m);
    out.shape = [...outBatch, m, n];
  }
  for (const t of temps) backend.disposeData(t.dataId);
  return out;
}
