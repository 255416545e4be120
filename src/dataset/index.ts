/** `kd dataset`: what later stages use (kd onpolicy builds and merges datasets of its rounds). */
export { buildDataset } from './build.js';
export { mergeRaw } from './merge.js';
export { readRawRecords } from './raw-columns.js';
