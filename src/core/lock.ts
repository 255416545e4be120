/**
 * One writer per output: a stage that writes a directory (or file) OUT first creates the lock file
 * OUT.kd-lock beside it, holding {pid, hostname, command, startedAt}. A second kd on the same OUT
 * stops with one line naming the holder. The lock is released when the process exits; a lock left by
 * a crash (kill -9, power loss) is stale when its host is this one and its pid is dead, and is
 * removed by the next run. A lock from another host cannot be checked and must be removed by hand.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { KdError } from './errors.js';

export interface LockInfo {
  pid: number;
  hostname: string;
  command: string;
  startedAt: string;
}

export interface OutputLock {
  file: string;
  release(): void;
}

export const lockFileOf = (out: string): string => `${path.resolve(out)}.kd-lock`;

function readLock(file: string): LockInfo | null | 'absent' {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw e;
  }
  try {
    const v = JSON.parse(text) as LockInfo;
    return Number.isInteger(v.pid) && typeof v.hostname === 'string' ? v : null;
  } catch {
    return null; // never half-written (created by link), so unreadable means not ours to trust: stale
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

const held = new Map<string, LockInfo>();
let exitHook = false;

/**
 * Take the lock on `out` for `command` (e.g. "kd train") or throw a KdError naming who holds it.
 * The lock file is complete when it appears: written under a temporary name and hard-linked into place.
 */
export function lockOutput(out: string, command: string): OutputLock {
  const file = lockFileOf(out);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const info: LockInfo = { pid: process.pid, hostname: os.hostname(), command, startedAt: new Date().toISOString() };
  const tmp = `${file}.${process.pid}-${Date.now()}`;
  fs.writeFileSync(tmp, JSON.stringify(info) + '\n');
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        fs.linkSync(tmp, file);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new KdError('lock', `${file}: cannot create the output lock (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      const owner = readLock(file);
      if (owner === 'absent') continue; // released meanwhile
      const stale = owner === null || (owner.hostname === info.hostname && !alive(owner.pid));
      if (!stale || attempt >= 5) {
        const who = owner ? `${owner.command || 'kd'} (pid ${owner.pid} on ${owner.hostname}, since ${owner.startedAt})` : 'another kd';
        throw new KdError('locked', `${out} is in use by ${who}: wait for it to finish or choose another --out (if that process is gone, remove ${file})`);
      }
      removeStale(file, owner);
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  held.set(file, info);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => { for (const f of [...held.keys()]) release(f); });
  }
  return { file, release: () => release(file) };
}

/**
 * Move the stale lock aside under a name of our own (rename is atomic: of two runs cleaning up, one
 * wins) and check that what was moved is the stale lock, not a fresh one another run just took.
 */
function removeStale(file: string, owner: LockInfo | null): void {
  const aside = `${file}.stale-${process.pid}-${Date.now()}`;
  try {
    fs.renameSync(file, aside);
  } catch {
    return; // someone else moved it: look again
  }
  const moved = readLock(aside);
  const same = moved !== 'absent' && JSON.stringify(moved) === JSON.stringify(owner);
  if (!same) {
    try { fs.linkSync(aside, file); } catch { /* another run holds it now; it will be seen on the next attempt */ }
  }
  fs.rmSync(aside, { force: true });
}

function release(file: string): void {
  const mine = held.get(file);
  if (!mine) return;
  held.delete(file);
  const cur = readLock(file);
  if (cur !== 'absent' && cur !== null && cur.pid === mine.pid && cur.startedAt === mine.startedAt) fs.rmSync(file, { force: true });
}

/** Run `fn` holding the lock on `out`, released afterwards whatever happens. */
export async function withOutputLock<T>(out: string, command: string, fn: () => Promise<T>): Promise<T> {
  const lock = lockOutput(out, command);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** A command whose handler holds the lock on its --out while it runs (every stage that writes one). */
export function lockingOut<A extends { out?: string }>(name: string, cmd: CommandModule<object, A>): CommandModule<object, A> {
  return {
    ...cmd,
    handler: async (argv) => {
      if (typeof argv.out !== 'string' || argv.out === '') return cmd.handler(argv);
      await withOutputLock(argv.out, name, async () => { await cmd.handler(argv); });
    },
  };
}
