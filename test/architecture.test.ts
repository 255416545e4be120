/**
 * The layering of src/ (ARCHITECTURE.md): each folder imports only from the layers below it, stages
 * reach an earlier stage only through its index.ts, nothing imports in a cycle, and only the CLI
 * writes to stdout or handles signals.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ImportEdge, cycles, folderOf, importGraph, processCalls, violation } from './helpers/import-graph.js';

const root = path.resolve(import.meta.dirname, '..');

describe('architecture', () => {
  const g = importGraph(root);

  it('reads the whole import graph', () => {
    expect(g.unresolved).toEqual([]);
    expect(g.files.length).toBeGreaterThan(100);
    expect(g.edges.length).toBeGreaterThan(300);
  });

  it('has no import cycle', () => {
    expect(cycles(g.files, g.edges)).toEqual([]);
  });

  it('imports only downward (and between stages only through index.ts)', () => {
    expect(g.edges.map(violation).filter((v) => v !== null)).toEqual([]);
  });

  it('writes to stdout and handles signals only in the CLI', () => {
    const bad = g.files.filter((f) => folderOf(f) !== 'cli').flatMap((f) => processCalls(root, f));
    expect(bad).toEqual([]);
  });

  it('points at nothing outside the repository, and silences no linter it does not have', () => {
    const bad: string[] = [];
    for (const dir of ['src', 'test', 'bench']) {
      for (const f of importGraph(root, dir).files) {
        fs.readFileSync(path.join(root, f), 'utf8').split('\n').forEach((l, i) => {
          if (/eslint-disable|\/work\/|\.\.\/shared\/|\bdocs\/[\w-]+\.md/.test(l) && !f.endsWith('architecture.test.ts')) bad.push(`${f}:${i + 1}: ${l.trim()}`);
        });
      }
    }
    expect(bad).toEqual([]);
  });

  it('catches what it is meant to catch', () => {
    const train = processCalls(root, 'src/cli/train.ts').join('\n');
    expect(train).toMatch(/process\.once/);
    expect(train).toMatch(/process\.stdout\.write/);
    // the checks themselves: a cycle, an upward import, a sideways one, a stage past another's index.ts
    expect(cycles(['a', 'b', 'c'], [{ from: 'a', to: 'b', typeOnly: false }, { from: 'b', to: 'a', typeOnly: true }])).toEqual([['a', 'b']]);
    const edge = (from: string, to: string): ImportEdge => ({ from, to, typeOnly: false });
    expect(violation(edge('src/train/run.ts', 'src/cli/train.ts'))).toMatch(/upward/);
    expect(violation(edge('src/schema/eval-report.ts', 'src/eval/metrics.ts'))).toMatch(/upward/);
    expect(violation(edge('src/model/load.ts', 'src/data/open.ts'))).toMatch(/upward/);
    expect(violation(edge('src/backend/index.ts', 'src/tokenizer/tokenizer.ts'))).toMatch(/sideways/);
    expect(violation(edge('src/eval/teacher.ts', 'src/collect/client.ts'))).toMatch(/past src\/collect\/index.ts/);
    expect(violation(edge('src/collect/collect.ts', 'src/eval/index.ts'))).toMatch(/later stage/);
    expect(violation(edge('src/eval/teacher.ts', 'src/collect/index.ts'))).toBeNull();
    expect(violation(edge('src/cli.ts', 'src/cli/index.ts'))).toBeNull();
    expect(violation(edge('src/cli/train.ts', 'src/train/step.ts'))).toBeNull();
  });
});
