import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { reportError } from '../../src/cli.js';
import { KdError } from '../../src/core/errors.js';
import { importGraph } from '../helpers/import-graph.js';

const root = path.resolve(import.meta.dirname, '../..');

/** Every `new KdError(code, …)` in src/ whose code is written out: its text, or the template's head. */
function kdErrorCodes(): { where: string; code: string }[] {
  const out: { where: string; code: string }[] = [];
  for (const file of importGraph(root).files) {
    const src = ts.createSourceFile(file, fs.readFileSync(path.join(root, file), 'utf8'), ts.ScriptTarget.ES2022, true);
    const visit = (n: ts.Node) => {
      if (ts.isNewExpression(n) && n.expression.getText(src) === 'KdError' && n.arguments?.[0]) {
        const a = n.arguments[0];
        const where = `${file}:${src.getLineAndCharacterOfPosition(a.getStart(src)).line + 1}`;
        if (ts.isStringLiteralLike(a)) out.push({ where, code: a.text });
        else if (ts.isTemplateExpression(a)) out.push({ where, code: `${a.head.text}x` });
      }
      ts.forEachChild(n, visit);
    };
    visit(src);
  }
  return out;
}

describe('KdError', () => {
  it('codes are one casing everywhere: lower-case kebab (bad-option, missing-file)', () => {
    const codes = kdErrorCodes();
    expect(codes.length).toBeGreaterThan(100);
    expect(codes.filter((c) => !/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(c.code))).toEqual([]);
  });

  it('the CLI prints "kd: <code>: <message>", one line, exit code 1', () => {
    const write = process.stderr.write;
    let err = '';
    process.stderr.write = ((s: string) => { err += s; return true; }) as typeof process.stderr.write;
    try {
      expect(reportError(new KdError('missing-file', 'x.csv: no such file'))).toBe(1);
    } finally {
      process.stderr.write = write;
    }
    expect(err).toBe('kd: missing-file: x.csv: no such file\n');
  });
});
