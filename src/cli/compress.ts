/**
 * kd prune, kd quantize, kd export: thin yargs shells over src/compress/. Parsing is pure; handlers
 * import tfjs lazily so --help stays fast.
 */
import type { Argv, CommandModule } from 'yargs';
import type { PruneOptions } from '../compress/prune.js';
import type { QuantizeOptions } from '../compress/quantize.js';
import { KdError } from '../core/errors.js';

interface Common {
  checkpoint: string;
  out: string;
  force?: boolean;
  json?: boolean;
  backend?: string;
}

export interface PruneArgs extends Common {
  data: string;
  method: string;
  sparsity: number;
  schedule?: string;
  finetuneSteps?: number;
  scope?: string;
  importance?: string;
  lr?: number;
  evalBatches?: number;
  workers?: number;
}

export interface QuantizeArgs extends Common {
  data?: string;
  bits?: number;
  scheme?: string;
  evalBatches?: number;
}

const oneOf = <T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T | undefined => {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw new KdError('bad-option', `--${flag} ${v}: choose one of ${allowed.join(', ')}`);
  return v as T;
};

export function resolvePruneArgs(a: PruneArgs): PruneOptions {
  if (a.workers !== undefined && !(Number.isInteger(a.workers) && a.workers >= 1)) throw new KdError('bad-option', `--workers ${a.workers}: must be a positive integer`);
  return {
    checkpoint: a.checkpoint, out: a.out, data: a.data, force: a.force, lr: a.lr, evalBatches: a.evalBatches, workers: a.workers,
    method: oneOf('method', a.method, ['magnitude', 'heads', 'neurons', 'structured'] as const)!,
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

const common = (y: Argv) => y
  .option('checkpoint', { type: 'string', demandOption: true, describe: 'input checkpoint (file or run directory); never modified' })
  .option('out', { type: 'string', demandOption: true, describe: 'output directory' })
  .option('force', { type: 'boolean', describe: 'replace an existing output' })
  .option('json', { type: 'boolean', describe: 'print the summary as JSON' })
  .option('backend', { type: 'string', describe: 'tensorflow-gpu, tensorflow, wasm or cpu (default: best available; or KD_BACKEND)' });

async function run<T>(argv: { backend?: string; json?: boolean }, work: () => Promise<T>, format: (s: T) => string): Promise<void> {
  const { initBackend } = await import('../backend/index.js');
  await initBackend({ backend: argv.backend });
  const s = await work();
  process.stdout.write((argv.json ? JSON.stringify(s) : format(s)) + '\n');
}

export const pruneCommand: CommandModule<object, PruneArgs> = {
  command: 'prune',
  describe: 'Prune a student (weights, heads or MLP neurons) and recover by KD fine-tuning on the teacher\'s soft labels',
  builder: (y: Argv) => common(y)
    .option('data', { type: 'string', demandOption: true, describe: 'the dataset the student was trained on (or "synthetic")' })
    .option('method', { type: 'string', demandOption: true, describe: 'magnitude (unstructured) | heads | neurons | structured (heads and neurons)' })
    .option('sparsity', { type: 'number', demandOption: true, describe: 'fraction in [0, 1) of weights, or of heads/neurons per block, removed' })
    .option('schedule', { type: 'string', describe: 'magnitude: oneshot (default) or gradual (cubic, Zhu & Gupta 2017)' })
    .option('finetune-steps', { type: 'number', describe: 'KD fine-tuning steps after pruning (default 0)' })
    .option('scope', { type: 'string', describe: 'magnitude: layer (same sparsity in every weight, default) or global' })
    .option('importance', { type: 'string', describe: 'heads/neurons ranking: taylor (first-order KD-loss estimate, default) or norm' })
    .option('lr', { type: 'number', describe: 'fine-tuning peak learning rate (default: a third of the checkpoint\'s)' })
    .option('eval-batches', { type: 'number', describe: 'validation batches for the KL before/after' })
    .option('workers', { type: 'number', describe: 'data-parallel fine-tuning workers (default: one per core on wasm/cpu)' })
    .example('$0 prune --checkpoint checkpoints/run --out checkpoints/run-sparse --data datasets/web --method magnitude --sparsity 0.5 --finetune-steps 200', ''),
  handler: async (argv) => {
    const o = resolvePruneArgs(argv);
    const [{ prune }, { formatPrune }, { defaultWorkers }, { initBackend }] = await Promise.all([
      import('../compress/prune.js'), import('../compress/print.js'), import('../train/config.js'), import('../backend/index.js')]);
    await run(argv, async () => {
      const be = await initBackend({ backend: argv.backend });
      return prune({ ...o, backend: be.backend, workers: o.workers ?? defaultWorkers(be.backend, 8) });
    }, formatPrune);
  },
};

export const quantizeCommand: CommandModule<object, QuantizeArgs> = {
  command: 'quantize',
  describe: 'Symmetric int8 weight quantization (per output channel by default), dequantized on load',
  builder: (y: Argv) => common(y)
    .option('bits', { type: 'number', describe: '8 (default) or 4 (4-bit range, stored in int8)' })
    .option('scheme', { type: 'string', describe: 'per-channel (default) or per-tensor' })
    .option('data', { type: 'string', describe: 'dataset for the validation KL before/after (or "synthetic")' })
    .option('eval-batches', { type: 'number', describe: 'validation batches for the KL before/after' })
    .example('$0 quantize --checkpoint checkpoints/run --out checkpoints/run-int8 --data datasets/web', ''),
  handler: async (argv) => {
    const o = resolveQuantizeArgs(argv);
    const [{ quantize }, { formatQuantize }] = await Promise.all([import('../compress/quantize.js'), import('../compress/print.js')]);
    await run(argv, () => quantize(o), formatQuantize);
  },
};

export const exportCommand: CommandModule<object, Common> = {
  command: 'export',
  describe: 'Write the student as a TensorFlow.js GraphModel (model.json + shards + tokenizer.json) for plain @tensorflow/tfjs',
  builder: (y: Argv) => common(y).example('$0 export --checkpoint checkpoints/run-int8 --out exports/run', ''),
  handler: async (argv) => {
    const [{ exportModel }, { formatExport }] = await Promise.all([import('../compress/export.js'), import('../compress/print.js')]);
    await run(argv, async () => exportModel({ checkpoint: argv.checkpoint, out: argv.out, force: argv.force }), formatExport);
  },
};
