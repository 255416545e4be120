/**
 * Worker threads for `kd dataset build` (./build-worker.ts): each converts whole raw shards (pass 1
 * or pass 2 of ./columnar.ts) and hands back plain data with transferred buffers. {@link BuildPool.map}
 * yields results in task order with at most two tasks per worker outstanding, so memory stays
 * bounded by a few shards however long the source.
 */
import type { Worker } from 'node:worker_threads';
import { KdError } from '../core/errors.js';
import type { DatasetVersion } from '../schema/dataset.js';
import type { TokenizerJson } from '../tokenizer/tokenizer.js';
import { startWorker } from '../core/tsx.js';

export type BuildWorkerRequest =
  | { type: 'init'; tokenizer: TokenizerJson; seed: number; valFraction: number; version: DatasetVersion }
  | { type: 'pass1'; file: string }
  | { type: 'pass2'; file: string };

export type BuildWorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: { message: string; code?: string } };

class Handle {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private dead: Error | null = null;

  constructor(readonly worker: Worker) {
    worker.on('message', (m: BuildWorkerReply) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(m.error.code ? new KdError(m.error.code, m.error.message) : new Error(m.error.message));
    });
    const fail = (e: Error) => {
      this.dead = e;
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => { if (code !== 0) fail(new Error(`build worker exited with code ${code}`)); });
  }

  call<T>(req: BuildWorkerRequest): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, req });
    });
  }
}

export class BuildPool {
  private readonly handles: Handle[];

  constructor(n: number) {
    this.handles = Array.from({ length: n }, () => new Handle(startWorker(import.meta.url, './build-worker', null)));
  }

  /** Runs the tasks (after `init` on every worker), yielding results in task order. */
  async *map<T>(tasks: BuildWorkerRequest[], init?: BuildWorkerRequest): AsyncGenerator<T> {
    if (init) await Promise.all(this.handles.map((h) => h.call(init)));
    const n = this.handles.length;
    const inFlight: Promise<T>[] = [];
    let issued = 0;
    const issue = () => {
      while (issued < tasks.length && inFlight.length < 2 * n) {
        const h = this.handles[issued % n];
        const p = h.call<T>(tasks[issued++]);
        p.catch(() => {}); // awaited in order below; avoid an unhandled rejection meanwhile
        inFlight.push(p);
      }
    };
    issue();
    while (inFlight.length > 0) {
      const r = await inFlight.shift()!;
      issue();
      yield r;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }
}
