/**
 * kd as a child of `kd run`: stages and services are started with a pipe on stdin that the parent
 * never writes to, and KD_EXIT_WITH_PARENT=1. When the parent goes away — even by SIGKILL — the pipe
 * closes, and the child stops as if sent SIGTERM (serve closes, train checkpoints, collect stops).
 * A closed stdout or stderr (EPIPE: the reader is gone) is the same event, not a crash.
 */
import { EXIT_WITH_PARENT_ENV } from '../core/env.js';

let stopping = false;
function stopAsIfTerminated(): void {
  if (stopping) return;
  stopping = true;
  process.kill(process.pid, 'SIGTERM');
}

export function watchParent(env: NodeJS.ProcessEnv = process.env): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') stopAsIfTerminated();
      else throw e;
    });
  }
  if (env[EXIT_WITH_PARENT_ENV] !== '1') return;
  delete env[EXIT_WITH_PARENT_ENV]; // for this process only, not for what it starts
  process.stdin.on('end', stopAsIfTerminated);
  process.stdin.on('close', stopAsIfTerminated);
  process.stdin.on('error', stopAsIfTerminated);
  process.stdin.resume();
  // watching stdin must not keep a finished command alive
  (process.stdin as unknown as { unref?: () => void }).unref?.();
}
