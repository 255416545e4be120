/** Reading a JSON file kd was given or wrote: the one place its two failures are worded. */
import fs from 'node:fs';
import { KdError } from './errors.js';

/**
 * The parsed value of `file`. A file that cannot be read is `missing-file` ("cannot read WHAT"); one that is
 * not JSON is `code`, with the parser's message and `hint` (what to do about it) after it.
 */
export function readJsonFile(file: string, what: string, code: string, hint = ''): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new KdError('missing-file', `${file}: cannot read ${what}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KdError(code, `${file}: not valid JSON (${(e as Error).message})${hint}`);
  }
}
