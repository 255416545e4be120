/**
 * Append-only raw shards. Records are queued as responses arrive and written as one record batch on
 * the next turn of the event loop (so responses that land together share a batch, and a completed
 * record waits for disk only as long as the current callbacks run), or at once when
 * {@link MAX_BATCH_POSITIONS} are queued; `add()` resolves once the batch
 * holding its records is written. Each batch is one write() to the file: a kill leaves whole batches
 * plus at most one torn batch, which resume drops.
 *
 * A shard is written as `raw-NNNNN.arrows.partial` and renamed to `raw-NNNNN.arrows` when it is
 * closed (size bound reached or run over), so readers never see a shard in progress.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Schema } from 'apache-arrow';
import { RawStreamEncoder, rawShardName, type RawRecord } from '../schema/raw.js';
import { KdError } from '../core/errors.js';
import type { ShardInfo } from './ledger.js';

export interface ShardWriterOptions {
  dir: string;
  firstIndex: number;
  schema: Schema;
  /** Roll to a new shard once this many bytes are written. */
  maxBytes: number;
  /** Write a batch as soon as this many positions (plus one per record) are queued (default {@link MAX_BATCH_POSITIONS}). */
  maxBatchPositions?: number;
}

/**
 * Positions (tokens; each record counts one more) queued at most before a batch is written at once
 * rather than on the next turn: 32 answers of 16 tokens. When answers arrive faster than they are
 * parsed (a records worker behind), hundreds of records would otherwise wait as JS objects for the
 * turn to end: they outlive young-generation collections, are copied and promoted, and the GC time
 * per answer grows by half (measured: 64 bench answers per batch cost ~1.5× the CPU of 32).
 */
export const MAX_BATCH_POSITIONS = 512;

export class ShardWriter {
  private index: number;
  private fd: number | null = null;
  private encoder: RawStreamEncoder | null = null;
  private bytes = 0;
  private records = 0;
  private batches = 0;
  private queue: RawRecord[] = [];
  private queuedPositions = 0;
  /** Settle the add() promises of the queued records. */
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private scheduled = false;
  /** Shards closed by this writer. */
  readonly closed: ShardInfo[] = [];

  constructor(private readonly o: ShardWriterOptions) {
    this.index = o.firstIndex;
  }

  /**
   * Queues records for the next batch (records of one call are always in the same batch). Resolves
   * when that batch is written; rejects if the write fails (disk full…), as close() then throws.
   */
  add(records: readonly RawRecord[]): Promise<void> {
    this.queue.push(...records);
    for (const r of records) this.queuedPositions += 1 + r.tokens.length;
    const written = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.queuedPositions >= (this.o.maxBatchPositions ?? MAX_BATCH_POSITIONS)) {
      try {
        this.flush();
      } catch {
        // this.error is set and `written` rejected; close() throws it
      }
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        try {
          this.flush();
        } catch {
          // this.error is set; close() throws it
        }
      });
    }
    return written;
  }

  private error: Error | null = null;

  /** Writes what is queued as one batch (synchronously). */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const records = this.queue;
    const waiters = this.waiters;
    this.queue = [];
    this.queuedPositions = 0;
    this.waiters = [];
    try {
      if (this.error) throw this.error;
      if (this.fd === null) this.open();
      const bytes = this.encoder!.batch(records);
      writeSync(this.fd!, bytes);
      this.bytes += bytes.byteLength;
      this.records += records.length;
      this.batches++;
      if (this.bytes >= this.o.maxBytes) this.closeShard();
    } catch (e) {
      this.error ??= e as Error;
      for (const w of waiters) w.reject(e as Error);
      throw e;
    }
    for (const w of waiters) w.resolve();
  }

  /** Flushes and closes the current shard; throws a KdError if any write failed. */
  close(): void {
    if (this.error) throw new KdError('write', `writing a raw shard in ${this.o.dir} failed: ${this.error.message}`);
    try {
      this.flush();
    } catch (e) {
      throw new KdError('write', `writing a raw shard in ${this.o.dir} failed: ${(e as Error).message}`);
    }
    if (this.fd !== null) this.closeShard();
  }

  private open(): void {
    this.encoder = new RawStreamEncoder(this.o.schema);
    this.fd = openSync(join(this.o.dir, rawShardName(this.index, true)), 'wx');
    const head = this.encoder.start();
    writeSync(this.fd, head);
    this.bytes = head.byteLength;
    this.records = 0;
    this.batches = 0;
  }

  private closeShard(): void {
    writeSync(this.fd!, this.encoder!.end());
    fsyncSync(this.fd!);
    closeSync(this.fd!);
    this.fd = null;
    renameSync(join(this.o.dir, rawShardName(this.index, true)), join(this.o.dir, rawShardName(this.index)));
    this.closed.push({ file: rawShardName(this.index), records: this.records, batches: this.batches, bytes: this.bytes + 8 });
    this.index++;
  }
}
