/**
 * The README's command lines, as written, cannot drift from kd: every `kd …` / `npx kd …` line of its
 * bash blocks is parsed with the command's own strict flags (each alternative of `a|b`, each optional
 * `[…]` group included; `kd train ... --resume` is read as the block's previous `kd train` line plus
 * `--resume`), each command answers `--help` as a process, the repository files they name exist, and the
 * `npm run` scripts are in package.json. Run for real: `npx kd --help` (kd's bin after npm ci) and the
 * dry-run form of the `kd run` line. Not run for real, because they need a teacher, the network, an
 * earlier stage's output or minutes of training: collect, dataset, train, prune, quantize, export, eval,
 * serve, merge, and the npm scripts (npm ci, npm test, the demo and the benchmarks). The `kd dataset export` lines
 * and the SQL of "Reading kd's files" run for real in test/dataset/export-readers.test.ts.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { argvProblem, commandPath, shellWords } from './helpers/command-lines.js';
import { ROOT, kd } from './helpers/kd.js';

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The bash blocks' command lines: continuations joined, comments dropped. */
function bashLines(md: string): string[] {
  const lines: string[] = [];
  for (const block of md.matchAll(/^```bash\n([\s\S]*?)^```/gm)) {
    const joined = block[1].replace(/\\\n\s*/g, ' ');
    for (const l of joined.split('\n')) {
      const line = l.replace(/(^|\s)#\s.*$/, '').trim();
      if (line) lines.push(line);
    }
  }
  return lines;
}

/** `kd …` lines as argv (without `kd`), env assignments dropped and `...` filled in from the previous line of the same command. */
function kdLines(lines: string[]): { line: string; words: string[] }[] {
  const out: { line: string; words: string[] }[] = [];
  for (const line of lines) {
    let words = shellWords(line);
    while (words.length && /^[A-Z_]+=/.test(words[0])) words = words.slice(1);
    if (words[0] === 'npx' && words[1] === 'kd') words = words.slice(1);
    if (words[0] !== 'kd') continue;
    words = words.slice(1);
    const dots = words.indexOf('...');
    if (dots >= 0) {
      const cmd = words.slice(0, dots).join(' ');
      const prev = [...out].reverse().find((o) => commandPath(o.words).join(' ') === cmd && !o.line.includes('...'));
      if (!prev) throw new Error(`README: "${line}" continues no earlier "kd ${cmd}" line`);
      words = [...prev.words, ...words.slice(dots + 1)];
    }
    out.push({ line, words });
  }
  return out;
}

/** Optional groups opened up ([--json] → --json), and one argv per combination of `a|b` alternatives. */
function variants(words: string[]): string[][] {
  const flat = words.join(' ').replace(/\[([^\]]*)\]/g, '$1');
  let all: string[][] = [[]];
  for (const w of shellWords(flat)) {
    const alts = !w.startsWith('-') && /^[\w.-]+(\|[\w.-]+)+$/.test(w) ? w.split('|') : [w];
    all = all.flatMap((a) => alts.map((x) => [...a, x]));
  }
  return all;
}

const lines = bashLines(readme);
const kdl = kdLines(lines).filter((k) => !k.words[0]?.startsWith('-')); // `npx kd --help`: its own test below

describe('the README\'s commands run as written', () => {
  it('finds the command lines (the extraction itself works)', () => {
    expect(kdl.length).toBeGreaterThanOrEqual(20);
    expect(kdl.map((k) => commandPath(k.words).join(' '))).toEqual(expect.arrayContaining(['collect', 'dataset build', 'dataset inspect', 'dataset merge', 'train', 'prune', 'quantize', 'export', 'eval', 'run', 'serve']));
    expect(variants(shellWords('quantize --bits 8|4 [--scheme a|b] [--json]'))).toEqual([
      ['quantize', '--bits', '8', '--scheme', 'a', '--json'], ['quantize', '--bits', '8', '--scheme', 'b', '--json'],
      ['quantize', '--bits', '4', '--scheme', 'a', '--json'], ['quantize', '--bits', '4', '--scheme', 'b', '--json']]);
  });

  it('says how to run kd after npm ci, and that works: npx kd --help prints kd\'s help', () => {
    expect(lines).toContain('npx kd --help');
    // --no-install: kd's own bin (dist/cli.js, built by npm ci's prepare), never a package of that name from the registry
    const r = spawnSync('npx', ['--no-install', 'kd', '--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^kd <command> \[options\]\n\nDistil a mini student/);
  });

  it('every kd line parses with its command\'s strict flags', async () => {
    const problems: string[] = [];
    for (const { line, words } of kdl) {
      for (const v of variants(words)) {
        const p = await argvProblem(v);
        if (p) problems.push(`${line}\n  as kd ${v.join(' ')}: ${p}`);
      }
    }
    expect(problems).toEqual([]);
    // the check catches a renamed flag
    expect(await argvProblem(variants(shellWords('train --data synthetic --out x --warmup 3'))[0])).toMatch(/Unknown argument/);
  });

  it('every command it uses answers --help', () => {
    const paths = [...new Set(kdl.map((k) => commandPath(k.words).join(' ')))];
    for (const p of paths) {
      const r = kd([...p.split(' '), '--help']);
      expect(r.status, `kd ${p} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout.split('\n')[0]).toMatch(new RegExp(`^kd ${p}\\b`));
    }
  });

  it('the repository files it names exist, and its npm scripts are in package.json', () => {
    const shipped = /^(pipelines\/|bench\/|datasets\/demo-|checkpoints\/teacher$)/;
    const named = lines.flatMap((l) => shellWords(l)).filter((w) => shipped.test(w));
    expect(named).toEqual(expect.arrayContaining(['pipelines/demo.yaml', 'checkpoints/teacher', 'bench/matmul.ts']));
    for (const f of named) expect(fs.existsSync(path.join(ROOT, f)), f).toBe(true);
    const scripts = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
    const npm = lines.map((l) => shellWords(l)).filter((w) => w[0] === 'npm');
    expect(npm.length).toBeGreaterThanOrEqual(5);
    for (const w of npm) {
      if (w[1] === 'ci') continue;
      const script = w[1] === 'run' ? w[2] : w[1];
      expect(scripts[script], w.join(' ')).toBeDefined();
    }
  });

  it('the kd run line runs in its dry-run form', () => {
    const runs = kdl.filter((k) => k.words[0] === 'run');
    expect(runs.length).toBeGreaterThan(0);
    for (const { words } of runs) {
      const file = words[1];
      const r = kd(['run', file, '--dry-run']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^pipeline \S+: ok/);
    }
  });
});
