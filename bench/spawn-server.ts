/** Starts bench/collect-server.ts (the test teacher with a fixed latency) in a child process: its URL and the child. */
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

export async function spawnBenchServer(latencyMs: number): Promise<{ url: string; child: ChildProcess }> {
  const root = resolve(import.meta.dirname, '..');
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/collect-server.ts', String(latencyMs)], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((res, rej) => {
    createInterface({ input: child.stdout! }).once('line', (l) => res(Number(l)));
    child.once('exit', (c) => rej(new Error(`bench server exited with ${c}`)));
  });
  return { url: `http://127.0.0.1:${port}/v1`, child };
}
