/** `kd collect`: teacher log-probs over HTTP into raw Arrow shards. */
export { collect, type CollectSummary, type StopReason } from './collect.js';
export { COLLECT_DEFAULTS, resolveCollectOptions, type CollectInput, type CollectOptions, type CollectRuntime } from './options.js';
export { COLLECT_OPTIONS, type CollectArgs } from './options.js';

// what later stages use: the teacher client (eval), the raw directory's files and manifest (dataset merge, eval), parsing (dataset import)
export { SendError, makeTeacherClient } from './client.js';
export { REJECTS_FILE } from './ledger.js';
export { MANIFEST_FILE, MANIFEST_FORMAT, type CollectManifest } from './manifest.js';
export { parseChat } from './parse.js';
export { type ShardSpec, formatShard } from './partition.js';
export { resolvePrice } from './pricing.js';
export { type PlannedRequest, chunkText } from './request.js';
// kd onpolicy: reading prompts, probing the teacher, progress events
export { readInput } from './input.js';
export { probeTeacher, type ProbeVerdict } from './probe.js';
export type { CollectProgress } from './progress.js';
