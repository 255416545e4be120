/**
 * One temporary directory per test run: every test (and every kd process it starts) makes its
 * temporaries under it, through TMPDIR, and the whole tree goes when the run ends. KD_KEEP_TMP=1 keeps
 * it for a post-mortem (its path is printed).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-test-'));
  process.env.TMPDIR = dir;
  return () => {
    if (process.env.KD_KEEP_TMP === '1') console.log(`kd: test temporaries kept in ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  };
}
