/** `kd prune`, `kd quantize`, `kd export`: what later stages use (eval reads which weights prune works on). */
export { prunableNames } from './masks.js';
// the option specs of kd prune, quantize and export
export { COMPRESS_OPTIONS, PRUNE_DEFAULTS, PRUNE_OPTIONS, QUANTIZE_DEFAULTS, QUANTIZE_OPTIONS } from './options.js';
