/**
 * kd's optional native matmul (native/gemm.cc, built by `npm install` with node-gyp when a C++ compiler
 * is there). The wasm backend hands it the wasm heap, so products run in place: on this project's
 * reference machine it multiplies 5-6× faster than XNNPACK's 128-bit wasm SIMD. When it is missing
 * (no compiler at install time, an unsupported platform) or KD_NATIVE=0, the wasm kernels fall back to
 * XNNPACK and nothing else changes.
 */
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeGemm {
  /**
   * For each batch element i: heap[cOffset + i·M·N, +M·N) = op(A at aOffsets[i]) · op(B at bOffsets[i]),
   * row-major float32; offsets in elements of `heap`.
   */
  gemm(heap: Float32Array, aOffsets: Int32Array, bOffsets: Int32Array, cOffset: number, M: number, N: number, K: number,
    transposeA: boolean, transposeB: boolean): void;
  /** the micro-kernel in use: avx512, avx2 or generic */
  kernel(): string;
  /** the micro-kernels this CPU supports, best first (the best is used) */
  kernels(): string[];
  /** use another supported micro-kernel (tests, benchmarks); false if unsupported */
  useKernel(name: string): boolean;
}

export interface NativeStatus {
  loaded: boolean;
  /** micro-kernel name when loaded, else why not */
  detail: string;
  path: string;
}

const ADDON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../build/Release/kd_native.node');
let cached: { addon: NativeGemm | null; status: NativeStatus } | undefined;

function load(): { addon: NativeGemm | null; status: NativeStatus } {
  const off = process.env.KD_NATIVE;
  if (off !== undefined && ['0', 'false', 'off', 'no'].includes(off.toLowerCase())) {
    return { addon: null, status: { loaded: false, detail: 'disabled by KD_NATIVE', path: ADDON } };
  }
  if (!fs.existsSync(ADDON)) {
    return { addon: null, status: { loaded: false, detail: 'not built (run `npm run build:native`; needs a C++ compiler)', path: ADDON } };
  }
  try {
    const addon = createRequire(import.meta.url)(ADDON) as NativeGemm;
    return { addon, status: { loaded: true, detail: addon.kernel(), path: ADDON } };
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    return { addon: null, status: { loaded: false, detail: `failed to load: ${msg}`, path: ADDON } };
  }
}

let enabled = true;

/** The addon, or null when it is unavailable or disabled (see nativeStatus for why). */
export function nativeGemm(): NativeGemm | null {
  cached ??= load();
  return enabled ? cached.addon : null;
}

/** Turn the native matmul off (or back on) in this thread, e.g. to compare it with XNNPACK. */
export function setNativeEnabled(on: boolean): void {
  enabled = on;
}

export function nativeStatus(): NativeStatus {
  cached ??= load();
  return cached.status;
}
