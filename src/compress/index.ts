/** `kd prune`, `kd quantize`, `kd export`: what later stages use (eval reads which weights prune works on). */
export { prunableNames } from './masks.js';
