/** Read and validate a pipeline file; every error names the file, the line and the field. */
import fs from 'node:fs';
import { LineCounter, isMap, isSeq, parseDocument, type Node } from 'yaml';
import type { z } from 'zod';
import { KdError } from '../core/errors.js';
import { type PipelineFile, pipelineSchema } from '../schema/pipeline.js';
import { resolveReferences } from './substitute.js';

export interface LoadedPipeline {
  file: string;
  pipeline: PipelineFile;
  /** line of a path in the file, for later errors (stage parameters are checked when the stage runs) */
  lineOf(path: (string | number)[]): number | undefined;
}

export function loadPipeline(file: string, env: NodeJS.ProcessEnv = process.env): LoadedPipeline {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new KdError('missing-file', `${file}: cannot read pipeline file`);
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = lc.linePos(e.pos[0]).line;
    throw new KdError('bad-pipeline', `${file}:${line}: YAML syntax error: ${e.message.split('\n')[0]}`);
  }
  const lineOf = (path: (string | number)[]): number | undefined => {
    // walk down to the deepest node that exists, and report its line
    let node: unknown = doc.contents;
    let found = node as Node | undefined;
    for (const k of path) {
      if (isMap(node)) node = node.get(k, true);
      else if (isSeq(node) && typeof k === 'number') node = node.get(k, true);
      else break;
      if (!node) break;
      found = node as Node;
    }
    const at = found?.range?.[0];
    return at === undefined ? undefined : lc.linePos(at).line;
  };
  const parsed = pipelineSchema.safeParse(doc.toJS());
  if (!parsed.success) throw new KdError('bad-pipeline', describeIssues(file, parsed.error.issues, lineOf));
  const fail = (where: (string | number)[], msg: string): never => { throw new KdError('bad-pipeline', `${at(file, lineOf(where))}: ${fieldName(where)}: ${msg}`); };
  return { file, pipeline: resolveReferences(parsed.data, fail, env), lineOf };
}

/** One line: the first problem with its file, line and field, and how many more there are. */
export function describeIssues(file: string, issues: z.core.$ZodIssue[], lineOf: (p: (string | number)[]) => number | undefined): string {
  const i = issues[0];
  const path = i.path as (string | number)[];
  const keys = i.code === 'unrecognized_keys' ? (i as { keys: string[] }).keys : [];
  const where = keys.length ? [...path, keys[0]] : path;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `${at(file, lineOf(where))}: ${fieldName(where)}: ${i.message}${more}`;
}

export const at = (file: string, line: number | undefined) => `${file}${line ? `:${line}` : ''}`;
export const fieldName = (path: (string | number)[]) => path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('').replace(/^\./, '') || '(top level)';
