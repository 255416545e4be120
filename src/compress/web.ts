/**
 * What an export needs to run with no code of the user's: kd's web/kd-student.js (tokenizer and
 * generation on plain tfjs, for Node and browsers), web/index.html (a page around it), and tfjs's own
 * browser ESM bundle, which index.html's import map names, so the page loads nothing from a CDN.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** web/ at the package root: two levels up from src/compress and from dist/compress. */
const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));
export const WEB_FILES = ['kd-student.js', 'index.html'];
export const TFJS_BUNDLE = 'tf.fesm.min.js';

/** Copy the web files and the tfjs bundle into `dir`; returns their names. */
export function copyWebFiles(dir: string): string[] {
  for (const f of WEB_FILES) fs.copyFileSync(path.join(WEB_DIR, f), path.join(dir, f));
  const tfjsDist = path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs')); // dist/tf.node.js
  fs.copyFileSync(path.join(tfjsDist, TFJS_BUNDLE), path.join(dir, TFJS_BUNDLE));
  return [...WEB_FILES, TFJS_BUNDLE];
}
