/** Kernels we register for the wasm backend so training runs there. Filled in below. */
export function registerWasmKernels(): void {}
