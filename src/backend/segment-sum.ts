/**
 * UnsortedSegmentSum — the gradient of gather (embeddings, picked log-probs) — in one O(x.size) pass.
 * wasm lacks the kernel and cpu's takes O(numSegments · x.size) (~100 s a step at vocabulary 8192), so
 * both backends get this one (wasm-kernels.ts, cpu-kernels.ts).
 */
type Data = Float32Array | Int32Array | Uint8Array;

/** out[ids[i], ...] = Σ x[i, ...]; ids outside [0, numSegments) are dropped, as in TensorFlow. */
export function segmentSum(out: Data, x: Data, ids: Data, numSegments: number, inner: number): void {
  out.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) out[dst + j] += x[src + j];
  }
}
