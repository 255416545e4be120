/**
 * Loading a student checkpoint for evaluation: the shared loader (src/model/load.ts — fp32, pruned
 * or int8, dequantized to an fp32 model), plus what the file holds: parameters, stored bytes of the
 * weights, sparsity and bits per weight.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../model/config.js';
import { type Model, modelFromArrays, paramShapes } from '../model/gpt.js';
import { modelConfigOf, tokenizerOf, weightArrays } from '../model/load.js';
import { prunableNames } from '../compress/index.js';
import { type CheckpointHeader, CHECKPOINT_FILE, loadCheckpoint } from '../schema/checkpoint.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { StudentKind, StudentSize } from '../schema/eval-report.js';
export type { StudentKind, StudentSize } from '../schema/eval-report.js';



export interface LoadedStudent {
  file: string;
  header: CheckpointHeader;
  config: ModelConfig;
  model: Model;
  tokenizer?: Tokenizer;
  kind: StudentKind;
  size: StudentSize;
}

/** Load, dequantize and measure one student. */
export function loadStudent(p: string): LoadedStudent {
  const { header, arrays, file } = loadCheckpoint(p);
  const config = modelConfigOf(header, file);
  const weights = weightArrays(config, arrays, file); // the shared loader: float32, pruned or int8
  let params = 0, weightBytes = 0, deployableBytes = 0, zeros = 0, allZeros = 0, matrixValues = 0, anyInt8 = false;
  const prunable = new Set(prunableNames(config));
  for (const [name] of paramShapes(config)) {
    const a = arrays.get(name)!;
    const w = weights.get(name)!;
    params += w.length;
    const scales = a.scales ? 4 * a.scales.length : 0;
    weightBytes += a.data.byteLength + scales;
    anyInt8 ||= a.dtype === 'int8';
    let z = 0;
    for (let i = 0; i < w.length; i++) if (w[i] === 0) z++;
    allZeros += z;
    const width = a.data.byteLength / w.length;
    deployableBytes += Math.min(a.data.byteLength, Math.ceil(w.length / 8) + (w.length - z) * width) + scales;
    if (prunable.has(name)) {
      matrixValues += w.length;
      zeros += z;
    }
  }
  const asked = ((header.meta?.compress as { stage?: string; sparsity?: unknown }[] | undefined) ?? []).filter((c) => c.stage === 'prune' && typeof c.sparsity === 'number').at(-1);
  const tokenizer = tokenizerOf(header, file);
  const sparsity = matrixValues ? zeros / matrixValues : 0;
  // An fp32 init or training run never produces exact zeros by chance in any number worth reporting.
  const kind: StudentKind = anyInt8 ? 'int8' : sparsity > 0.01 ? 'pruned' : 'fp32';
  const model: Model = modelFromArrays(config, weights);
  return {
    file, header, config, model, tokenizer, kind,
    size: {
      params, bytesOnDisk: fs.statSync(file).size, weightBytes, deployableBytes, sparsity, overallSparsity: allZeros / params,
      askedSparsity: asked ? (asked.sparsity as number) : null, bits: (weightBytes * 8) / params,
    },
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
