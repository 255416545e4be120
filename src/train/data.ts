/** Opening a `kd train` run's data (kept apart from options.ts so that parsing flags loads no Arrow). */
import { KdError } from '../core/errors.js';
import { type OpenedData, openData } from '../data/open.js';
import type { ModelConfig } from '../model/config.js';
import type { ResolvedTrain } from './options.js';

/** The data of a `kd train` run, and the model config with the vocabulary its tokenizer fixes. */
export function trainData(r: ResolvedTrain): OpenedData & { model: ModelConfig } {
  const data = openData(r.data, { batchSize: r.config.batchSize, seqLen: r.config.seqLen, seed: r.config.seed, vocabSize: r.model.vocabSize, topK: r.topK, tokenizer: r.tokenizer });
  const V = data.tokenizer?.vocabSize ?? r.model.vocabSize;
  if (r.vocabSizeGiven !== undefined && r.vocabSizeGiven !== V) {
    throw new KdError('bad-config', `--vocab-size ${r.vocabSizeGiven} does not match ${r.data}'s tokenizer (${V} ids); drop --vocab-size, or rebuild the dataset with --vocab-size ${r.vocabSizeGiven}`);
  }
  return { ...data, model: { ...r.model, vocabSize: V } };
}
