/**
 * kd prune, kd quantize, kd export: thin yargs shells over src/compress/. Parsing is pure; handlers
 * import tfjs lazily so --help stays fast.
 */
import { COMPRESS_OPTIONS, PRUNE_METHODS, PRUNE_OPTIONS, type PruneArgs, QUANTIZE_OPTIONS, type QuantizeArgs } from '../compress/options.js';
import { printSummary, specCommand } from './command.js';
import type { PruneOptions } from '../compress/prune.js';
import type { QuantizeOptions } from '../compress/quantize.js';
import { KdError } from '../core/errors.js';
import type { BackendName } from '../backend/index.js';

const oneOf = <T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T | undefined => {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw new KdError('bad-option', `--${flag} ${v}: choose one of ${allowed.join(', ')}`);
  return v as T;
};

export function resolvePruneArgs(a: PruneArgs): PruneOptions {
  if (a.workers !== undefined && !(Number.isInteger(a.workers) && a.workers >= 1)) throw new KdError('bad-option', `--workers ${a.workers}: must be a positive integer`);
  return {
    checkpoint: a.checkpoint, out: a.out, data: a.data, force: a.force, lr: a.lr, evalBatches: a.evalBatches, workers: a.workers,
    method: oneOf('method', a.method, PRUNE_METHODS)!,
    sparsity: a.sparsity, finetuneSteps: a.finetuneSteps,
    schedule: oneOf('schedule', a.schedule, ['oneshot', 'gradual'] as const),
    scope: oneOf('scope', a.scope, ['layer', 'global'] as const),
    importance: oneOf('importance', a.importance, ['norm', 'taylor'] as const),
  };
}

export function resolveQuantizeArgs(a: QuantizeArgs): QuantizeOptions {
  return {
    checkpoint: a.checkpoint, out: a.out, data: a.data, force: a.force, evalBatches: a.evalBatches,
    bits: a.bits, scheme: oneOf('scheme', a.scheme, ['per-channel', 'per-tensor'] as const),
  };
}

/** Start the backend (--backend), run the stage on it, print its summary. */
async function run<T>(argv: { backend?: string; json?: boolean }, work: (backend: BackendName) => Promise<T>, format: (s: T) => string): Promise<void> {
  const { initBackend } = await import('../backend/index.js');
  const be = await initBackend({ backend: argv.backend });
  printSummary(argv.json, await work(be.backend), format);
}

export const pruneCommand = specCommand({
  command: 'prune',
  describe: 'Prune a student (weights, heads or MLP neurons) and recover by KD fine-tuning on the teacher\'s soft labels',
  options: PRUNE_OPTIONS,
  examples: [['$0 prune --checkpoint checkpoints/run --out checkpoints/run-sparse --data datasets/web --method magnitude --sparsity 0.5 --finetune-steps 200', '']],
  handler: async (argv) => {
    const o = resolvePruneArgs(argv);
    const [{ prune }, { formatPrune }, { defaultWorkers }] = await Promise.all([import('../compress/prune.js'), import('../compress/print.js'), import('../train/config.js')]);
    await run(argv, (backend) => prune({ ...o, backend, workers: o.workers ?? defaultWorkers(backend, 8) }), formatPrune);
  },
});

export const quantizeCommand = specCommand({
  command: 'quantize',
  describe: 'Symmetric int8 weight quantization (per output channel by default), dequantized on load',
  options: QUANTIZE_OPTIONS,
  examples: [['$0 quantize --checkpoint checkpoints/run --out checkpoints/run-int8 --data datasets/web', '']],
  handler: async (argv) => {
    const o = resolveQuantizeArgs(argv);
    const [{ quantize }, { formatQuantize }] = await Promise.all([import('../compress/quantize.js'), import('../compress/print.js')]);
    await run(argv, () => quantize(o), formatQuantize);
  },
});

export const exportCommand = specCommand({
  command: 'export',
  describe: 'Write the student as a TensorFlow.js GraphModel (model.json + shards + tokenizer.json) for plain @tensorflow/tfjs',
  options: COMPRESS_OPTIONS,
  examples: [['$0 export --checkpoint checkpoints/run-int8 --out exports/run', '']],
  handler: async (argv) => {
    const [{ exportModel }, { formatExport }] = await Promise.all([import('../compress/export.js'), import('../compress/print.js')]);
    await run(argv, async () => exportModel({ checkpoint: argv.checkpoint, out: argv.out, force: argv.force }), formatExport);
  },
});
