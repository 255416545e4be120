/**
 * Content hashes for a stage's key. Cheap first: a directory that carries a manifest.json (datasets,
 * raw collections, reports) is hashed by that manifest, which itself lists its files' sha256; other
 * files and directories by their bytes. Special data specs (synthetic, corpus:sotu) hash as text.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { sha256 } from '../core/hash.js';

export { sha256 };

export function hashPath(p: string): string {
  if (!fs.existsSync(p)) return `missing:${p}`;
  const st = fs.statSync(p);
  if (st.isFile()) return sha256(fs.readFileSync(p));
  const manifest = path.join(p, 'manifest.json');
  if (fs.existsSync(manifest)) return `manifest:${sha256(fs.readFileSync(manifest))}`;
  const h = createHash('sha256');
  for (const f of listFiles(p)) {
    if (f.endsWith('kd-stage.json')) continue;
    h.update(path.relative(p, f) + '\0');
    h.update(fs.readFileSync(f));
  }
  return h.digest('hex');
}

/**
 * What an output looks like now, cheaply: every file's relative path, size and mtime (the stage
 * manifest aside). Recorded when a stage finishes; any difference later (a file removed, replaced or
 * edited) means the stage is not up to date.
 */
export function outputFingerprint(p: string): string {
  if (!fs.existsSync(p)) return 'missing';
  const st = fs.statSync(p);
  const line = (rel: string, s: fs.Stats) => `${rel}\0${s.size}\0${s.mtimeMs}\n`;
  if (st.isFile()) return sha256(line('', st));
  const h = createHash('sha256');
  for (const f of listFiles(p)) if (!f.endsWith('kd-stage.json')) h.update(line(path.relative(p, f), fs.statSync(f)));
  return h.digest('hex');
}

function listFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name)) : e.isFile() ? [path.join(dir, e.name)] : []));
}

/** The paths an input flag's value may name: PATH, corpus:PATH, or NAME=PATH (eval's students). */
export function inputPaths(v: string): string[] {
  const named = /^[\w.-]+=(.+)$/.exec(v);
  return [v, ...(v.startsWith('corpus:') ? [v.slice(7)] : []), ...(named ? [named[1]] : [])];
}

/** A data spec or path: files and directories by content, anything else (synthetic, corpus:sotu) by name. */
export function hashInput(v: string): string {
  const p = inputPaths(v).find((c) => fs.existsSync(c));
  return p !== undefined ? hashPath(p) : `spec:${v}`;
}
