import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDataset, buildDatasetParallel } from '../../src/dataset/build.js';
import { GOLDEN_OPTIONS, describeBuild, goldenRaw } from './golden.js';

const golden = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'golden', 'v1-build.json'), 'utf8'));
const raw = goldenRaw();
const root = path.dirname(raw);

describe('columnar build (issue 17): the same bytes as the record-by-record build', () => {
  it.each([
    ['records (the previous path)', (out: string) => buildDataset({ from: raw, out, ...GOLDEN_OPTIONS, formatVersion: 1, engine: 'records' })],
    ['columns, this thread', (out: string) => buildDataset({ from: raw, out, ...GOLDEN_OPTIONS, formatVersion: 1 })],
    ['columns, 2 workers', (out: string) => buildDatasetParallel({ from: raw, out, ...GOLDEN_OPTIONS, formatVersion: 1, workers: 2 })],
  ])('version 1 through %s matches the golden build', async (name, build) => {
    const out = path.join(root, name.replace(/\W+/g, '-'));
    await build(out);
    expect(describeBuild(out)).toEqual(golden);
  });

  it('version 2: the columnar build in this thread and with workers write the same bytes as the record path', async () => {
    const a = path.join(root, 'v2-records'), b = path.join(root, 'v2-columns'), c = path.join(root, 'v2-workers');
    buildDataset({ from: raw, out: a, ...GOLDEN_OPTIONS, engine: 'records' });
    buildDataset({ from: raw, out: b, ...GOLDEN_OPTIONS });
    await buildDatasetParallel({ from: raw, out: c, ...GOLDEN_OPTIONS, workers: 3 });
    const da = describeBuild(a);
    expect(da.manifest.version).toBe(2);
    expect(describeBuild(b)).toEqual(da);
    expect(describeBuild(c)).toEqual(da);
  });
});
