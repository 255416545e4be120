/** Opening a built dataset: its manifest, its tokenizer (which must be the one it was built with), its shards. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KdError } from '../core/errors.js';
import { DATASET_TOKENIZER, type DatasetManifest, type Split, readDatasetManifest } from '../schema/dataset.js';
import { type Tokenizer, readTokenizerFile } from '../tokenizer/tokenizer.js';
import { openShard } from './shards.js';

export interface OpenDataset {
  dir: string;
  manifest: DatasetManifest;
  tokenizer: Tokenizer;
}

/** True when `dir` looks like a dataset (has a manifest.json): what `kd train --data` checks. */
export function isDatasetDir(dir: string): boolean {
  return existsSync(join(dir, 'manifest.json'));
}

/** Reads the manifest and tokenizer; refuses a tokenizer whose hash is not the manifest's. */
export function openDataset(dir: string): OpenDataset {
  const manifest = readDatasetManifest(dir);
  const file = join(dir, manifest.tokenizer?.file ?? DATASET_TOKENIZER);
  const tokenizer = readTokenizerFile(file);
  const hash = tokenizer.hash();
  if (hash !== manifest.tokenizer.hash) {
    throw new KdError('tokenizer-mismatch', `${file}: tokenizer ${hash.slice(0, 12)}… does not match the dataset (manifest.json says ${manifest.tokenizer.hash.slice(0, 12)}…); restore the dataset's tokenizer.json or rebuild the dataset`);
  }
  return { dir, manifest, tokenizer };
}

/** Checks every shard of a split: size and sha256 against the manifest, Arrow footer, format version, tokenizer. */
export function verifySplit(ds: OpenDataset, split: Split): void {
  for (const s of ds.manifest.splits[split].shards) openShard(ds.dir, s, ds.manifest.tokenizer.hash, true);
}
