/**
 * The options of `kd prune`, `kd quantize` and `kd export`, once each: the defaults the stages apply and
 * the specs their flags, types and pipeline `with:` keys come from. Light on purpose: --help loads it.
 */
import { BACKEND_OPTION, type OptionsOf, type OptionsSpec, flag } from '../core/options.js';

export const PRUNE_METHODS = ['magnitude', 'heads', 'neurons', 'structured'] as const;
export const PRUNE_DEFAULTS = { schedule: 'oneshot', finetuneSteps: 0, scope: 'layer', importance: 'taylor' } as const;
export const QUANTIZE_DEFAULTS = { bits: 8, scheme: 'per-channel' } as const;

/** What every compress command takes: the checkpoint in, the directory out. */
export const COMPRESS_OPTIONS = {
  checkpoint: { type: 'string', required: true, describe: 'input checkpoint (file or run directory); never modified' },
  out: { type: 'string', required: true, describe: 'output directory' },
  force: flag('replace an existing output'),
  json: flag('print the summary as JSON'),
  backend: BACKEND_OPTION,
} as const satisfies OptionsSpec;

const evalBatches = { type: 'number', describe: 'validation batches for the KL before/after', defaultText: 'the checkpoint\'s eval batches' } as const;

// method, schedule, scope and importance are checked by the stage (a KdError naming the choices), not by yargs
export const PRUNE_OPTIONS = {
  ...COMPRESS_OPTIONS,
  data: { type: 'string', required: true, describe: 'the dataset the student was trained on (or "synthetic")' },
  method: { type: 'string', required: true, describe: 'magnitude (unstructured) | heads | neurons | structured (heads and neurons)' },
  sparsity: { type: 'number', required: true, describe: 'fraction in [0, 1) of weights, or of heads/neurons per block, removed' },
  schedule: { type: 'string', describe: 'magnitude: oneshot or gradual (cubic, Zhu & Gupta 2017)', default: PRUNE_DEFAULTS.schedule },
  finetuneSteps: { type: 'number', describe: 'KD fine-tuning steps after pruning', default: PRUNE_DEFAULTS.finetuneSteps },
  scope: { type: 'string', describe: 'magnitude: layer (same sparsity in every weight) or global', default: PRUNE_DEFAULTS.scope },
  importance: { type: 'string', describe: 'heads/neurons ranking: taylor (first-order KD-loss estimate) or norm', default: PRUNE_DEFAULTS.importance },
  lr: { type: 'number', describe: 'fine-tuning peak learning rate', defaultText: 'a third of the checkpoint\'s' },
  evalBatches,
  workers: { type: 'number', describe: 'data-parallel fine-tuning workers', defaultText: 'one per core on wasm/cpu' },
  resume: { type: 'boolean', describe: 'continue a prune stopped by Ctrl-C, SIGTERM or a kill (from --out\'s prune-work/)' },
} as const satisfies OptionsSpec;

export const QUANTIZE_OPTIONS = {
  ...COMPRESS_OPTIONS,
  bits: { type: 'number', describe: '8, or 4 (4-bit range, stored in int8)', default: QUANTIZE_DEFAULTS.bits },
  scheme: { type: 'string', describe: 'per-channel or per-tensor', default: QUANTIZE_DEFAULTS.scheme },
  data: { type: 'string', describe: 'dataset for the validation KL before/after (or "synthetic")' },
  evalBatches,
} as const satisfies OptionsSpec;

export type PruneArgs = OptionsOf<typeof PRUNE_OPTIONS>;
export type QuantizeArgs = OptionsOf<typeof QUANTIZE_OPTIONS>;
export type ExportArgs = OptionsOf<typeof COMPRESS_OPTIONS>;
