/** `kd dataset`: what later stages use (kd onpolicy builds and merges datasets of its rounds). */
export { buildDataset } from './build.js';
export { mergeRaw } from './merge.js';
export { readRawRecords } from './raw-columns.js';
// its commands' option specs (src/dataset/options.ts)
export { BUILD_DEFAULTS, BUILD_OPTIONS, EXPORT_OPTIONS, IMPORT_OPTIONS, INSPECT_OPTIONS, MERGE_OPTIONS } from './options.js';
