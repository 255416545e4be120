/**
 * `kd dataset inspect`: per split, figures recomputed from the shards themselves (each one checked
 * against the manifest's sha256 on the way), plus what only the build could know (mass kept by
 * the tokenizer, which needs the teacher's original tokens).
 */
import { SPLITS, type Split } from '../schema/dataset.js';
import { entropy } from './convert.js';
import { openDataset } from '../data/dataset.js';
import { loadShard } from '../data/shards.js';

export interface SplitInspection {
  shards: number;
  sequences: number;
  tokens: number;
  labelled: number;
  targeted: number;
  /** mean entropy (nats) of the teacher's renormalised top-k over labelled positions */
  meanEntropy: number;
  /** mean number of top-k entries per labelled position */
  meanK: number;
  massKept: number;
  bytes: number;
  bytesPerToken: number;
  bytesPerLabelled: number;
  /** top-k (id, log-prob) entries, and shard bytes per entry */
  entries: number;
  bytesPerEntry: number;
}

export interface Inspection {
  dir: string;
  format: string;
  version: number;
  createdAt: string;
  teacherModels: string[];
  tokenizer: { hash: string; vocabSize: number; massKept: number };
  topK: number;
  bytesPerLabelled: number;
  /** shard bytes per top-k entry over both splits */
  bytesPerEntry: number;
  targetBytesPerLabelled: number;
  splits: Record<Split, SplitInspection>;
}

export function inspectDataset(dir: string): Inspection {
  const ds = openDataset(dir);
  const m = ds.manifest;
  const splits = {} as Record<Split, SplitInspection>;
  for (const split of SPLITS) {
    const s = { shards: 0, sequences: 0, tokens: 0, labelled: 0, targeted: 0, entropySum: 0, entries: 0, bytes: 0 };
    const lps: number[] = [];
    for (const info of m.splits[split].shards) {
      s.shards++;
      s.bytes += info.bytes;
      for (const b of loadShard(dir, info, m.tokenizer.hash, true, m.tokenizer.vocabSize)) {
        s.sequences += b.rows;
        for (let r = 0; r < b.rows; r++) {
          const L = b.idOff[r + 1] - b.idOff[r];
          s.tokens += L;
          s.targeted += Math.max(0, L - 1 - b.targetFrom[r]);
        }
        const nLab = b.labOff[b.rows];
        s.labelled += nLab;
        for (let j = 0; j < nLab; j++) {
          lps.length = 0;
          for (let v = b.topOff[j]; v < b.topOff[j + 1]; v++) lps.push(b.topLogprobs[v]);
          s.entries += lps.length;
          s.entropySum += entropy(lps);
        }
      }
    }
    splits[split] = {
      shards: s.shards, sequences: s.sequences, tokens: s.tokens, labelled: s.labelled, targeted: s.targeted,
      meanEntropy: s.labelled ? s.entropySum / s.labelled : 0, meanK: s.labelled ? s.entries / s.labelled : 0,
      massKept: m.splits[split].massKept, bytes: s.bytes,
      bytesPerToken: s.tokens ? s.bytes / s.tokens : 0, bytesPerLabelled: s.labelled ? s.bytes / s.labelled : 0,
      entries: s.entries, bytesPerEntry: s.entries ? s.bytes / s.entries : 0,
    };
  }
  return {
    dir, format: m.format, version: m.version, createdAt: m.createdAt, teacherModels: m.teacher.models,
    tokenizer: { hash: m.tokenizer.hash, vocabSize: m.tokenizer.vocabSize, massKept: m.tokenizer.massKept },
    topK: m.topK, bytesPerLabelled: m.bytesPerLabelled,
    bytesPerEntry: (() => { const e = splits.train.entries + splits.val.entries; return e ? (splits.train.bytes + splits.val.bytes) / e : 0; })(),
    targetBytesPerLabelled: 6 * m.topK + 16, splits,
  };
}
