/**
 * The soft-label dataset format written by `kd dataset build` and read by `kd train --data DIR`.
 *
 * Layout: DIR/{manifest.json, tokenizer.json, train-00000.arrow, …, val-00000.arrow, …}. Shards are
 * Arrow IPC *file* format (footer → a truncated shard fails to open); manifest.json holds the sha256
 * of every shard and is written last, so a directory without it is not a dataset.
 *
 * One row per sequence (one teacher answer, or one scored chunk of a text), in student token ids:
 * - `ids` [L] the student input ids. A teacher token kept in the student vocabulary is one id; any
 *   other becomes its greedy student encoding (`Tokenizer.encode(bytes)`: bytes and shorter kept
 *   tokens). Chat answers start with the rendered prompt's greedy encoding.
 * - `target_from`: position n has the hard target ids[n+1] when target_from ≤ n < L−1, else none.
 *   Positions before it are context: the prompt (chat) or the overlap a score chunk shares with the
 *   chunk before it (its text is labelled there). The last prompt position does predict the answer's
 *   first token, so target_from is the last context position.
 * - `mask` [L] 1 where position n carries the teacher's soft label for the next token. The label of
 *   teacher token i sits on the position just before the FIRST student token of token i; the other
 *   positions inside a split teacher token (its continuation bytes) get hard targets but mask 0.
 *   A teacher token at position 0 has no predecessor, so its label is dropped.
 * - `top_ids` / `top_logprobs` [labelled][k ≤ K]: per masked position in order, the teacher's top-k
 *   projected onto student ids, best first, ids unique. An alternative not kept in the vocabulary
 *   goes to the first student token of its encoding; alternatives landing on one id are merged by
 *   log-sum-exp. Natural-log probabilities stored as float16 bits (see ./float16.ts for precision).
 *
 * Version 2 (the default since issue 17) stores the same top-k in ~⅔ of the bytes: per labelled
 * position `top_counts` (Uint8, k ≤ 255) and `top_best` (the best log-prob, float16), per entry but
 * the best one `top_lp8` (8 bits below the best, ./lp8.ts), and per row `top_ids` as one Binary of
 * ids bit-packed to `kd.id_bits` = ceil(log2 V) bits each (LSB first). ids, mask, target_from and
 * input_id are as in version 1. Readers decode both versions to the same {@link ShardBatch}-like
 * flat arrays (src/dataset/shards.ts); `kd dataset build --format-version 1` still writes version 1.
 *
 * Schema metadata: `kd.format` = {@link DATASET_FORMAT}, `kd.format_version`, `kd.split`,
 * `kd.tokenizer_hash` (version 2 adds `kd.id_bits` and `kd.lp_code`). Readers refuse other formats
 * and versions.
 */
import { Binary, Field, Float16, Int32, List, Schema, Uint16, Uint8, Utf8 } from 'apache-arrow';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KdError } from '../core/errors.js';
import { LP8_CODE } from './lp8.js';
import { DATASET_FORMAT_VERSIONS, type DatasetVersion } from './dataset-version.js';
import { readJsonFile } from '../core/json-file.js';

export const DATASET_FORMAT = 'kd-dataset';
export { DATASET_FORMAT_VERSION, DATASET_FORMAT_VERSIONS, type DatasetVersion } from './dataset-version.js';
export const DATASET_MANIFEST = 'manifest.json';
export const DATASET_TOKENIZER = 'tokenizer.json';
/** Student ids are Uint16: a mini student's vocabulary is at most this. */
export const MAX_STUDENT_VOCAB = 65536;

export type Split = 'train' | 'val';
export const SPLITS: readonly Split[] = ['train', 'val'];

const list = (t: ConstructorParameters<typeof Field>[1]) => new List(new Field('item', t, false));

/** version 1 columns */
export const DATASET_FIELDS: Field[] = [
  new Field('input_id', new Utf8(), false),
  new Field('ids', list(new Uint16()), false),
  new Field('mask', list(new Uint8()), false),
  new Field('target_from', new Int32(), false),
  new Field('top_ids', list(list(new Uint16())), false),
  new Field('top_logprobs', list(list(new Float16())), false),
];

/** version 2 columns */
export const DATASET_FIELDS_V2: Field[] = [
  ...DATASET_FIELDS.slice(0, 4),
  new Field('top_counts', list(new Uint8()), false),
  new Field('top_best', list(new Float16()), false),
  new Field('top_ids', new Binary(), false),
  new Field('top_lp8', list(new Uint8()), false),
];

export const datasetFields = (version: number): Field[] => (version === 1 ? DATASET_FIELDS : DATASET_FIELDS_V2);

/** The schema of a shard; version 2 needs the bits per packed id. */
export function datasetSchema(split: Split, tokenizerHash: string, version: DatasetVersion = 1, idBits = 16): Schema {
  const meta = new Map([
    ['kd.format', DATASET_FORMAT],
    ['kd.format_version', String(version)],
    ['kd.split', split],
    ['kd.tokenizer_hash', tokenizerHash],
  ]);
  if (version === 2) {
    meta.set('kd.id_bits', String(idBits));
    meta.set('kd.lp_code', LP8_CODE);
  }
  return new Schema(datasetFields(version), meta);
}

const supported = () => DATASET_FORMAT_VERSIONS.join(' and ');

/**
 * Refuses a shard of another format, version, tokenizer or column layout; names the file. Returns
 * the shard's version and (version 2) its bits per packed id.
 */
export function checkDatasetSchema(schema: Schema, file: string, tokenizerHash: string, expectVersion?: number): { version: DatasetVersion; idBits: number } {
  const format = schema.metadata.get('kd.format');
  const v = schema.metadata.get('kd.format_version');
  if (format !== DATASET_FORMAT) throw new KdError('dataset-format', `${file}: not a kd dataset shard (kd.format is ${JSON.stringify(format ?? null)}, expected "${DATASET_FORMAT}")`);
  const version = Number(v);
  if (!DATASET_FORMAT_VERSIONS.includes(version) || String(version) !== v) {
    throw new KdError('dataset-version', `${file}: dataset format version ${v} is not supported (this kd reads versions ${supported()}); rebuild with kd dataset build or upgrade kd`);
  }
  if (expectVersion !== undefined && version !== expectVersion) throw new KdError('dataset-version', `${file}: format version ${version}, but the manifest says ${expectVersion}; rebuild the dataset`);
  const hash = schema.metadata.get('kd.tokenizer_hash');
  if (hash !== tokenizerHash) throw new KdError('tokenizer-mismatch', `${file}: built with tokenizer ${hash?.slice(0, 12)}…, but the dataset's tokenizer is ${tokenizerHash.slice(0, 12)}…; rebuild the dataset`);
  for (const f of datasetFields(version)) {
    const g = schema.fields.find((x) => x.name === f.name);
    if (!g || String(g.type) !== String(f.type)) throw new KdError('dataset-schema', `${file}: column "${f.name}" is ${g ? `${g.type}, expected ${f.type}` : 'missing'}`);
  }
  let idBits = 16;
  if (version === 2) {
    const code = schema.metadata.get('kd.lp_code');
    if (code !== LP8_CODE) throw new KdError('dataset-schema', `${file}: log-prob code ${JSON.stringify(code ?? null)} is not supported (this kd reads "${LP8_CODE}")`);
    idBits = Number(schema.metadata.get('kd.id_bits'));
    if (!Number.isInteger(idBits) || idBits < 1 || idBits > 16) throw new KdError('dataset-schema', `${file}: kd.id_bits is ${JSON.stringify(schema.metadata.get('kd.id_bits') ?? null)}, expected an integer in [1, 16]`);
  }
  return { version: version as DatasetVersion, idBits };
}

export const shardName = (split: Split, index: number): string => `${split}-${String(index).padStart(5, '0')}.arrow`;

export interface ShardInfo {
  file: string;
  sha256: string;
  bytes: number;
  /** Arrow record batches in the shard: the reader's unit of shuffling */
  batches: number;
  sequences: number;
  tokens: number;
  labelled: number;
  /** top-k entries (version 2 manifests; absent from version 1) */
  entries?: number;
}

export interface SplitStats {
  sequences: number;
  /** student positions */
  tokens: number;
  /** positions with a soft label */
  labelled: number;
  /** positions with a hard target */
  targeted: number;
  /** top-k (id, log-prob) entries over labelled positions (absent from version 1 manifests) */
  entries?: number;
  /** shard bytes / entries (absent from version 1 manifests) */
  bytesPerEntry?: number;
  /** mean entropy (nats) of the teacher's renormalised top-k over labelled positions */
  meanEntropy: number;
  /** share of the teacher's top-k mass on alternatives that are one student id */
  massKept: number;
  /** shard bytes / labelled positions */
  bytesPerLabelled: number;
  bytes: number;
  shards: ShardInfo[];
}

export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  version: number;
  kdVersion: string;
  createdAt: string;
  /** the largest top-k of any position: the K of training batches */
  topK: number;
  teacher: { models: string[] };
  tokenizer: { file: string; hash: string; vocabSize: number; massKept: number };
  params: { vocabSize: number; valFraction: number; seed: number; shardBytes: number };
  source: { dir: string; files: { file: string; sha256: string; bytes: number }[] };
  counts: Record<string, number>;
  /** bytes per labelled position over both splits; the target is ≤ 6·topK + 16 */
  bytesPerLabelled: number;
  /** shard bytes per top-k entry over both splits (absent from version 1 manifests) */
  bytesPerEntry?: number;
  splits: Record<Split, SplitStats>;
}

/** Reads and checks DIR/manifest.json; every failure names the file. */
export function readDatasetManifest(dir: string): DatasetManifest {
  const file = join(dir, DATASET_MANIFEST);
  if (!existsSync(file)) throw new KdError('not-a-dataset', `${file}: missing — ${dir} is not a kd dataset (build one with kd dataset build)`);
  const m = readJsonFile(file, 'dataset manifest', 'dataset-manifest', '; rebuild with kd dataset build --force') as DatasetManifest;
  if (!m || m.format !== DATASET_FORMAT) throw new KdError('dataset-format', `${file}: not a kd dataset manifest (format ${JSON.stringify(m?.format ?? null)})`);
  if (!DATASET_FORMAT_VERSIONS.includes(m.version)) {
    throw new KdError('dataset-version', `${file}: dataset format version ${m.version} is not supported (this kd reads versions ${supported()}); rebuild or upgrade kd`);
  }
  for (const s of SPLITS) {
    if (!m.splits?.[s] || !Array.isArray(m.splits[s].shards)) throw new KdError('dataset-manifest', `${file}: splits.${s}.shards is missing`);
  }
  return m;
}

/** One sequence of the dataset as kd dataset build writes it (one row of a shard; the columns above). */
export interface Sequence {
  inputId: string;
  /** [L] student input ids */
  ids: number[];
  /** [L] 1 where the position carries a soft label for the next token */
  mask: Uint8Array;
  /** positions n with target_from ≤ n < L−1 have the hard target ids[n+1] */
  targetFrom: number;
  /** per labelled position (in order): how many (id, log-prob) entries */
  topCounts: number[];
  /** [Σ topCounts] student ids, best first within a position */
  topIds: number[];
  /** [Σ topCounts] natural-log probabilities (float64 here; stored as float16) */
  topLogprobs: number[];
}
