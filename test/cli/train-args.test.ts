import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveTrainArgs } from '../../src/train/options.js';

const base = { data: 'synthetic', out: '/tmp/x' };

describe('kd train argument resolution', () => {
  it('layers defaults, then the config file, then flags', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-cfg-'));
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(file, JSON.stringify({ model: { dModel: 64, nHeads: 4 }, train: { lr: 1e-3, steps: 50, loss: { temperature: 3 } } }));
    const r = resolveTrainArgs({ ...base, config: file, steps: 70, alpha: 0.5 });
    expect(r.model.dModel).toBe(64);
    expect(r.model.vocabSize).toBe(8192);
    expect(r.config).toMatchObject({ lr: 1e-3, steps: 70, seqLen: 128 });
    expect(r.config.loss).toMatchObject({ temperature: 3, alpha: 0.5, divergence: 'forward-kl' });
    expect(r.resume).toBeUndefined();
    expect(resolveTrainArgs({ ...base, resume: true }).resume).toBe(true);
    expect(resolveTrainArgs({ ...base, force: true }).resume).toBe(false);
  });

  it('bad configs name the source and the field', () => {
    expect(() => resolveTrainArgs({ ...base, dModel: -4 })).toThrow(/flags: model: dModel must be a positive integer, got -4/);
    expect(() => resolveTrainArgs({ ...base, dModel: 30, heads: 4 })).toThrow(/nHeads \(4\) must divide dModel \(30\)/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-cfg-'));
    fs.writeFileSync(path.join(dir, 'long.json'), JSON.stringify({ model: { seqLen: 64 }, train: { seqLen: 128 } }));
    expect(() => resolveTrainArgs({ ...base, config: path.join(dir, 'long.json') })).toThrow(/train.seqLen \(128\) exceeds model.seqLen \(64\)/);
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"model": {');
    expect(() => resolveTrainArgs({ ...base, config: path.join(dir, 'bad.json') })).toThrow(/bad.json: not valid JSON/);
    fs.writeFileSync(path.join(dir, 'extra.json'), '{"modle": {}}');
    expect(() => resolveTrainArgs({ ...base, config: path.join(dir, 'extra.json') })).toThrow(/unknown top-level field "modle"/);
    fs.writeFileSync(path.join(dir, 'field.json'), '{"model": {"dmodel": 3}}');
    expect(() => resolveTrainArgs({ ...base, config: path.join(dir, 'field.json') })).toThrow(/unknown field "dmodel"/);
    expect(() => resolveTrainArgs({ ...base, config: path.join(dir, 'nope.json') })).toThrow(/cannot read config file/);
  });
});
