/**
 * What kd prune and kd quantize share: the input checkpoint (never modified), the data its
 * validation KL is measured on, the output directory (checkpoint.kdc + manifest.json, written
 * atomically, never over the input, never over an existing output without --force).
 */
import { sha256File } from '../core/hash.js';
import fs from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '../core/atomic.js';
import { KdError } from '../core/errors.js';
import type { ModelConfig } from '../model/config.js';
import type { Model } from '../model/gpt.js';
import type { LoadedModel } from '../model/load.js';
import { CHECKPOINT_FILE, type CheckpointContent, type CheckpointHeader, type NamedArray, resolveCheckpointPath, saveCheckpoint } from '../schema/checkpoint.js';
import type { Batch, BatchSourceFactory } from '../data/batch.js';
import { DEFAULT_TRAIN, type TrainConfig, resolveTrainConfig, evaluate } from '../train/index.js';
import { openData } from '../data/open.js';

/** Output paths, checked before any work is done. */
export function prepareOut(out: string, input: string, force: boolean | undefined): { dir: string; file: string } {
  const dir = out.endsWith('.kdc') ? path.dirname(out) : out;
  const file = out.endsWith('.kdc') ? out : path.join(out, CHECKPOINT_FILE);
  const inFile = resolveCheckpointPath(input);
  if (path.resolve(file) === path.resolve(inFile)) throw new KdError('would-overwrite', `--out ${out} is the input checkpoint; the input is never modified, choose another --out`);
  if (fs.existsSync(file) && !force) throw new KdError('would-overwrite', `${file} exists: pass --force to replace it, or choose another --out`);
  return { dir, file };
}

/** The checkpoint's training config (loss settings, batch shape, seed), or the defaults. */
export function trainConfigOf(header: CheckpointHeader, model: ModelConfig): TrainConfig {
  if (header.train) return resolveTrainConfig(header.train as Partial<TrainConfig>, 'checkpoint train config');
  return { ...DEFAULT_TRAIN, seqLen: Math.min(DEFAULT_TRAIN.seqLen, model.seqLen) };
}

export interface CompressData {
  train: BatchSourceFactory;
  /** fixed validation batches: every "KL before/after" is measured on the same ones */
  val: Batch[];
}

/**
 * Open --data like the checkpoint was trained (same batch shape and seed, so `synthetic` is the
 * same teacher) and check that its tokenizer is the checkpoint's.
 */
export function openCompressData(spec: string, loaded: LoadedModel, c: TrainConfig, evalBatches: number): CompressData {
  const meta = loaded.header.meta?.data as { topK?: number } | undefined;
  const d = openData(spec, { batchSize: c.batchSize, seqLen: c.seqLen, seed: c.seed, vocabSize: loaded.model.config.vocabSize, topK: meta?.topK });
  const ck = loaded.tokenizer?.hash();
  const ds = d.tokenizer?.hash();
  if (ck !== ds) {
    const what = (h?: string) => (h ? `tokenizer ${h.slice(0, 12)}` : 'no tokenizer');
    throw new KdError('tokenizer-mismatch', `--data ${spec} has ${what(ds)} but ${loaded.file} was trained with ${what(ck)}: compress with the dataset the student was trained on`);
  }
  if (d.tokenizer && d.tokenizer.vocabSize !== loaded.model.config.vocabSize) {
    throw new KdError('tokenizer-mismatch', `--data ${spec}: vocabulary of ${d.tokenizer.vocabSize} tokens, the model has ${loaded.model.config.vocabSize}`);
  }
  const src = (d.val ?? d.train).open();
  return { train: d.train, val: Array.from({ length: evalBatches }, () => src.next()) };
}

/** Validation KD divergence to the teacher (the checkpoint's loss settings, no hard-label term). */
export function validationKl(model: Model, val: Batch[], c: TrainConfig): number {
  return evaluate(model, val, { ...c, loss: { ...c.loss, alpha: 0 } }).kd;
}

/** Write OUT/checkpoint.kdc and OUT/manifest.json; returns the checkpoint's size in bytes. */
export function writeCompressed(o: {
  out: { dir: string; file: string }; input: LoadedModel; model: ModelConfig; arrays: NamedArray[];
  stage: string; parameters: Record<string, unknown>;
  /** the stage's figures, given the checkpoint's size in bytes */
  figures: (bytes: number) => Record<string, unknown>;
}): number {
  const h = o.input.header;
  const history = [...((h.meta?.compress as unknown[]) ?? []), { stage: o.stage, ...o.parameters }];
  // No `state`: a compressed checkpoint cannot be resumed as a training run (the trainer says so).
  const bytes = saveCheckpoint(o.out.file, compressedContent(o.input, o.model, o.arrays, history));
  writeJsonAtomic(path.join(o.out.dir, 'manifest.json'), {
    format: 'kd-compress-manifest', version: 1, stage: o.stage, createdAt: new Date().toISOString(),
    input: { file: o.input.file, sha256: sha256File(o.input.file) }, output: { file: o.out.file, bytes, sha256: sha256File(o.out.file) },
    parameters: o.parameters, figures: o.figures(bytes),
  });
  return bytes;
}

/** Checkpoint content of a compressed model: the input's header fields, no training state. */
export function compressedContent(input: LoadedModel, model: ModelConfig, arrays: NamedArray[], history?: unknown[]): CheckpointContent {
  const h = input.header;
  return {
    model: model as unknown as Record<string, unknown>, train: h.train, tokenizer: h.tokenizer,
    meta: { ...h.meta, ...(history ? { compress: history } : {}) }, arrays,
  };
}

/** Float32 checkpoint arrays of a model. */
export function float32Arrays(model: Model): NamedArray[] {
  return [...model.params].map(([name, v]) => ({ name, dtype: 'float32' as const, shape: v.shape, data: v.dataSync() as Float32Array }));
}
