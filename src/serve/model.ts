/**
 * Loading a kd checkpoint for serving: model config, weights (float32, or int8 with symmetric scales
 * as written by compression), tokenizer, and the names a server reports.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { KdError } from '../errors.js';
import { type ModelConfig, resolveModelConfig } from '../model/config.js';
import { type Model, modelFromArrays, paramShapes } from '../model/gpt.js';
import { type NamedArray, loadCheckpoint } from '../schema/checkpoint.js';
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

/**
 * Float32 values of a weight. int8: value = q × scale, with one scale per channel of the last axis
 * when there are as many scales as the last dimension, else one scale for the whole tensor.
 */
export function dequantize(a: NamedArray, file: string): Float32Array {
  if (a.dtype === 'float32') return a.data as Float32Array;
  if (a.dtype !== 'int8') throw new KdError('corrupt-checkpoint', `${file}: weight ${a.name} has dtype ${a.dtype}; expected float32 or int8`);
  const scales = a.scales ?? [];
  const last = a.shape[a.shape.length - 1] ?? 1;
  const perChannel = scales.length === last && scales.length > 1;
  if (!perChannel && scales.length !== 1) {
    throw new KdError('corrupt-checkpoint', `${file}: int8 weight ${a.name} needs 1 or ${last} scales, has ${scales.length}`);
  }
  const q = a.data as Int8Array;
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) out[i] = q[i]! * scales[perChannel ? i % last : 0]!;
  return out;
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
  const config = resolveModelConfig(header.model as Partial<ModelConfig>, `${file}: model`);
  const tokenizer = tokenizerOf(header, config, file);
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(config)) {
    const a = arrays.get(name);
    if (!a) throw new KdError('corrupt-checkpoint', `${file}: weight ${name} is missing`);
    if (a.shape.join(',') !== shape.join(',')) throw new KdError('corrupt-checkpoint', `${file}: weight ${name} has shape [${a.shape}], the config needs [${shape}]`);
    weights.set(name, dequantize(a, file));
  }
  const fingerprint = 'fp_' + createHash('sha256').update(header.payloadSha256).update(tokenizer.hash()).digest('hex').slice(0, 12);
  return { model: modelFromArrays(config, weights), config, tokenizer, name: modelName ?? defaultModelName(checkpointPath, file), fingerprint, file };
}
