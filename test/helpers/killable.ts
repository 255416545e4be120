/** kd as a child process to kill -9 (the exactly-once tests): output collected, every child killed at the end. */
import { type ChildProcess, spawn } from 'node:child_process';
import { KD_ARGS, ROOT } from './kd.js';

export interface ChildExit { code: number | null; signal: string | null; stdout: string; stderr: string }

const children: ChildProcess[] = [];

/** `kd ARGS` from the TypeScript sources in the repository root. */
export function startKdChild(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; exit: Promise<ChildExit> } {
  const child = spawn(process.execPath, [...KD_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exit = new Promise<ChildExit>((r) => child.on('exit', (code, signal) => r({ code, signal, stdout, stderr })));
  return { child, exit };
}

/** SIGKILL every child still running (afterEach). */
export function killChildren(): void {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** Polls `cond` every 10 ms; throws after 60 s. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 6000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
