/** `kd collect`: teacher log-probs over HTTP into raw Arrow shards. */
export { collect, type CollectSummary, type StopReason } from './collect.js';
export { COLLECT_DEFAULTS, resolveCollectOptions, type CollectInput, type CollectOptions, type CollectRuntime } from './options.js';
