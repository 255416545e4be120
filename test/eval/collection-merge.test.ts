import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCollection } from '../../src/eval/teacher.js';

describe('collection figures behind a dataset', () => {
  it('follow the dataset manifest to a merged raw directory and total its collections', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-merge-'));
    const raw = path.join(root, 'raw'), data = path.join(root, 'data');
    fs.mkdirSync(raw); fs.mkdirSync(data);
    fs.writeFileSync(path.join(raw, 'manifest.json'), JSON.stringify({
      format: 'kd-raw-merge', version: 1, teacher: { models: ['gpt-4o-mini'] }, counts: { requests: 152 },
      tokens: { prompt: 45_000, completion: 1_500 }, cost_usd: 0.0077,
    }));
    fs.writeFileSync(path.join(data, 'manifest.json'), JSON.stringify({ format: 'kd-dataset', source: { dir: raw } }));
    const c = readCollection(data)!;
    expect(c).toMatchObject({ model: 'gpt-4o-mini', requests: 152, promptTokens: 45_000, completionTokens: 1_500, costUsd: 0.0077 });
    expect(c.price.input).toBeCloseTo(0.15); // the price table's gpt-4o-mini input price
    expect(c.manifest).toBe(path.join(raw, 'manifest.json'));
  });
});
