/**
 * The resume ledger of `kd collect` is the output itself: a request is done exactly when a record
 * with its hash sits in a complete batch of a shard, or a line with its hash sits in rejects.jsonl.
 * There is no separate "done" mark that could disagree with the data.
 *
 * On start we scan both and repair what a kill -9 can leave behind:
 * - a shard still named `.partial`, or one whose tail is torn (a batch half written): its complete
 *   batches are rewritten to a temp file that is renamed over it (atomic: at no moment do two copies
 *   or zero copies of a batch exist), then `.partial` is renamed to `.arrows`;
 * - a shard without even a schema, or with no batch: deleted (it holds nothing);
 * - rejects.jsonl ending in a half-written line: truncated at the last newline (that row is redone).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readdirSync, renameSync, truncateSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { KdError } from '../core/errors.js';
import { IPC_EOS, RAW_SHARD_RE, rawShardName, readRawColumns, scanIpcStream } from '../schema/raw.js';

export const REJECTS_FILE = 'rejects.jsonl';

export interface RejectLine {
  id: string;
  row: number;
  reason: string;
  detail: string;
  request_hash: string;
  chunk_index?: number;
  at: string;
}

export interface ShardInfo {
  file: string;
  records: number;
  batches: number;
  bytes: number;
}

export interface LedgerScan {
  /** Request hashes already answered (in a shard) or rejected. */
  done: Set<string>;
  records: number;
  rejects: number;
  /** Hashes seen more than once (should stay 0: reported, never silently dropped). */
  duplicates: number;
  shards: ShardInfo[];
  nextShardIndex: number;
  /** What was repaired, for the log. */
  repairs: string[];
  usage: { promptTokens: number; completionTokens: number; cachedTokens: number };
  systemFingerprints: Set<string>;
  models: Set<string>;
}

function writeFileDurably(path: string, parts: Uint8Array[]): void {
  const fd = openSync(path, 'w');
  try {
    for (const p of parts) writeSync(fd, p);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Scans `dir` (creating nothing). With `repair`, fixes torn shards and a torn rejects tail. */
export function scanLedger(dir: string, opts: { repair: boolean }): LedgerScan {
  const scan: LedgerScan = {
    done: new Set(), records: 0, rejects: 0, duplicates: 0, shards: [], nextShardIndex: 1, repairs: [],
    usage: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 }, systemFingerprints: new Set(), models: new Set(),
  };
  if (!existsSync(dir)) return scan;
  const names = readdirSync(dir).filter((f) => RAW_SHARD_RE.test(f)).sort();
  for (const name of names) {
    const index = Number(RAW_SHARD_RE.exec(name)![1]);
    scan.nextShardIndex = Math.max(scan.nextShardIndex, index + 1);
    const path = join(dir, name);
    const partial = name.endsWith('.partial');
    const finalPath = join(dir, rawShardName(index));
    const bytes = readFileSync(path);
    const s = scanIpcStream(bytes);
    if (s.completeBytes === 0 || s.recordBatches === 0) {
      if (opts.repair) {
        unlinkSync(path);
        scan.repairs.push(`${name}: no complete batch, removed`);
      }
      continue;
    }
    let data: Uint8Array = bytes;
    if (partial || !s.hasEos || s.tornBytes > 0) {
      data = Buffer.concat([bytes.subarray(0, s.completeBytes), IPC_EOS]);
      if (opts.repair) {
        const tmp = `${path}.tmp`;
        writeFileDurably(tmp, [data]);
        renameSync(tmp, path);
        if (partial) renameSync(path, finalPath);
        scan.repairs.push(`${name}: kept ${s.recordBatches} complete batch(es)${s.tornBytes > 0 ? `, dropped a torn tail of ${s.tornBytes} bytes` : ''}${partial ? `, closed as ${rawShardName(index)}` : ''}`);
      }
    }
    const cols = readRawColumns(data, path, ['request_hash', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'system_fingerprint', 'model']);
    const hashes = new Set<string>();
    for (let i = 0; i < cols.request_hash.length; i++) {
      const h = cols.request_hash[i]!;
      // Several choices of one response share a hash: count a hash once per shard.
      if (!hashes.has(h)) {
        hashes.add(h);
        if (scan.done.has(h)) scan.duplicates++;
        scan.done.add(h);
      }
      scan.usage.promptTokens += cols.prompt_tokens[i] ?? 0;
      scan.usage.completionTokens += cols.completion_tokens[i] ?? 0;
      scan.usage.cachedTokens += cols.cached_tokens[i] ?? 0;
      const fp = cols.system_fingerprint[i];
      if (fp) scan.systemFingerprints.add(fp);
      const m = cols.model[i];
      if (m) scan.models.add(m);
    }
    scan.records += cols.request_hash.length;
    scan.shards.push({ file: opts.repair || !partial ? rawShardName(index) : name, records: cols.request_hash.length, batches: s.recordBatches, bytes: data.byteLength });
  }
  scanRejects(join(dir, REJECTS_FILE), scan, opts.repair);
  return scan;
}

function scanRejects(path: string, scan: LedgerScan, repair: boolean): void {
  if (!existsSync(path)) return;
  const buf = readFileSync(path);
  const lastNl = buf.lastIndexOf(0x0a);
  const complete = lastNl < 0 ? 0 : lastNl + 1;
  if (complete < buf.length && repair) {
    truncateSync(path, complete);
    scan.repairs.push(`${REJECTS_FILE}: dropped a half-written last line (${buf.length - complete} bytes)`);
  }
  const lines = buf.subarray(0, complete).toString('utf8').split('\n');
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let r: RejectLine;
    try {
      r = JSON.parse(line) as RejectLine;
    } catch {
      throw new KdError('ledger', `${path}: line ${i + 1} is not JSON; fix or remove that line, then run again`);
    }
    if (typeof r.request_hash !== 'string') throw new KdError('ledger', `${path}: line ${i + 1} has no "request_hash"`);
    if (scan.done.has(r.request_hash)) scan.duplicates++;
    scan.done.add(r.request_hash);
    scan.rejects++;
  }
}

/** Appends reject lines; each line is one write() so a kill leaves at most a torn last line. */
export class RejectWriter {
  private fd: number | null = null;
  count = 0;
  constructor(private readonly path: string) {}
  write(line: RejectLine): void {
    if (this.fd === null) this.fd = openSync(this.path, 'a');
    writeSync(this.fd, JSON.stringify(line) + '\n');
    this.count++;
  }
  close(): void {
    if (this.fd !== null) {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = null;
    }
  }
}
