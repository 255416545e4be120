/**
 * Worker threads for `kd dataset build` (./build-worker.ts): each converts whole raw shards (pass 1
 * or pass 2 of ./columnar.ts) and hands back plain data with transferred buffers. {@link BuildPool.map}
 * yields results in task order; a worker gets its next task as soon as it answers (at most two
 * outstanding each, and at most 2 × workers + 1 tasks issued and not yet yielded), so no worker waits
 * for another's slower shard and memory stays bounded by a few shards however long the source.
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

/** the id of the message a worker posts once its modules are loaded */
export const WORKER_READY_ID = -1;

class Handle {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private dead: Error | null = null;
  /** the worker has loaded its modules (starting one costs ~0.3 s, seconds under tsx) */
  ready = false;

  constructor(readonly worker: Worker, onReady: () => void, onReply: () => void) {
    worker.on('message', (m: BuildWorkerReply) => {
      if (m.id === WORKER_READY_ID) { this.ready = true; onReady(); return; }
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(m.error.code ? new KdError(m.error.code, m.error.message) : new Error(m.error.message));
      onReply();
    });
    const fail = (e: Error) => {
      this.dead = e;
      this.ready = true; // calls now fail at once: let map() issue them and surface the error
      onReady();
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => { if (code !== 0) fail(new Error(`build worker exited with code ${code}`)); });
  }

  /** calls issued and not yet answered */
  get pending(): number {
    return this.waiting.size;
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
  private wake: (() => void) | null = null;
  /** the running map's: give the workers more tasks (a worker answered) */
  private pump: (() => void) | null = null;

  constructor(n: number) {
    this.handles = Array.from({ length: n }, () => new Handle(startWorker(import.meta.url, './build-worker', null), () => this.wake?.(), () => this.pump?.()));
  }

  /**
   * Runs the tasks (each worker gets `init` first), yielding results in task order. With `local`,
   * this thread converts a task itself whenever no worker has started yet (one at a time, so
   * memory stays bounded), instead of waiting for them to load.
   */
  async *map<T>(tasks: BuildWorkerRequest[], init?: BuildWorkerRequest, local?: (task: BuildWorkerRequest) => T): AsyncGenerator<T> {
    // each worker gets `init` just before its first task of this map (messages keep their order)
    const inits = new Map<Handle, Promise<unknown>>();
    const call = (h: Handle, task: BuildWorkerRequest): Promise<T> => {
      if (!init) return h.call<T>(task);
      let ip = inits.get(h);
      if (!ip) { ip = h.call(init); ip.catch(() => {}); inits.set(h, ip); }
      const tp = h.call<T>(task);
      return ip.then(() => tp);
    };
    const results: (Promise<T> | undefined)[] = new Array(tasks.length);
    let issued = 0, yielded = 0;
    // tasks issued but not yet yielded, at most: a worker that finishes early gets its next task at once
    // (when it answers, not when its result's turn comes), and memory stays bounded by a few shards
    const window = 2 * this.handles.length + 1;
    const issue = () => {
      while (issued < tasks.length && issued - yielded < window) {
        let best: Handle | null = null;
        for (const h of this.handles) if (h.ready && h.pending < 2 && (!best || h.pending < best.pending)) best = h;
        if (!best) return;
        const p = call(best, tasks[issued]);
        p.catch(() => {}); // awaited in order below; avoid an unhandled rejection meanwhile
        results[issued++] = p;
      }
    };
    this.pump = issue;
    try {
      while (yielded < tasks.length) {
        issue();
        if (results[yielded] === undefined) {
          if (local && issued === yielded && !this.handles.some((h) => h.ready)) {
            const task = tasks[issued];
            try {
              results[issued++] = Promise.resolve(local(task));
            } catch (e) {
              results[issued++] = Promise.reject(e);
            }
          } else {
            // wait for a worker to start
            await new Promise<void>((resolve) => { this.wake = resolve; if (this.handles.some((h) => h.ready)) resolve(); });
            this.wake = null;
            continue;
          }
        }
        const r = await results[yielded]!;
        results[yielded++] = undefined;
        // let the workers' messages in (a started worker) before deciding who converts the next task
        if (local && issued < tasks.length) await new Promise<void>((resolve) => setImmediate(resolve));
        yield r;
      }
    } finally {
      this.pump = null;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }
}
