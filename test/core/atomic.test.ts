import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { replaceDir, tempDirBeside } from '../../src/core/atomic.js';

describe('replaceDir', () => {
  const root = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kd-atomic-'));

  it('puts a new directory in place, and replaces an old one whole, leaving nothing beside it', () => {
    const dir = root();
    const out = path.join(dir, 'sub', 'out');
    const t1 = tempDirBeside(out, 'kd-test');
    expect(path.dirname(t1)).toBe(path.dirname(out)); // same file system: a rename, not a copy
    expect(path.basename(t1)).toMatch(/^\.out\.kd-test-/);
    expect(fs.statSync(t1).mode & 0o777).toBe(0o777 & ~process.umask()); // readable like any mkdir'd directory
    fs.writeFileSync(path.join(t1, 'a.txt'), 'one');
    replaceDir(t1, out);
    expect(fs.readdirSync(out)).toEqual(['a.txt']);

    const t2 = tempDirBeside(out, 'kd-test');
    fs.writeFileSync(path.join(t2, 'b.txt'), 'two');
    replaceDir(t2, out);
    expect(fs.readdirSync(out)).toEqual(['b.txt']); // the old files went with the old directory
    expect(fs.readdirSync(path.dirname(out))).toEqual(['out']); // no temp or -old directory left
  });
});
