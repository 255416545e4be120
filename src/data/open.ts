/** `kd train` behind the CLI: choose the data source, show progress, print the summary. */
import os from 'node:os';
import { initBackend } from '../backend/index.js';
import type { ResolvedTrain } from '../cli/train.js';
import { KdError } from '../core/errors.js';
import { formatDuration, startProgress } from '../core/progress.js';
import { datasetSource } from './loader.js';
import { isDatasetDir, openDataset } from './dataset.js';
import type { ModelConfig } from '../model/config.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { BatchSourceFactory } from './batch.js';
import { syntheticTeacher } from './synthetic.js';
import { corpusBatches, encodeDocs, readCorpus, splitDocs } from './corpus.js';
import { type TrainSummary, train } from '../train/trainer.js';

export interface DataOptions {
  batchSize: number;
  seqLen: number;
  seed: number;
  /** synthetic data only: its vocabulary and teacher top-k */
  vocabSize?: number;
  topK?: number;
  /** corpus data: how to turn its text into ids */
  tokenizer?: Tokenizer;
}

export interface OpenedData {
  train: BatchSourceFactory;
  val?: BatchSourceFactory;
  /** the dataset's tokenizer (datasets built by kd dataset build carry one) */
  tokenizer?: Tokenizer;
  /** soft-labelled positions of the train split, when the data says (a dataset) */
  trainLabelled?: number;
}

/**
 * `--data`: "synthetic" (the built-in bigram teacher), "corpus:…" (plain text) or a dataset directory
 * (kd dataset build). Shared by train, eval and compress.
 */
export function openData(spec: string, o: DataOptions): OpenedData {
  if (spec === 'synthetic') {
    const s = { vocabSize: o.vocabSize ?? 8192, seqLen: o.seqLen, batchSize: o.batchSize, topK: o.topK ?? 20, seed: o.seed };
    return { train: syntheticTeacher(s), val: syntheticTeacher({ ...s, split: 'val' }) };
  }
  if (spec.startsWith('corpus:')) {
    // Plain next-token training on text (the embedded teacher): hard labels only.
    if (!o.tokenizer) throw new KdError('bad-data', `--data ${spec}: plain-text training needs --tokenizer FILE (make one with kd tokenizer train)`);
    const corpus = readCorpus(spec.slice('corpus:'.length));
    const open = (split: 'train' | 'val') => corpusBatches(encodeDocs(splitDocs(corpus, split), o.tokenizer!), { ...o, name: corpus.name, split });
    return { train: open('train'), val: open('val'), tokenizer: o.tokenizer };
  }
  if (!isDatasetDir(spec)) throw new KdError('bad-data', `--data ${spec}: not a kd dataset directory (no manifest.json; use "synthetic", "corpus:sotu", or build one with kd dataset build)`);
  // A dataset: its train split for training, its val split (when not empty) for validation.
  const ds = openDataset(spec);
  const o2 = { batchSize: o.batchSize, seqLen: o.seqLen, seed: o.seed };
  return {
    train: datasetSource(ds, { ...o2, split: 'train' }),
    val: ds.manifest.splits.val.tokens > 0 ? datasetSource(ds, { ...o2, split: 'val' }) : undefined,
    tokenizer: ds.tokenizer,
    trainLabelled: ds.manifest.splits.train.labelled,
  };
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

/**
 * Workers by default: one per core (at most 8, at most one per sequence of a batch) on wasm and cpu,
 * whose kernels use one thread each; tfjs-node's kernels are multi-threaded already.
 */
export function defaultWorkers(backend: string, batchSize: number): number {
  if (backend !== 'wasm' && backend !== 'cpu') return 1;
  return Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8, batchSize));
}

/** The train bar; {etaText}, not {eta}, which is cli-progress's own ETA in bare seconds and would win over ours. */
export const TRAIN_BAR_FORMAT = 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {etaText}';

export async function runTrain(r: ResolvedTrain, io: { backend?: string; json: boolean }): Promise<TrainSummary> {
  const be = await initBackend({ backend: io.backend });
  const workers = r.workers ?? defaultWorkers(be.backend, r.config.batchSize);
  const data = trainData(r);
  const model = data.model;
  const out = (s: string) => process.stdout.write(s + '\n');
  if (data.trainLabelled === 0 && r.config.loss.alpha < 1) {
    // not an error (hard labels still train), but a KD run with nothing to distil is almost always a mistake
    process.stderr.write(`kd train: warning: ${r.data} has no soft labels (0 labelled positions: collected with --top-k 0, or from responses without logprobs): this trains on the hard targets only\n`);
  }
  if (!io.json) out(`kd train: ${model.nLayers}×${model.dModel} student, vocab ${model.vocabSize}, ${r.config.steps} steps on ${be.backend} × ${workers} worker${workers > 1 ? 's' : ''} → ${r.out}`);
  const bar = startProgress(r.config.steps, TRAIN_BAR_FORMAT, !io.json && Boolean(process.stderr.isTTY));
  const stop = new AbortController();
  const onSig = () => stop.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    const s = await train({
      model, config: r.config, data: data.train, val: data.val, outDir: r.out, resume: r.resume, signal: stop.signal,
      workers, backend: be.backend, tokenizer: data.tokenizer?.toJSON(),
      meta: { backend: be.backend },
      onStep: (p) => bar.update(p.step, { loss: p.loss.toFixed(4), tps: Math.round(p.tokensPerSec), etaText: formatDuration(p.etaSec) }),
      onLog: (l) => {
        if (io.json) out(JSON.stringify({ event: 'log', ...l }));
        else if (l.valLoss !== undefined) process.stderr.write(`\nstep ${l.step}: val loss ${l.valLoss.toFixed(4)}\n`);
      },
    });
    bar.stop();
    if (io.json) out(JSON.stringify({ event: 'summary', ...s, backend: be.backend, interrupted: stop.signal.aborted }));
    else {
      out(`${stop.signal.aborted ? 'interrupted at' : 'done:'} step ${s.steps}, loss ${s.loss.toFixed(4)}${s.valLoss !== undefined ? `, val loss ${s.valLoss.toFixed(4)}` : ''}`);
      out(`${Math.round(s.tokensPerSec)} tokens/s, ${s.msPerStep.toFixed(0)} ms/step, ${(s.flops / 1e9).toFixed(1)} GFLOP/s, ${s.params.toLocaleString('en-US')} parameters`);
      out(`checkpoint: ${s.checkpoint}${stop.signal.aborted ? ' (continue with --resume)' : ''}`);
    }
    if (stop.signal.aborted) process.exitCode = 130; // interrupted: a checkpoint was written, but the run is not complete
    return s;
  } finally {
    bar.stop();
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}
