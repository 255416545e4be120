/**
 * kd prune, kd quantize, kd export: thin yargs shells over src/compress/. Parsing is pure; handlers
 * import tfjs lazily so --help stays fast.
 */
import { COMPRESS_OPTIONS, PRUNE_DEFAULTS, PRUNE_METHODS, PRUNE_OPTIONS, type PruneArgs, QUANTIZE_OPTIONS, type QuantizeArgs } from '../compress/options.js';
import { summaryCommand } from './command.js';
import { formatExport, formatPrune, formatQuantize } from '../compress/print.js';
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
  const { backend: _backend, json: _json, ...same } = a;
  return {
    ...same,
    method: oneOf('method', a.method, PRUNE_METHODS)!,
    schedule: oneOf('schedule', a.schedule, ['oneshot', 'gradual'] as const),
    scope: oneOf('scope', a.scope, ['layer', 'global'] as const),
    importance: oneOf('importance', a.importance, ['norm', 'taylor'] as const),
  };
}

export function resolveQuantizeArgs(a: QuantizeArgs): QuantizeOptions {
  const { backend: _backend, json: _json, ...same } = a;
  return { ...same, scheme: oneOf('scheme', a.scheme, ['per-channel', 'per-tensor'] as const) };
}

/** The backend --backend names (or the best available), started before the stage runs. */
async function backendOf(argv: { backend?: string }): Promise<BackendName> {
  const { initBackend } = await import('../backend/index.js');
  return (await initBackend({ backend: argv.backend })).backend;
}

/** The fine-tuning bar: steps over all stages (gradual has up to 8), the ETA of all that is left */
export const PRUNE_BAR_FORMAT = 'prune: fine-tune{stage} |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {etaText}';

export const pruneCommand = summaryCommand({
  command: 'prune',
  describe: 'Prune a student (weights, heads or MLP neurons) and recover by KD fine-tuning on the teacher\'s soft labels',
  options: PRUNE_OPTIONS,
  examples: [['$0 prune --checkpoint checkpoints/run --out checkpoints/run-sparse --data datasets/web --method magnitude --sparsity 0.5 --finetune-steps 200', '']],
  run: async (argv) => {
    const o = resolvePruneArgs(argv);
    const [{ prune }, { defaultWorkers }, { formatDuration, startProgress }] = await Promise.all([
      import('../compress/prune.js'), import('../train/config.js'), import('../core/progress.js')]);
    const backend = await backendOf(argv);
    // Ctrl-C / SIGTERM: the fine-tuning stage checkpoints and stops; prune then throws 'interrupted' (kd exits 130)
    const stop = new AbortController();
    const onSig = () => stop.abort();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const bar = startProgress(o.finetuneSteps ?? PRUNE_DEFAULTS.finetuneSteps, PRUNE_BAR_FORMAT, !argv.json && Boolean(process.stderr.isTTY));
    try {
      return await prune({
        ...o, backend, workers: o.workers ?? defaultWorkers(backend, 8), signal: stop.signal,
        onStep: (p) => bar.update(p.done, { stage: p.stages > 1 ? ` (stage ${p.stage}/${p.stages})` : '', loss: p.loss.toFixed(4), tps: Math.round(p.tokensPerSec), etaText: formatDuration(p.etaSec) }),
      });
    } finally {
      bar.stop();
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    }
  },
  format: formatPrune,
});

export const quantizeCommand = summaryCommand({
  command: 'quantize',
  describe: 'Symmetric int8 weight quantization (per output channel by default), dequantized on load',
  options: QUANTIZE_OPTIONS,
  examples: [['$0 quantize --checkpoint checkpoints/run --out checkpoints/run-int8 --data datasets/web', '']],
  run: async (argv) => {
    const o = resolveQuantizeArgs(argv);
    const { quantize } = await import('../compress/quantize.js');
    await backendOf(argv);
    return quantize(o);
  },
  format: formatQuantize,
});

export const exportCommand = summaryCommand({
  command: 'export',
  describe: 'Write the student as a TensorFlow.js GraphModel (model.json + shards + tokenizer.json) for plain @tensorflow/tfjs',
  options: COMPRESS_OPTIONS,
  examples: [['$0 export --checkpoint checkpoints/run-int8 --out exports/run', '']],
  run: async (argv) => {
    const { exportModel } = await import('../compress/export.js');
    await backendOf(argv);
    return exportModel({ checkpoint: argv.checkpoint, out: argv.out, force: argv.force });
  },
  format: formatExport,
});
