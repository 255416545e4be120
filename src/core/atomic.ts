/** Every file kd writes goes to a temp name in the same directory first and is renamed into place. */
import fs from 'node:fs';
import path from 'node:path';

export function writeFileAtomic(file: string, data: Buffer | string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, buf);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/**
 * Remove what an interrupted writeFileAtomic of `file` left (FILE.tmp-PID-TIME). Only for a caller
 * that is the file's one writer (it holds the output's lock).
 */
export function removeLeftoverTemps(file: string): void {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.tmp-`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(prefix)) fs.rmSync(path.join(dir, n), { force: true });
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/**
 * A new, empty directory beside `out` (so on its file system, and renamed into place by replaceDir):
 * `.OUT.TAG-XXXXXX`, hidden, with the permissions of a directory made by mkdir.
 */
export function tempDirBeside(out: string, tag = 'tmp'): string {
  const parent = path.dirname(path.resolve(out));
  fs.mkdirSync(parent, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(out)}.${tag}-`));
  fs.chmodSync(tmp, 0o777 & ~process.umask()); // mkdtemp makes it 0700; outputs are meant to be read
  return tmp;
}

/**
 * Puts the finished directory `tmp` (from tempDirBeside) at `out`, replacing what is there: the old
 * `out` is renamed aside, the new one renamed into place, and only then the old one removed. A reader
 * sees the old directory or the new one, never a mix; a crash leaves the old one (as TMP-old), never
 * half of each. The one way kd replaces an output directory (dataset build instead swaps files inside
 * its --out, which also holds the raw data it reads).
 */
export function replaceDir(tmp: string, out: string): void {
  if (!fs.existsSync(out)) {
    fs.renameSync(tmp, out);
    return;
  }
  const old = `${tmp}-old`;
  fs.renameSync(out, old);
  fs.renameSync(tmp, out);
  fs.rmSync(old, { recursive: true, force: true });
}
