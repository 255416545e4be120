import fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { KdError } from '../core/errors.js';
import { type ModelConfig, REFERENCE_CONFIG, resolveModelConfig } from '../model/config.js';
import { DEFAULT_TRAIN, type TrainConfig, resolveTrainConfig } from '../train/config.js';
import { DEFAULT_LOSS, DIVERGENCES, MISSING_MASS } from '../train/kd-kernel.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';

export function readTokenizer(file: string): Tokenizer {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new KdError('missing-file', `${file}: cannot read tokenizer file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KdError('bad-tokenizer', `${file}: not valid JSON`);
  }
  return Tokenizer.fromJSON(json, file);
}

export interface TrainArgs {
  config?: string;
  data: string;
  out: string;
  resume?: boolean;
  force?: boolean;
  backend?: string;
  json?: boolean;
  steps?: number;
  batchSize?: number;
  seqLen?: number;
  accumSteps?: number;
  lr?: number;
  minLr?: number;
  warmupSteps?: number;
  weightDecay?: number;
  gradClip?: number;
  divergence?: string;
  temperature?: number;
  alpha?: number;
  beta?: number;
  missingMass?: string;
  unlabelledWeight?: number;
  tailTarget?: number;
  logEvery?: number;
  evalEvery?: number;
  evalBatches?: number;
  checkpointEvery?: number;
  seed?: number;
  vocabSize?: number;
  dModel?: number;
  layers?: number;
  heads?: number;
  ffnMult?: number;
  topK?: number;
  workers?: number;
  tokenizer?: string;
}

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
}

function readConfigFile(file: string): { model?: Record<string, unknown>; train?: Record<string, unknown> } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new KdError('missing-file', `${file}: cannot read config file`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new KdError('bad-config', `${file}: not valid JSON (${(e as Error).message})`);
  }
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
  const tokenizer = a.tokenizer ? readTokenizer(a.tokenizer) : undefined;
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
      divergence: a.divergence as TrainConfig['loss']['divergence'], temperature: a.temperature, alpha: a.alpha, beta: a.beta,
      missingMass: a.missingMass as TrainConfig['loss']['missingMass'], unlabelledWeight: a.unlabelledWeight, tailTarget: a.tailTarget,
    }) },
  }, `${src}: train`);
  if (config.seqLen > model.seqLen) throw new KdError('bad-config', `${src}: train.seqLen (${config.seqLen}) exceeds model.seqLen (${model.seqLen})`);
  if (a.topK !== undefined && (!Number.isInteger(a.topK) || a.topK < 1)) throw new KdError('bad-config', `--top-k must be a positive integer, got ${a.topK}`);
  if (a.workers !== undefined && (!Number.isInteger(a.workers) || a.workers < 1)) throw new KdError('bad-config', `--workers must be a positive integer, got ${a.workers}`);
  const vocabSizeGiven = a.vocabSize ?? (file.model?.vocabSize as number | undefined);
  return { model, config, data: a.data, out: a.out, resume: a.resume ? true : a.force ? false : undefined, topK: a.topK ?? 20, workers: a.workers, tokenizer, vocabSizeGiven };
}

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'Train a student on the teacher\'s soft labels (KD loss × T², AdamW, checkpoints, exact resume)',
  builder: (y: Argv) => y
    .option('data', { type: 'string', demandOption: true, describe: 'dataset directory; "synthetic" (a built-in random bigram teacher); or "corpus:sotu" / "corpus:PATH" for plain next-token training on text (with --tokenizer, --alpha 1)' })
    .option('out', { type: 'string', demandOption: true, describe: 'run directory for checkpoint.kdc and train-log.jsonl' })
    .option('config', { type: 'string', describe: 'JSON file {"model": {...}, "train": {...}}; flags override it' })
    .option('resume', { type: 'boolean', describe: 'continue the run in --out exactly where it stopped' })
    .option('force', { type: 'boolean', describe: 'start over even if --out holds a checkpoint' })
    .option('backend', { type: 'string', describe: 'tensorflow-gpu, tensorflow, wasm or cpu (default: best available; or KD_BACKEND)' })
    .option('json', { type: 'boolean', describe: 'print one JSON line per log interval and a JSON summary' })
    .option('steps', { type: 'number', describe: `optimizer steps (default ${DEFAULT_TRAIN.steps})` })
    .option('batch-size', { type: 'number', describe: `sequences per micro-batch (default ${DEFAULT_TRAIN.batchSize})` })
    .option('seq-len', { type: 'number', describe: `tokens per sequence; also the model's context (default ${REFERENCE_CONFIG.seqLen})` })
    .option('accum-steps', { type: 'number', describe: `micro-batches per optimizer step (default ${DEFAULT_TRAIN.accumSteps})` })
    .option('lr', { type: 'number', describe: `peak learning rate, cosine decay to --min-lr (default ${DEFAULT_TRAIN.lr})` })
    .option('min-lr', { type: 'number', describe: `learning rate at the last step (default ${DEFAULT_TRAIN.minLr})` })
    .option('warmup-steps', { type: 'number', describe: `linear warm-up steps (default ${DEFAULT_TRAIN.warmupSteps})` })
    .option('weight-decay', { type: 'number', describe: `AdamW weight decay (default ${DEFAULT_TRAIN.weightDecay})` })
    .option('grad-clip', { type: 'number', describe: `global-norm clip, 0 = off (default ${DEFAULT_TRAIN.gradClip})` })
    .option('divergence', { type: 'string', choices: [...DIVERGENCES], describe: `divergence to the teacher (default ${DEFAULT_LOSS.divergence})` })
    .option('temperature', { type: 'number', describe: `softening temperature T, loss × T² (default ${DEFAULT_LOSS.temperature})` })
    .option('alpha', { type: 'number', describe: `weight of the hard-label cross-entropy; 1 = no distillation (default ${DEFAULT_LOSS.alpha})` })
    .option('beta', { type: 'number', describe: `JSD interpolation β (default ${DEFAULT_LOSS.beta})` })
    .option('missing-mass', { type: 'string', choices: [...MISSING_MASS], describe: `the teacher's probability outside its top-k: one tail class, or renormalise the top-k as if it were everything (default ${DEFAULT_LOSS.missingMass})` })
    .option('tail-target', { type: 'number', describe: `weight of the hard target's cross-entropy within the tail where it is outside the teacher's top-k (default ${DEFAULT_LOSS.tailTarget})` })
    .option('unlabelled-weight', { type: 'number', describe: `weight of the hard target at positions without a soft label, in the (1 − alpha) term; 0 = skip them (default ${DEFAULT_LOSS.unlabelledWeight})` })
    .option('log-every', { type: 'number', describe: `steps between log lines (default ${DEFAULT_TRAIN.logEvery})` })
    .option('eval-every', { type: 'number', describe: `steps between validation passes, 0 = off (default ${DEFAULT_TRAIN.evalEvery})` })
    .option('eval-batches', { type: 'number', describe: `validation batches per pass (default ${DEFAULT_TRAIN.evalBatches})` })
    .option('checkpoint-every', { type: 'number', describe: `steps between checkpoints, 0 = only at the end (default ${DEFAULT_TRAIN.checkpointEvery})` })
    .option('seed', { type: 'number', describe: `seed of the initialisation and the data order (default ${DEFAULT_TRAIN.seed})` })
    .option('vocab-size', { type: 'number', describe: `model: vocabulary size (synthetic data; a dataset's tokenizer sets it) (default ${REFERENCE_CONFIG.vocabSize})` })
    .option('d-model', { type: 'number', describe: `model: width (default ${REFERENCE_CONFIG.dModel})` })
    .option('layers', { type: 'number', describe: `model: transformer blocks (default ${REFERENCE_CONFIG.nLayers})` })
    .option('heads', { type: 'number', describe: `model: attention heads, must divide d-model (default ${REFERENCE_CONFIG.nHeads})` })
    .option('ffn-mult', { type: 'number', describe: `model: MLP width multiplier (default ${REFERENCE_CONFIG.ffnMult})` })
    .option('top-k', { type: 'number', describe: 'synthetic data: teacher top-k (default 20)' })
    .option('tokenizer', { type: 'string', describe: 'tokenizer JSON for --data corpus:… (sets the vocabulary size)' })
    .option('workers', { type: 'number', describe: 'data-parallel worker threads (default: one per core on wasm/cpu, 1 on tfjs-node)' })
    .example('$0 train --data synthetic --out checkpoints/try --steps 200', 'train the reference student on the built-in synthetic teacher')
    .example('$0 train --data corpus:sotu --tokenizer tok.json --alpha 1 --out checkpoints/lm', 'plain next-token training on the State of the Union corpus'),
  handler: async (argv) => {
    const r = resolveTrainArgs(argv);
    const { runTrain } = await import('../data/open.js');
    await runTrain(r, { backend: argv.backend, json: Boolean(argv.json) });
  },
};
