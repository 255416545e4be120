/** Run the kd CLI from the TypeScript sources, as a user would type it. */
import { type ChildProcess, type SpawnSyncOptions, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { tsxNodeArgs } from '../../src/core/tsx.js';

export const ROOT = path.resolve(__dirname, '../..');
export const KD_ARGS = [...tsxNodeArgs(), path.join(ROOT, 'src/cli.ts')];

/** Synchronous run in the repository root (or `opts.cwd`), with the backend left to kd to choose. */
export function kd(args: string[], opts: SpawnSyncOptions = {}) {
  return spawnSync(process.execPath, [...KD_ARGS, ...args], { cwd: ROOT, encoding: 'utf8', ...opts, env: { ...process.env, KD_BACKEND: '', ...opts.env } }) as ReturnType<typeof spawnSync> & { stdout: string; stderr: string };
}

/** A long-running kd (e.g. serve) in the repository root: its first stdout line, and its exit code when it ends. */
export async function startKd(args: string[]): Promise<{ child: ChildProcess; firstLine: string; exited: Promise<number | null>; stderr: () => string }> {
  const child = spawn(process.execPath, [...KD_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const firstLine = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  return { child, firstLine, exited, stderr: () => stderr };
}
