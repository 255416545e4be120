/**
 * datasets/NAME/raw/manifest.json: what made the raw data (resolved options without secrets, the
 * request shape, input hash, teacher), its figures (counts, tokens, cost, fingerprints, shards) and
 * every run's times and outcome. Written atomically (temp file + rename).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ShardSpec } from './partition.js';
import { canonicalJson } from './request.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'kd-collect-manifest';
export const MANIFEST_VERSION = 1;

export interface CollectRunRecord {
  started_at: string;
  finished_at: string | null;
  stop_reason: string;
  sent: number;
  retries: number;
  answered: number;
  rejected: number;
  cost_usd: number;
}

export interface CollectManifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  kd_version: string;
  status: 'running' | 'complete' | 'stopped';
  stop_reason: string | null;
  created_at: string;
  updated_at: string;
  input: { file: string; sha256: string; bytes: number };
  /** The slice of the input rows this directory holds (`kd collect --shard`); null: all of them. Absent before sharding existed. */
  shard?: ShardSpec | null;
  options: Record<string, unknown>;
  request_shape: Record<string, unknown>;
  request_shape_hash: string;
  teacher: { base_url: string; model: string; models_seen: string[]; system_fingerprints: string[] };
  counts: { requests_total: number; records: number; rejects: number; pending: number };
  tokens: { prompt: number; completion: number; cached: number; estimate_method: string };
  price: { input: number; output: number; cached_input: number | null; source: string };
  cost_usd: number;
  shards: { file: string; records: number; batches: number; bytes: number }[];
  runs: CollectRunRecord[];
}

export function shapeHash(shape: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(shape)).digest('hex');
}

/** The manifest in `dir`, or null if absent or unreadable (a corrupt manifest is rewritten, with a warning). */
export function readManifest(dir: string, warn: (line: string) => void = () => {}): CollectManifest | null {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) return null;
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as CollectManifest;
    if (m.format !== MANIFEST_FORMAT) throw new Error(`format is ${JSON.stringify(m.format)}`);
    return m;
  } catch (e) {
    warn(`${path}: unreadable manifest (${(e as Error).message}); it will be rewritten`);
    return null;
  }
}

export function writeManifest(dir: string, m: CollectManifest): void {
  const path = join(dir, MANIFEST_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(m, null, 2) + '\n');
  renameSync(tmp, path);
}

export { hashFile } from '../core/hash.js';

