/**
 * Loading a student checkpoint for evaluation — the one place to swap for the shared `loadModel()`
 * once it lands. Reads fp32, pruned (fp32 with zeros) and int8 checkpoints: int8 tensors carry
 * symmetric `scales`, either one per tensor or one per channel of the LAST axis, and are
 * dequantized here (w = q · scale) into an fp32 model for tfjs. Also measures what the file holds:
 * parameters, stored bytes of the weights, sparsity and bits per weight.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KdError } from '../errors.js';
import { type ModelConfig, resolveModelConfig } from '../model/config.js';
import { type Model, modelFromArrays, paramShapes } from '../model/gpt.js';
import { type CheckpointHeader, CHECKPOINT_FILE, type NamedArray, loadCheckpoint } from '../schema/checkpoint.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';

export type StudentKind = 'fp32' | 'pruned' | 'int8';

export interface StudentSize {
  /** weights of the model (optimizer state excluded) */
  params: number;
  /** the checkpoint file's size; a training checkpoint also holds AdamW moments */
  bytesOnDisk: number;
  /** bytes of the model's weights as stored (int8 values + fp32 scales, or fp32) */
  weightBytes: number;
  /** fraction of exact zeros over the 2-D weight matrices (LayerNorm gains/biases excluded) */
  sparsity: number;
  /** stored bits per weight: weightBytes · 8 / params */
  bits: number;
}

export interface LoadedStudent {
  file: string;
  header: CheckpointHeader;
  config: ModelConfig;
  model: Model;
  tokenizer?: Tokenizer;
  kind: StudentKind;
  size: StudentSize;
}

function dequantize(a: NamedArray, file: string): Float32Array {
  if (a.dtype === 'float32') return a.data as Float32Array;
  if (a.dtype !== 'int8') throw new KdError('corrupt-checkpoint', `${file}: weight ${a.name} has dtype ${a.dtype}; expected float32 or int8`);
  const s = a.scales;
  const C = a.shape[a.shape.length - 1] ?? 1;
  if (!s || (s.length !== 1 && s.length !== C)) {
    throw new KdError('corrupt-checkpoint', `${file}: int8 weight ${a.name} needs 1 or ${C} scales (last axis), has ${s?.length ?? 0}`);
  }
  const q = a.data as Int8Array;
  const out = new Float32Array(q.length);
  // row-major: the last axis varies fastest, so channel = i mod C
  for (let i = 0; i < q.length; i++) out[i] = q[i] * (s.length === 1 ? s[0] : s[i % C]);
  return out;
}

/** Load, dequantize and measure one student. */
export function loadStudent(p: string): LoadedStudent {
  const { header, arrays, file } = loadCheckpoint(p);
  const config = resolveModelConfig(header.model as Partial<ModelConfig>, `${file}: model`);
  const weights = new Map<string, Float32Array>();
  let params = 0, weightBytes = 0, zeros = 0, matrixValues = 0, anyInt8 = false;
  for (const [name, shape] of paramShapes(config)) {
    const a = arrays.get(name);
    const n = shape.reduce((x, y) => x * y, 1);
    if (!a || a.data.length !== n) throw new KdError('corrupt-checkpoint', `${file}: weight ${name} is missing or not of shape [${shape}]`);
    const w = dequantize(a, file);
    weights.set(name, w);
    params += n;
    weightBytes += a.data.byteLength + (a.scales ? 4 * a.scales.length : 0);
    anyInt8 ||= a.dtype === 'int8';
    if (shape.length === 2) {
      matrixValues += n;
      for (let i = 0; i < n; i++) if (w[i] === 0) zeros++;
    }
  }
  let tokenizer: Tokenizer | undefined;
  if (header.tokenizer !== undefined && header.tokenizer !== null) tokenizer = Tokenizer.fromJSON(header.tokenizer, `${file}: tokenizer`);
  const sparsity = matrixValues ? zeros / matrixValues : 0;
  // An fp32 init or training run never produces exact zeros by chance in any number worth reporting.
  const kind: StudentKind = anyInt8 ? 'int8' : sparsity > 0.01 ? 'pruned' : 'fp32';
  const model: Model = modelFromArrays(config, weights);
  return {
    file, header, config, model, tokenizer, kind,
    size: { params, bytesOnDisk: fs.statSync(file).size, weightBytes, sparsity, bits: (weightBytes * 8) / params },
  };
}

/** A display name for `--student [NAME=]PATH`: the given name, else the run directory's name. */
export function studentName(spec: string): { name: string; path: string } {
  const eq = spec.indexOf('=');
  if (eq > 0 && !fs.existsSync(spec)) return { name: spec.slice(0, eq), path: spec.slice(eq + 1) };
  const base = path.basename(spec);
  const name = base === CHECKPOINT_FILE ? path.basename(path.dirname(path.resolve(spec))) : base.replace(/\.kdc$/, '');
  return { name, path: spec };
}
