/** The shapes of a (batched, broadcast, transposed) BatchMatMul, shared by our wasm and cpu kernels. */
import { broadcast_util, util } from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';

export interface MatmulGeometry {
  /** op(A) is m×k, op(B) k×n */
  m: number;
  k: number;
  n: number;
  /** the output's batch dims (broadcast) */
  outBatch: number[];
  /** for every output batch element, the batch element of A and of B it multiplies */
  aIdx: Int32Array;
  bIdx: Int32Array;
}

/** Both operands float32 and non-empty: the products our kernels take (the rest go to tfjs's kernel). */
export function plainFloatProduct(a: TensorInfo, b: TensorInfo): boolean {
  return a.dtype === 'float32' && b.dtype === 'float32' && util.sizeFromShape(a.shape) > 0 && util.sizeFromShape(b.shape) > 0;
}

export function matmulGeometry(a: TensorInfo, b: TensorInfo, tA: boolean, tB: boolean): MatmulGeometry {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const [m, k] = tA ? [a.shape[ra - 1], a.shape[ra - 2]] : [a.shape[ra - 2], a.shape[ra - 1]];
  const [kb, n] = tB ? [b.shape[rb - 1], b.shape[rb - 2]] : [b.shape[rb - 2], b.shape[rb - 1]];
  util.assert(k === kb, () => `Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ` +
    `${b.shape} and transposeA=${tA} and transposeB=${tB} must match.`);
  const outBatch = broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return { m, k, n, outBatch, aIdx: batchIndex(a.shape.slice(0, -2), outBatch), bIdx: batchIndex(b.shape.slice(0, -2), outBatch) };
}

/** Index into an operand's batch for every output batch element, broadcasting its size-1 dims. */
function batchIndex(dims: number[], outDims: number[]): Int32Array {
  const idx = new Int32Array(util.sizeFromShape(outDims));
  const padded = [...new Array<number>(outDims.length - dims.length).fill(1), ...dims];
  for (let i = 0; i < idx.length; i++) {
    let rem = i;
    let stride = 1;
    for (let d = outDims.length - 1; d >= 0; d--) {
      if (padded[d] > 1) idx[i] += (rem % outDims[d]) * stride;
      rem = Math.floor(rem / outDims[d]);
      stride *= padded[d];
    }
  }
  return idx;
}
