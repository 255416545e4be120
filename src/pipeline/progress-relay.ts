/**
 * `kd run` shows what the running stage is doing: each stage writes its progress line to a pipe
 * (src/core/progress.ts), and this relays it — redrawn in place on a terminal, and on anything else (CI
 * logs) one line every `everyMs`, so a long stage is never silent and a log never floods.
 */
import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';

export interface RelayTarget {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface Relay {
  /** Clears the redrawn line (terminal); resolves once the pipe's lines have been read. */
  stop(): Promise<void>;
}

export function relayProgress(input: Readable, label: string, out: RelayTarget, o: { everyMs?: number; now?: () => number } = {}): Relay {
  const everyMs = o.everyMs ?? 10_000;
  const now = o.now ?? Date.now;
  let lastShown = now(); // the first line on a log after everyMs, not at once: short stages print nothing
  let drawn = false;
  let stopped = false;
  const rl = createInterface({ input, crlfDelay: Infinity });
  const closed = new Promise<void>((resolve) => rl.once('close', resolve));
  rl.on('line', (line) => {
    if (stopped || !line.trim()) return;
    const text = `  ${label}: ${line.trim()}`;
    if (out.isTTY) {
      const width = Math.max(20, (out.columns ?? 100) - 1);
      out.write(`\r\x1b[K${text.length > width ? text.slice(0, width - 1) + '…' : text}`);
      drawn = true;
    } else if (now() - lastShown >= everyMs) {
      lastShown = now();
      out.write(text + '\n');
    }
  });
  return {
    async stop() {
      stopped = true;
      if (drawn) out.write('\r\x1b[K');
      drawn = false;
      rl.close();
      await closed;
    },
  };
}
