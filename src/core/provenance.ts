/** Where a result came from, for manifests and reports. */
import { execFileSync } from 'node:child_process';

/** The git commit of the working directory's repository, or null outside one. */
export function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}
