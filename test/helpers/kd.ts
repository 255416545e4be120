/** Run the kd CLI from the TypeScript sources, as a user would type it. */
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import path from 'node:path';
import { tsxNodeArgs } from '../../src/tsx.js';

export const ROOT = path.resolve(__dirname, '../..');
export const KD_ARGS = [...tsxNodeArgs(), path.join(ROOT, 'src/cli.ts')];

/** Synchronous run in the repository root (or `opts.cwd`), with the backend left to kd to choose. */
export function kd(args: string[], opts: SpawnSyncOptions = {}) {
  return spawnSync(process.execPath, [...KD_ARGS, ...args], { cwd: ROOT, encoding: 'utf8', ...opts, env: { ...process.env, KD_BACKEND: '', ...opts.env } }) as ReturnType<typeof spawnSync> & { stdout: string; stderr: string };
}
