/**
 * `kd collect --shard i/n`: which input rows one of n collectors takes (pure).
 *
 * A row belongs to shard `sha256(id) mod n`. Keyed on the row's input id (not its row number in the
 * file's order of rows that happen to be sent), so appending rows never moves a row to another shard,
 * and a uniform hash keeps shards balanced whatever the ids look like ("p1", "p2"… or UUIDs). Rows
 * without an id column get their row number as id: stable when rows are appended, not when rows are
 * inserted or removed above them (give an id column for that).
 *
 * "Shard" here is a slice of the input; the raw-NNNNN.arrows files are the output's shards.
 */
import { createHash } from 'node:crypto';
import { KdError } from '../core/errors.js';

export interface ShardSpec {
  /** 0-based, < count (a Kubernetes JOB_COMPLETION_INDEX or a CI matrix value). */
  index: number;
  count: number;
}

/** Above this, a typo ("0/80000") is likelier than a fan-out that wide. */
export const MAX_SHARDS = 65_536;

/** "i/n" → spec; anything else is one KdError line. */
export function parseShardSpec(text: string): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) return fail(text, 'not two whole numbers i/n');
  return checkShardSpec({ index: Number(m[1]), count: Number(m[2]) }, text);
}

function fail(text: string, why: string): never {
  throw new KdError('bad-option', `--shard: ${JSON.stringify(text)} is not valid (${why}); want i/n with 0 ≤ i < n, e.g. --shard 0/8 … --shard 7/8`);
}

/** Validates a spec given programmatically (or just parsed). */
export function checkShardSpec(s: ShardSpec, text = `${s.index}/${s.count}`): ShardSpec {
  if (!Number.isInteger(s.count) || s.count < 1 || s.count > MAX_SHARDS) fail(text, `n must be in 1..${MAX_SHARDS}`);
  if (!Number.isInteger(s.index) || s.index < 0 || s.index >= s.count) fail(text, `i must be in 0..${s.count - 1}`);
  return { index: s.index, count: s.count };
}

export const formatShard = (s: ShardSpec): string => `${s.index}/${s.count}`;

/** The shard (0..count-1) of an input id: the first 48 bits of sha256(id), mod count. */
export function shardOf(id: string, count: number): number {
  // 48 bits fit a double exactly; the modulo bias is < count / 2^48, i.e. nil
  return createHash('sha256').update(id, 'utf8').digest().readUIntBE(0, 6) % count;
}

/** True when the row with this id is this collector's (always true without a spec). */
export function inShard(id: string, spec: ShardSpec | undefined): boolean {
  return spec === undefined || spec.count === 1 || shardOf(id, spec.count) === spec.index;
}
