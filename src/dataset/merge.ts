/**
 * `kd dataset merge`: several raw directories (the shards of a `kd collect --shard i/n` fan-out, or
 * overlapping runs) → one raw directory that `kd dataset build --from` reads.
 *
 * Every input shard is checked (format and version, no torn tail) and no input may be unfinished
 * (a `.partial` shard, or a manifest still "running"); any failure leaves --out as it was.
 * A request hash is kept from the first --from that holds it; later copies are dropped and counted
 * (the same row collected twice must train once). A shard with nothing dropped is copied byte for
 * byte; one with drops is re-encoded without them. Rejects are concatenated, de-duplicated by row id
 * and reason. The result is built in a temp directory beside --out and renamed into place, so --out
 * is the old directory or the new one, never half of one; the inputs are only read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { replaceDir, tempDirBeside, writeJsonAtomic } from '../core/atomic.js';
import { MANIFEST_FILE, MANIFEST_FORMAT, type CollectManifest, REJECTS_FILE, formatShard, type ShardSpec } from '../collect/index.js';
import { KD_VERSION } from '../core/version.js';
import { KdError } from '../core/errors.js';
import { IPC_EOS, RAW_SHARD_RE, RawStreamEncoder, listRawShards, rawSchema, rawShardName, readRawBytes, readRawColumns, scanIpcStream } from '../schema/raw.js';
import { readJsonFile } from '../core/json-file.js';

export const MERGE_FORMAT = 'kd-raw-merge';
export const MERGE_VERSION = 1;

export interface MergeOptions {
  /** raw directories, in priority order: on a duplicate request the first keeps it */
  from: string[];
  out: string;
  /** replace a non-empty --out */
  force?: boolean;
}

/** The key figures of a source's own manifest (null: it has none, e.g. `kd dataset import`). */
export interface SourceFigures {
  format: string;
  status: string | null;
  stop_reason: string | null;
  shard: ShardSpec | null;
  model: string | null;
  request_shape_hash: string | null;
  input: { file: string; sha256: string } | null;
  counts: Record<string, number>;
  tokens: { prompt: number; completion: number; cached: number };
  cost_usd: number;
}

export interface MergeSource {
  dir: string;
  manifest: SourceFigures | null;
  shards: number;
  records: number;
  duplicate_records: number;
  rejects: number;
}

export interface MergeManifest {
  format: typeof MERGE_FORMAT;
  version: number;
  kd_version: string;
  created_at: string;
  sources: MergeSource[];
  teacher: { models: string[] };
  counts: { records: number; requests: number; duplicate_requests: number; duplicate_records: number; rejects: number; duplicate_rejects: number; pending: number };
  /** usage of the records kept */
  tokens: { prompt: number; completion: number; cached: number };
  /** spent on the sources, per their manifests (duplicates were paid for too) */
  cost_usd: number;
  shards: { file: string; source: string; source_file: string; records: number; bytes: number; copied: boolean }[];
  notes: string[];
}

export type MergeSummary = Omit<MergeManifest, 'format' | 'version' | 'kd_version' | 'created_at'> & { out: string };

/** A source directory's manifest figures; refuses an unreadable manifest or an unfinished collection. */
function sourceManifest(dir: string): SourceFigures | null {
  const file = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(file)) return null;
  const m = readJsonFile(file, 'manifest', 'bad-manifest', `; rerun the kd collect that wrote ${dir} to rewrite it`) as Record<string, unknown>;
  if (m.format === MERGE_FORMAT) {
    const g = m as unknown as MergeManifest;
    return { format: MERGE_FORMAT, status: null, stop_reason: null, shard: null, model: g.teacher.models.join(',') || null, request_shape_hash: null, input: null, counts: g.counts, tokens: g.tokens, cost_usd: g.cost_usd };
  }
  if (m.format !== MANIFEST_FORMAT) throw new KdError('bad-manifest', `${file}: format ${JSON.stringify(m.format ?? null)} is neither "${MANIFEST_FORMAT}" nor "${MERGE_FORMAT}"`);
  const c = m as unknown as CollectManifest;
  if (c.status === 'running') {
    throw new KdError('unfinished', `${dir}: the collection is still running (or was killed): its manifest says "running"; let it finish, or rerun the same kd collect command, then merge`);
  }
  return {
    format: MANIFEST_FORMAT, status: c.status, stop_reason: c.stop_reason, shard: c.shard ?? null, model: c.teacher.model,
    request_shape_hash: c.request_shape_hash, input: { file: c.input.file, sha256: c.input.sha256 }, counts: c.counts,
    tokens: { prompt: c.tokens.prompt, completion: c.tokens.completion, cached: c.tokens.cached }, cost_usd: c.cost_usd,
  };
}

/** Every check that needs no shard decoding: directories, --out, unfinished collections. */
function checkInputs(o: MergeOptions): void {
  if (o.from.length === 0) throw new KdError('bad-option', '--from: give at least one raw directory');
  const out = path.resolve(o.out);
  for (const dir of o.from) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new KdError('missing-file', `${dir}: no such raw directory`);
    if (path.resolve(dir) === out) throw new KdError('bad-option', `--out ${o.out} is also a --from; merge into a new directory`);
    const partial = fs.readdirSync(dir).filter((f) => RAW_SHARD_RE.test(f) && f.endsWith('.partial')).sort()[0];
    if (partial) {
      throw new KdError('unfinished', `${path.join(dir, partial)}: an unfinished collection (a shard still being written, or left by a kill); let it finish, or rerun the same kd collect command to repair it, then merge`);
    }
  }
  if (fs.existsSync(o.out)) {
    if (!fs.statSync(o.out).isDirectory()) throw new KdError('bad-out', `${o.out}: exists and is not a directory`);
    if (fs.readdirSync(o.out).length > 0 && !o.force) throw new KdError('would-overwrite', `${o.out}: already exists and is not empty; pass --force to replace it`);
  }
}

/** What the sources' manifests say about the fan-out as a whole (informational lines). */
function fanoutNotes(sources: MergeSource[]): string[] {
  const notes: string[] = [];
  const collected = sources.filter((s) => s.manifest?.format === MANIFEST_FORMAT);
  for (const s of collected) {
    if (s.manifest!.status === 'stopped') notes.push(`${s.dir}: the collection stopped (${s.manifest!.stop_reason}) with ${s.manifest!.counts.pending ?? 0} request(s) pending; rerun its kd collect to finish it`);
  }
  if (new Set(collected.map((s) => s.manifest!.request_shape_hash)).size > 1) notes.push('the sources were collected with different request options (model, top-k, temperature…)');
  const specs = collected.map((s) => s.manifest!.shard).filter((x): x is ShardSpec => x !== null);
  const counts = new Set(specs.map((x) => x.count));
  if (counts.size > 1) notes.push(`the sources are shards of different fan-outs (${[...new Set(specs.map(formatShard))].join(', ')})`);
  if (counts.size === 1) {
    const n = specs[0]!.count;
    const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !specs.some((x) => x.index === i));
    if (missing.length > 0) notes.push(`shard(s) ${missing.map((i) => `${i}/${n}`).join(', ')} of the fan-out are not among the sources`);
  }
  return notes;
}

export function mergeRaw(o: MergeOptions): MergeSummary {
  checkInputs(o);
  const sources: MergeSource[] = o.from.map((dir) => ({ dir, manifest: sourceManifest(dir), shards: 0, records: 0, duplicate_records: 0, rejects: 0 }));
  const tmp = tempDirBeside(o.out, 'kd-merge');
  try {
    const m = mergeInto(tmp, sources);
    writeJsonAtomic(path.join(tmp, MANIFEST_FILE), m);
    replaceDir(tmp, o.out); // the old --out (with --force) goes only once the new one is complete
    const { format: _f, version: _v, kd_version: _k, created_at: _c, ...rest } = m;
    return { out: o.out, ...rest };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Writes the merged shards and rejects into `tmp` and returns the manifest. */
function mergeInto(tmp: string, sources: MergeSource[]): MergeManifest {
  const kept = new Set<string>();
  const models = new Set<string>();
  const tokens = { prompt: 0, completion: 0, cached: 0 };
  const shards: MergeManifest['shards'] = [];
  let duplicateRequests = 0;
  for (const src of sources) {
    for (const file of listRawShards(src.dir)) {
      const bytes = fs.readFileSync(file);
      const scan = scanIpcStream(bytes);
      if (scan.completeBytes > 0 && (scan.tornBytes > 0 || !scan.hasEos)) {
        throw new KdError('raw-torn', `${file}: ends in a torn batch (a killed writer); rerun the same kd collect command on ${src.dir} to repair it, then merge`);
      }
      const cols = readRawColumns(bytes, file, ['request_hash', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'model']);
      // a hash kept from an earlier file is a duplicate here; several records of one hash in this file are choices
      const dup = new Set(cols.request_hash.filter((h) => kept.has(h)));
      duplicateRequests += dup.size;
      for (let i = 0; i < cols.request_hash.length; i++) {
        if (dup.has(cols.request_hash[i]!)) continue;
        kept.add(cols.request_hash[i]!);
        tokens.prompt += cols.prompt_tokens[i] ?? 0;
        tokens.completion += cols.completion_tokens[i] ?? 0;
        tokens.cached += cols.cached_tokens[i] ?? 0;
        const model = cols.model[i];
        if (model) models.add(model);
      }
      const records = cols.request_hash.filter((h) => !dup.has(h)).length;
      src.duplicate_records += cols.request_hash.length - records;
      if (records === 0) continue;
      const name = rawShardName(shards.length + 1);
      if (dup.size === 0) fs.copyFileSync(file, path.join(tmp, name));
      else fs.writeFileSync(path.join(tmp, name), withoutHashes(bytes, file, dup));
      shards.push({ file: name, source: src.dir, source_file: path.basename(file), records, bytes: fs.statSync(path.join(tmp, name)).size, copied: dup.size === 0 });
      src.shards++;
      src.records += records;
    }
  }
  const rejects = mergeRejects(tmp, sources);
  if (shards.length === 0) throw new KdError('no-raw', `${sources.map((s) => s.dir).join(', ')}: no raw records to merge`);
  const sum = (f: (s: SourceFigures) => number) => sources.reduce((a, s) => a + (s.manifest ? f(s.manifest) : 0), 0);
  return {
    format: MERGE_FORMAT, version: MERGE_VERSION, kd_version: KD_VERSION, created_at: new Date().toISOString(), sources,
    teacher: { models: [...models].sort() },
    counts: {
      records: shards.reduce((a, s) => a + s.records, 0), requests: kept.size, duplicate_requests: duplicateRequests,
      duplicate_records: sources.reduce((a, s) => a + s.duplicate_records, 0), rejects: rejects.kept, duplicate_rejects: rejects.duplicates,
      pending: sum((m) => m.counts.pending ?? 0),
    },
    tokens, cost_usd: sum((m) => m.cost_usd), shards, notes: fanoutNotes(sources),
  };
}

/** A shard's bytes re-encoded without the records of `drop` (the source's schema metadata kept). */
function withoutHashes(bytes: Uint8Array, file: string, drop: Set<string>): Uint8Array {
  const { schema, records } = readRawBytes(bytes, file);
  const meta = Object.fromEntries([...schema.metadata].filter(([k]) => k !== 'kd.format' && k !== 'kd.format_version'));
  const enc = new RawStreamEncoder(rawSchema(meta));
  return Buffer.concat([enc.start(), enc.batch(records.filter((r) => !drop.has(r.request_hash))), IPC_EOS]);
}

/** rejects.jsonl of every source, one line per (row id, reason); lines kept verbatim. */
function mergeRejects(tmp: string, sources: MergeSource[]): { kept: number; duplicates: number } {
  const seen = new Set<string>();
  const lines: string[] = [];
  let duplicates = 0;
  for (const src of sources) {
    const file = path.join(src.dir, REJECTS_FILE);
    if (!fs.existsSync(file)) continue;
    for (const [i, line] of fs.readFileSync(file, 'utf8').split('\n').entries()) {
      if (line.trim() === '') continue;
      let r: { id?: unknown; reason?: unknown };
      try {
        r = JSON.parse(line) as typeof r;
      } catch {
        throw new KdError('ledger', `${file}: line ${i + 1} is not JSON; rerun the kd collect that wrote ${src.dir} (it repairs a torn last line), or remove that line`);
      }
      // `kd dataset import` rejects carry a line number instead of a row id: the whole line is their key
      const key = r.id !== undefined ? JSON.stringify([r.id, r.reason ?? null]) : line;
      if (seen.has(key)) {
        duplicates++;
        continue;
      }
      seen.add(key);
      lines.push(line);
      src.rejects++;
    }
  }
  if (lines.length > 0) fs.writeFileSync(path.join(tmp, REJECTS_FILE), lines.join('\n') + '\n');
  return { kept: lines.length, duplicates };
}
