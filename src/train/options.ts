/** `kd train`'s options: flags and the config file resolved into one validated run description. */
import { KdError } from '../core/errors.js';
import type { OpenedData } from '../data/open.js';
import { BACKEND_OPTION, type OptionsOf, type OptionsSpec, flag } from '../core/options.js';
import { type ModelConfig, REFERENCE_CONFIG, resolveModelConfig } from '../model/config.js';
import { type Tokenizer, readTokenizerFile } from '../tokenizer/tokenizer.js';
import { DEFAULT_TRAIN, type TrainConfig, resolveTrainConfig } from './config.js';
import { DEFAULT_LOSS, DIVERGENCES, MISSING_MASS } from './kd-kernel.js';
import { readJsonFile } from '../core/json-file.js';

/** What a synthetic run's teacher keeps per position when --top-k is left out. */
export const DEFAULT_TOP_K = 20;

/** Every `kd train` flag, once: yargs options, the TrainArgs type and the pipeline's `with:` keys come from here. */
export const TRAIN_OPTIONS = {
  data: { type: 'string', required: true, describe: 'dataset directory; "synthetic" (a built-in random bigram teacher); or "corpus:sotu" / "corpus:PATH" for plain next-token training on text (with --tokenizer, --alpha 1)' },
  out: { type: 'string', required: true, describe: 'run directory for checkpoint.kdc and train-log.jsonl' },
  config: { type: 'string', describe: 'JSON file {"model": {...}, "train": {...}}; flags override it' },
  resume: flag('continue the run in --out exactly where it stopped'),
  initFrom: { type: 'string', describe: "start a new run from this checkpoint's weights (and its architecture, which the model flags cannot change); the data must use its tokenizer (kd dataset build --tokenizer CKPT): fine-tuning on a later round's data" },
  force: flag('start over even if --out holds a checkpoint'),
  backend: BACKEND_OPTION,
  json: flag('print one JSON line per log interval and a JSON summary'),
  steps: { type: 'number', describe: 'optimizer steps', default: DEFAULT_TRAIN.steps },
  batchSize: { type: 'number', describe: 'sequences per micro-batch', default: DEFAULT_TRAIN.batchSize },
  seqLen: { type: 'number', describe: "tokens per sequence; also the model's context", default: REFERENCE_CONFIG.seqLen },
  accumSteps: { type: 'number', describe: 'micro-batches per optimizer step', default: DEFAULT_TRAIN.accumSteps },
  lr: { type: 'number', describe: 'peak learning rate, cosine decay to --min-lr', default: DEFAULT_TRAIN.lr },
  minLr: { type: 'number', describe: 'learning rate at the last step', default: DEFAULT_TRAIN.minLr },
  warmupSteps: { type: 'number', describe: 'linear warm-up steps', default: DEFAULT_TRAIN.warmupSteps },
  weightDecay: { type: 'number', describe: 'AdamW weight decay', default: DEFAULT_TRAIN.weightDecay },
  gradClip: { type: 'number', describe: 'global-norm clip, 0 = off', default: DEFAULT_TRAIN.gradClip },
  divergence: { type: 'string', choices: DIVERGENCES, describe: 'divergence to the teacher', default: DEFAULT_LOSS.divergence },
  temperature: { type: 'number', describe: 'softening temperature T, loss × T²', default: DEFAULT_LOSS.temperature },
  alpha: { type: 'number', describe: 'weight of the hard-label cross-entropy; 1 = no distillation', default: DEFAULT_LOSS.alpha },
  beta: { type: 'number', describe: 'JSD interpolation β', default: DEFAULT_LOSS.beta },
  missingMass: { type: 'string', choices: MISSING_MASS, describe: "the teacher's probability outside its top-k: one tail class, or renormalise the top-k as if it were everything", default: DEFAULT_LOSS.missingMass },
  tailTarget: { type: 'number', describe: "weight of the hard target's cross-entropy within the tail where it is outside the teacher's top-k", default: DEFAULT_LOSS.tailTarget },
  unlabelledWeight: { type: 'number', describe: 'weight of the hard target at positions without a soft label, in the (1 − alpha) term; 0 = skip them', default: DEFAULT_LOSS.unlabelledWeight },
  logEvery: { type: 'number', describe: 'steps between log lines', default: DEFAULT_TRAIN.logEvery },
  evalEvery: { type: 'number', describe: 'steps between validation passes, 0 = off', default: DEFAULT_TRAIN.evalEvery },
  evalBatches: { type: 'number', describe: 'validation batches per pass', default: DEFAULT_TRAIN.evalBatches },
  checkpointEvery: { type: 'number', describe: 'steps between checkpoints, 0 = only at the end', default: DEFAULT_TRAIN.checkpointEvery },
  seed: { type: 'number', describe: 'seed of the initialisation and the data order', default: DEFAULT_TRAIN.seed },
  vocabSize: { type: 'number', describe: "model: vocabulary size (synthetic data; a dataset's tokenizer sets it)", default: REFERENCE_CONFIG.vocabSize },
  dModel: { type: 'number', describe: 'model: width', default: REFERENCE_CONFIG.dModel },
  layers: { type: 'number', describe: 'model: transformer blocks', default: REFERENCE_CONFIG.nLayers },
  heads: { type: 'number', describe: 'model: attention heads, must divide d-model', default: REFERENCE_CONFIG.nHeads },
  ffnMult: { type: 'number', describe: 'model: MLP width multiplier', default: REFERENCE_CONFIG.ffnMult },
  topK: { type: 'number', describe: 'synthetic data: teacher top-k', default: DEFAULT_TOP_K },
  tokenizer: { type: 'string', describe: 'tokenizer JSON for --data corpus:… (sets the vocabulary size)' },
  workers: { type: 'number', describe: 'data-parallel worker threads', defaultText: 'one per core on wasm/cpu, 1 on tfjs-node' },
} as const satisfies OptionsSpec;

export type TrainArgs = OptionsOf<typeof TRAIN_OPTIONS>;

export interface ResolvedTrain {
  model: ModelConfig;
  config: TrainConfig;
  data: string;
  out: string;
  resume: boolean | undefined;
  topK: number;
  /** undefined = automatic (one per core on the wasm and cpu backends) */
  workers?: number;
  tokenizer?: Tokenizer;
  /** the vocabulary size the user asked for (flag or config file); a dataset's tokenizer sets it otherwise */
  vocabSizeGiven?: number;
  /** a checkpoint to start from (kd train --init-from) */
  initFrom?: string;
}

function readConfigFile(file: string): { model?: Record<string, unknown>; train?: Record<string, unknown> } {
  const v = readJsonFile(file, 'config file', 'bad-config');
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new KdError('bad-config', `${file}: expected an object with "model" and "train"`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'model' && k !== 'train') throw new KdError('bad-config', `${file}: unknown top-level field "${k}" (expected "model", "train")`);
  return o as { model?: Record<string, unknown>; train?: Record<string, unknown> };
}

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Defaults, then the config file, then flags; validated. Pure apart from reading the config file. */
export function resolveTrainArgs(a: TrainArgs): ResolvedTrain {
  const file = a.config ? readConfigFile(a.config) : {};
  const src = a.config ?? 'flags';
  const tokenizer = a.tokenizer ? readTokenizerFile(a.tokenizer) : undefined;
  if (tokenizer && a.vocabSize !== undefined && a.vocabSize !== tokenizer.vocabSize) {
    throw new KdError('bad-config', `--vocab-size ${a.vocabSize} differs from the tokenizer's ${tokenizer.vocabSize} tokens (${a.tokenizer})`);
  }
  const model = resolveModelConfig({
    ...(file.model ?? {}),
    ...(tokenizer ? { vocabSize: tokenizer.vocabSize } : {}),
    ...defined({ vocabSize: a.vocabSize, seqLen: a.seqLen, dModel: a.dModel, nLayers: a.layers, nHeads: a.heads, ffnMult: a.ffnMult }),
  }, `${src}: model`);
  const fileTrain = (file.train ?? {}) as Partial<TrainConfig>;
  const config = resolveTrainConfig({
    ...fileTrain,
    ...defined({ steps: a.steps, batchSize: a.batchSize, accumSteps: a.accumSteps, lr: a.lr, minLr: a.minLr, warmupSteps: a.warmupSteps,
      weightDecay: a.weightDecay, gradClip: a.gradClip, logEvery: a.logEvery, evalEvery: a.evalEvery, evalBatches: a.evalBatches,
      checkpointEvery: a.checkpointEvery, seed: a.seed }),
    seqLen: a.seqLen ?? fileTrain.seqLen ?? model.seqLen,
    loss: { ...(fileTrain.loss ?? {}), ...defined({
      divergence: a.divergence, temperature: a.temperature, alpha: a.alpha, beta: a.beta,
      missingMass: a.missingMass, unlabelledWeight: a.unlabelledWeight, tailTarget: a.tailTarget,
    }) },
  }, `${src}: train`);
  if (config.seqLen > model.seqLen) throw new KdError('bad-config', `${src}: train.seqLen (${config.seqLen}) exceeds model.seqLen (${model.seqLen})`);
  if (a.topK !== undefined && (!Number.isInteger(a.topK) || a.topK < 1)) throw new KdError('bad-config', `--top-k must be a positive integer, got ${a.topK}`);
  if (a.workers !== undefined && (!Number.isInteger(a.workers) || a.workers < 1)) throw new KdError('bad-config', `--workers must be a positive integer, got ${a.workers}`);
  const vocabSizeGiven = a.vocabSize ?? (file.model?.vocabSize as number | undefined);
  if (a.initFrom && a.resume) throw new KdError('bad-config', '--init-from starts a new run from a checkpoint; --resume continues the run in --out: give one of them');
  return { model, config, data: a.data, out: a.out, resume: a.resume ? true : a.force ? false : undefined, topK: a.topK ?? DEFAULT_TOP_K, workers: a.workers, tokenizer, vocabSizeGiven, ...(a.initFrom ? { initFrom: a.initFrom } : {}) };
}


/**
 * The model a run starts from with --init-from: its config replaces the flags', and its tokenizer must
 * be the data's (the same ids), which a dataset built with --tokenizer CKPT has.
 */
export function checkInitFrom(init: { model: { config: ModelConfig }; tokenizer?: Tokenizer; file: string }, data: { tokenizer?: Tokenizer; model: ModelConfig }, r: ResolvedTrain): ModelConfig {
  const c = init.model.config;
  if (data.tokenizer && init.tokenizer && data.tokenizer.hash() !== init.tokenizer.hash()) {
    throw new KdError('tokenizer-mismatch', `${r.data}: its tokenizer is not the one ${init.file} was trained with; rebuild it with kd dataset build --tokenizer ${r.initFrom}`);
  }
  if (data.model.vocabSize !== c.vocabSize) throw new KdError('tokenizer-mismatch', `${r.data}: ${data.model.vocabSize} ids, ${init.file} has ${c.vocabSize}; rebuild it with kd dataset build --tokenizer ${r.initFrom}`);
  if (r.config.seqLen > c.seqLen) throw new KdError('bad-config', `--seq-len ${r.config.seqLen} exceeds ${init.file}'s context of ${c.seqLen} tokens`);
  return c;
}

