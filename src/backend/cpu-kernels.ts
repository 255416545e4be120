/**
 * Kernels we replace on the cpu backend (tfjs 4.22), for when it is the backend kd runs on:
 * - UnsortedSegmentSum, whose stock kernel costs O(numSegments · x.size) — about 100 s per training step
 *   of the reference config, 30× the rest of the step — by the O(x.size) pass of segment-sum.ts;
 * - BatchMatMul (float32), by kd's native matmul when it is built (~1 GFLOP/s in JS otherwise).
 */
import { util } from '@tensorflow/tfjs-core';
import type { DataType, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { matmulGeometry, plainFloatProduct } from './matmul-geometry.js';
import { nativeKernels } from './native.js';
import { segmentSum } from './segment-sum.js';
import { wrapKernel } from './wrap-kernel.js';

type Data = Float32Array | Int32Array | Uint8Array;
interface CpuBackend {
  data: { get(dataId: object): { values: Data } };
  makeTensorInfo(shape: number[], dtype: DataType, values: Data): TensorInfo;
}

let registered = false;

/** Register our cpu kernels; call after importing the cpu backend. */
export function registerCpuKernels(): void {
  if (registered) return;
  registered = true;
  wrapKernel<Kernel>('UnsortedSegmentSum', 'cpu', () => unsortedSegmentSum);
  wrapKernel<Kernel>('BatchMatMul', 'cpu', (orig) => (args) => batchMatMul(args, orig));
}

type Args = { inputs: Record<string, TensorInfo>; backend: CpuBackend; attrs: NamedAttrMap };
type Kernel = (args: Args) => TensorInfo;

function batchMatMul(args: Args, orig: Kernel): TensorInfo {
  const { inputs: { a, b }, backend } = args;
  const native = nativeKernels();
  if (!native || !plainFloatProduct(a, b)) return orig(args);
  const tA = args.attrs.transposeA as boolean, tB = args.attrs.transposeB as boolean;
  const { m, k, n, outBatch, aIdx, bIdx } = matmulGeometry(a, b, tA, tB);
  const out = new Float32Array(aIdx.length * m * n);
  native.gemm(backend.data.get(a.dataId).values as Float32Array, aIdx.map((i) => i * m * k),
    backend.data.get(b.dataId).values as Float32Array, bIdx.map((i) => i * k * n), out, 0, m, n, k, tA, tB);
  return backend.makeTensorInfo([...outBatch, m, n], 'float32', out);
}

function unsortedSegmentSum({ inputs: { x, segmentIds }, backend, attrs }: Args): TensorInfo {
  const numSegments = attrs.numSegments as number;
  const innerShape = x.shape.slice(segmentIds.shape.length);
  const inner = util.sizeFromShape(innerShape);
  const out = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  segmentSum(out, backend.data.get(x.dataId).values, backend.data.get(segmentIds.dataId).values, numSegments, inner);
  return backend.makeTensorInfo([numSegments, ...innerShape], x.dtype, out);
}
