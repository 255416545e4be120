/**
 * Frees typed arrays' memory now instead of at some later garbage collection. A build's main thread
 * receives shard-sized arrays from its worker threads (transferred: they then count as this thread's
 * external memory) and is done with them once folded and written; V8 frees such memory only in a full
 * GC, which it starts every shard or so for them (measured: 32 mark-compacts of a 2M-token build on the
 * main thread, ≈ 20 ms each with its 20 MB heap). Transferring a buffer detaches it here; sent to a port
 * whose other end is closed, the message is dropped and the memory freed with it.
 *
 * Every view of a released buffer reads as empty afterwards (any access to its elements is out of
 * range): release only arrays nothing else holds.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';

let sink: MessagePort | null = null;

export function releaseArrays(views: readonly (ArrayBufferView | null | undefined)[]): void {
  const buffers = new Set<ArrayBuffer>();
  for (const v of views) if (v && v.buffer instanceof ArrayBuffer && v.buffer.byteLength > 0) buffers.add(v.buffer);
  if (buffers.size === 0) return;
  if (!sink) {
    const ch = new MessageChannel();
    ch.port2.close();
    ch.port1.unref();
    sink = ch.port1;
  }
  // (Node copies rather than detaches a buffer it marks untransferable, as its pooled Buffers' are; anything
  // the port refuses is left to the GC)
  try {
    sink.postMessage(null, [...buffers]);
  } catch {
    /* left to the GC */
  }
}
