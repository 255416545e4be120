import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readRawRecords } from '../../src/dataset/raw-columns.js';
import { IPC_EOS, RawStreamEncoder, listRawShards, rawSchema, readRawShard } from '../../src/schema/raw.js';
import { builtDataset, tmpDir } from './fixtures.js';

const norm = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? { bytes: [...x] } : x)));

describe('fast columnar raw reader', () => {
  it('reads exactly what the row reader reads (nulls, bytes, nested lists, absent prompt)', () => {
    const fx = builtDataset({ texts: 12 });
    for (const f of listRawShards(fx.raw)) expect(norm(readRawRecords(f))).toEqual(norm(readRawShard(f)));
    // a version-1 shard without the prompt column still reads
    const dir = tmpDir();
    const fields = rawSchema().fields.filter((f) => f.name !== 'prompt');
    const schema = new (rawSchema().constructor as typeof import('apache-arrow').Schema)(fields, rawSchema().metadata);
    const e = new RawStreamEncoder(schema);
    const recs = fx.records.slice(0, 3).map(({ prompt: _p, ...r }) => r);
    const file = path.join(dir, 'raw-00001.arrows');
    fs.writeFileSync(file, Buffer.concat([e.start(), e.batch(recs), IPC_EOS]));
    const got = readRawRecords(file);
    expect(norm(got)).toEqual(norm(readRawShard(file)));
    expect(got[0].prompt).toBeUndefined();
    expect(got[0].tokens).toEqual(fx.records[0].tokens);
  });
});
