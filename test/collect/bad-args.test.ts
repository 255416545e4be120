/** kd collect given a bad --input or --out, or no teacher at all: one line naming it, exit 1, nothing sent. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { kd } from '../helpers/kd.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-collect-args-'));
const csv = path.join(dir, 'p.csv');
fs.writeFileSync(csv, 'prompt\nhello\n');
const local = ['--teacher-url', 'http://127.0.0.1:9/v1', '--model', 'm'];

function oneLine(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = kd(['collect', ...args], { env });
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('kd: note:'));
  return { status: r.status, lines };
}

describe('kd collect with bad arguments', () => {
  const cases: [string, string[], RegExp][] = [
    ['a missing .csv', ['--input', path.join(dir, 'missing.csv'), '--out', path.join(dir, 'o1')], /^kd: .*missing\.csv: no such file \(--input\)$/],
    ['a missing .jsonl', ['--input', path.join(dir, 'missing.jsonl'), '--out', path.join(dir, 'o2')], /^kd: .*missing\.jsonl: no such file \(--input\)$/],
    ['a directory as --input', ['--input', dir, '--out', path.join(dir, 'o3')], /^kd: .*: is a directory; --input takes a CSV or JSONL file$/],
    ['an existing file as --out', ['--input', csv, '--out', csv], /^kd: out-not-dir: --out .*p\.csv: exists and is not a directory/],
  ];
  for (const [what, args, re] of cases) {
    it(`${what}: one line, exit 1`, () => {
      const r = oneLine([...local, ...args]);
      expect(r.lines, r.lines.join('\n')).toHaveLength(1);
      expect(r.lines[0]).toMatch(re);
      expect(r.status).toBe(1);
    });
  }

  it('no --teacher-url, no OPENAI_BASE_URL and no OPENAI_API_KEY: stops before sending anything or creating --out', () => {
    const out = path.join(dir, 'o5');
    const r = oneLine(['--model', 'gpt-4o-mini', '--input', csv, '--out', out], { OPENAI_API_KEY: '', OPENAI_BASE_URL: '' });
    expect(r.lines).toEqual([expect.stringMatching(/^kd: api-key: no --teacher-url \(or OPENAI_BASE_URL\) and no OPENAI_API_KEY: .*without a key/)]);
    expect(r.status).toBe(1);
    expect(fs.existsSync(out)).toBe(false);
  });
});
