/** Replacing a stock tfjs kernel of one backend by ours, shared by wasm-kernels.ts and cpu-kernels.ts. */
import { getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import type { KernelFunc } from '@tensorflow/tfjs-core';

/**
 * Replace `backendName`'s kernel by `make(original)`, keeping the rest of the original's config (on wasm,
 * its setupFunc binds the C function). Throws when the backend has no such kernel (not imported yet).
 */
export function wrapKernel<K>(kernelName: string, backendName: string, make: (orig: K) => K): void {
  const orig = getKernel(kernelName, backendName);
  if (!orig) throw new Error(`${backendName} kernel ${kernelName} not registered: import the ${backendName} backend first`);
  unregisterKernel(kernelName, backendName);
  registerKernel({ ...orig, kernelFunc: make(orig.kernelFunc as unknown as K) as unknown as KernelFunc });
}
