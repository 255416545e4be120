/** `kd train`'s options: flags and the config file resolved into one validated run description. */
import fs from 'node:fs';
import { KdError } from '../core/errors.js';
import { type OpenedData, openData } from '../data/open.js';
import { type ModelConfig, resolveModelConfig } from '../model/config.js';
import { type Tokenizer, readTokenizerFile } from '../tokenizer/tokenizer.js';
import { type TrainConfig, resolveTrainConfig } from './config.js';

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

/** The data of a `kd train` run, and the model config with the vocabulary its tokenizer fixes. */
export function trainData(r: ResolvedTrain): OpenedData & { model: ModelConfig } {
  const data = openData(r.data, { batchSize: r.config.batchSize, seqLen: r.config.seqLen, seed: r.config.seed, vocabSize: r.model.vocabSize, topK: r.topK, tokenizer: r.tokenizer });
  const V = data.tokenizer?.vocabSize ?? r.model.vocabSize;
  if (r.vocabSizeGiven !== undefined && r.vocabSizeGiven !== V) {
    throw new KdError('bad-config', `--vocab-size ${r.vocabSizeGiven} does not match ${r.data}'s tokenizer (${V} ids); drop --vocab-size, or rebuild the dataset with --vocab-size ${r.vocabSizeGiven}`);
  }
  return { ...data, model: { ...r.model, vocabSize: V } };
}

