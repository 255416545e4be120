/** `--data`: the batches of train, eval and compress — a built dataset, plain text, or the synthetic teacher. */
import { KdError } from '../core/errors.js';
import { datasetSource } from './loader.js';
import { isDatasetDir, openDataset } from './dataset.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { BatchSourceFactory } from './batch.js';
import { syntheticTeacher } from './synthetic.js';
import { corpusBatches, encodeDocs, readCorpus, splitDocs } from './corpus.js';

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
