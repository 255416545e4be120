/**
 * The one way to load a student for use (compress, eval, serve): any kd checkpoint — trained,
 * pruned (smaller per-block shapes in its config) or quantized (int8 + scales, dequantized here) —
 * becomes a float32 Model. Training state, if present, is ignored.
 */
import { dequantizeArray } from './int8.js';
import { KdError } from '../core/errors.js';
import { type CheckpointHeader, type NamedArray, loadCheckpoint } from '../schema/checkpoint.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { type ModelConfig, resolveModelConfig } from './config.js';
import { type Model, modelFromArrays, paramShapes } from './gpt.js';

export interface LoadedModel {
  model: Model;
  header: CheckpointHeader;
  /** the checkpoint file actually read */
  file: string;
  /** the tokenizer the model was trained with, when it was trained on a dataset */
  tokenizer?: Tokenizer;
}

/** Float32 weights by name from checkpoint arrays, int8 ones dequantized; every shape checked. */
export function weightArrays(config: ModelConfig, arrays: Map<string, NamedArray>, file: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(config)) {
    const a = arrays.get(name);
    const bad = (why: string) => new KdError('corrupt-checkpoint', `${file}: weight ${name} ${why}`);
    if (!a) throw bad('is missing');
    if (a.shape.join(',') !== shape.join(',')) throw bad(`has shape [${a.shape}], the model config needs [${shape}]`);
    if (a.dtype === 'float32') out.set(name, a.data as Float32Array);
    else if (a.dtype === 'int8') {
      if (!a.scales?.length) throw bad('is int8 without scales');
      out.set(name, dequantizeArray(a.data as Int8Array, a.shape, a.scales, a.axis));
    } else throw bad(`has dtype ${a.dtype}`);
  }
  return out;
}

export function modelConfigOf(header: CheckpointHeader, file: string): ModelConfig {
  return resolveModelConfig(header.model as Partial<ModelConfig>, `${file}: model`);
}

export function tokenizerOf(header: CheckpointHeader, file: string): Tokenizer | undefined {
  return header.tokenizer ? Tokenizer.fromJSON(header.tokenizer, `${file}: tokenizer`) : undefined;
}

/** Load a checkpoint (file or run directory) as a ready float32 Model. The caller disposes it. */
export function loadModel(checkpointPath: string): LoadedModel {
  const { header, arrays, file } = loadCheckpoint(checkpointPath);
  const config = modelConfigOf(header, file);
  const model = modelFromArrays(config, weightArrays(config, arrays, file));
  const tokenizer = tokenizerOf(header, file);
  return { model, header, file, ...(tokenizer ? { tokenizer } : {}) };
}
