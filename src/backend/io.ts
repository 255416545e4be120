/**
 * Zero-copy access to tensor memory for the kernels we write in TypeScript (the fused KD loss).
 * On wasm a tensor lives in the module's heap: we view it in place and allocate outputs there, so a
 * [2048 × 8192] logits tensor is never copied. On cpu the backend keeps a plain typed array. Other
 * backends (tfjs-node) fall back to dataSync()/tf.tensor copies.
 */
import * as tf from '@tensorflow/tfjs';
import { type NativeKernels, nativeKernels } from './native.js';

type TypedArray = Float32Array | Int32Array | Uint8Array;

interface WasmLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): TypedArray;
}
interface CpuLike {
  data: { get(dataId: object): { values: TypedArray } };
}
interface RefCounted {
  refCount(dataId: object): number;
}

/** kd's native kernels when they can work on this backend's tensor memory (wasm, cpu), else null. */
export function inPlaceKernels(): NativeKernels | null {
  const name = tf.getBackend();
  return name === 'wasm' || name === 'cpu' ? nativeKernels() : null;
}

/** A typed-array view of t's data. On wasm it is valid only until the next allocation. */
export function viewOf(t: tf.Tensor): TypedArray {
  const name = tf.getBackend();
  if (name === 'wasm') return (tf.backend() as unknown as WasmLike).typedArrayFromHeap(t);
  if (name === 'cpu') return (tf.backend() as unknown as CpuLike).data.get(t.dataId).values;
  return t.dataSync() as TypedArray;
}

/**
 * A view through which t's float32 data may be modified in place, or null when that is not possible
 * (a backend keeping data elsewhere, or data shared with another tensor: the copy-free Identity and
 * tf.variable alias data). Valid until the next allocation, like viewOf.
 */
export function writableView(t: tf.Tensor): Float32Array | null {
  const name = tf.getBackend();
  if (t.dtype !== 'float32' || (name !== 'wasm' && name !== 'cpu')) return null;
  if ((tf.backend() as unknown as RefCounted).refCount(t.dataId) !== 1) return null;
  return viewOf(t) as Float32Array;
}

/**
 * Allocate a float32 tensor of `shape`, then call `fill(out, views)` where `views` are views of
 * `inputs` taken after the allocation (so wasm heap growth cannot detach them).
 */
export function computeInto(shape: number[], inputs: tf.Tensor[], fill: (out: Float32Array, views: TypedArray[]) => void): tf.Tensor {
  const name = tf.getBackend();
  if (name === 'wasm') {
    const backend = tf.backend() as unknown as WasmLike;
    const info = backend.makeOutput(shape, 'float32');
    const out = backend.typedArrayFromHeap(info) as Float32Array;
    fill(out, inputs.map((t) => backend.typedArrayFromHeap(t)));
    return tf.engine().makeTensorFromTensorInfo(info);
  }
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fill(out, inputs.map(viewOf));
  return tf.tensor(out, shape, 'float32');
}
