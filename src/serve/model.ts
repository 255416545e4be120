/**
 * Loading a kd checkpoint for serving: the shared loader (src/model/load.ts: float32, pruned or int8)
 * plus what a server needs on top — a tokenizer it can always use, and the names it reports.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { KdError } from '../core/errors.js';
import type { ModelConfig } from '../model/config.js';
import { type Model, modelFromArrays } from '../model/gpt.js';
import { modelConfigOf, weightArrays } from '../model/load.js';
import { loadCheckpoint } from '../schema/checkpoint.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';

export interface ServedModel {
  model: Model;
  config: ModelConfig;
  tokenizer: Tokenizer;
  /** what `model` says in responses */
  name: string;
  /** "fp_" + a hash of the weights and tokenizer: changes whenever the served model does */
  fingerprint: string;
  file: string;
}

/** The model name reported when none is given: the run directory's name. */
export function defaultModelName(checkpointPath: string, file: string): string {
  const p = path.resolve(checkpointPath);
  return path.basename(p === path.resolve(file) ? path.dirname(p) : p);
}

function tokenizerOf(header: { tokenizer?: unknown }, config: ModelConfig, file: string): Tokenizer {
  if (header.tokenizer === undefined || header.tokenizer === null) {
    if (config.vocabSize === 256) return Tokenizer.bytes();
    throw new KdError('no-tokenizer', `${file}: checkpoint has no tokenizer and its vocabulary (${config.vocabSize}) is not the 256 bytes; train it from a dataset (which stores the tokenizer) to serve it`);
  }
  const tok = Tokenizer.fromJSON(header.tokenizer, `${file}: tokenizer`);
  if (tok.vocabSize !== config.vocabSize) {
    throw new KdError('tokenizer-mismatch', `${file}: tokenizer has ${tok.vocabSize} tokens but the model's vocabSize is ${config.vocabSize}`);
  }
  return tok;
}

export function loadServedModel(checkpointPath: string, modelName?: string): ServedModel {
  const { header, arrays, file } = loadCheckpoint(checkpointPath);
  const config = modelConfigOf(header, file);
  const tokenizer = tokenizerOf(header, config, file);
  const weights = weightArrays(config, arrays, file); // float32, or int8 dequantized by the shared loader
  const fingerprint = 'fp_' + createHash('sha256').update(header.payloadSha256).update(tokenizer.hash()).digest('hex').slice(0, 12);
  return { model: modelFromArrays(config, weights), config, tokenizer, name: modelName ?? defaultModelName(checkpointPath, file), fingerprint, file };
}
