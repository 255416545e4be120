/** The checkpoint header is covered by a checksum (format version 2); version 1 files still load. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_VERSION, decodeCheckpoint, encodeCheckpoint, loadCheckpoint, type NamedArray } from '../src/schema/checkpoint.js';
import { ROOT } from './helpers/kd.js';

const arrays: NamedArray[] = [{ name: 'w', dtype: 'float32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) }];
const content = { model: { vocabSize: 8, nHeads: 2, lnEps: 1e-5 }, meta: { note: 'x' }, arrays };

/** Replace the header JSON of a checkpoint buffer (same layout: magic, length, padded JSON, payload). */
function withHeader(buf: Buffer, edit: (h: Record<string, unknown>) => Record<string, unknown>): Buffer {
  const hlen = buf.readUInt32LE(8);
  const header = edit(JSON.parse(buf.toString('utf8', 12, 12 + hlen)));
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = ((12 + json.length + 7) & ~7) - 12;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.from(buf.subarray(0, 12));
  prefix.writeUInt32LE(json.length, 8);
  return Buffer.concat([prefix, json, buf.subarray(12 + hlen)]);
}

describe('checkpoint provenance', () => {
  it('records the version of kd that wrote it (package.json), not a placeholder', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(decodeCheckpoint(encodeCheckpoint(content), 'v.kdc').header.kdVersion).toBe(pkg.version);
  });
});

describe('checkpoint header checksum', () => {
  it('an edited model config (lnEps, nHeads) no longer loads; the untouched file does', () => {
    const buf = encodeCheckpoint(content);
    const { header } = decodeCheckpoint(buf, 'ok.kdc');
    expect(header.version).toBe(CHECKPOINT_VERSION);
    expect(header.headerSha256).toMatch(/^[0-9a-f]{64}$/);
    // the same bytes, one number changed in place (as a hand edit would)
    const text = buf.toString('latin1');
    const edited = Buffer.from(text.replace('"lnEps":0.00001', '"lnEps":0.00002'), 'latin1');
    expect(edited.equals(buf)).toBe(false);
    expect(() => decodeCheckpoint(edited, 'edited.kdc')).toThrow(/edited\.kdc: not a valid kd checkpoint \(header checksum mismatch/);
    const heads = withHeader(buf, (h) => ({ ...h, model: { ...(h.model as object), nHeads: 4 } }));
    expect(() => decodeCheckpoint(heads, 'heads.kdc')).toThrow(/header checksum mismatch/);
    const noSum = withHeader(buf, ({ headerSha256: _s, ...h }) => h);
    expect(() => decodeCheckpoint(noSum, 'nosum.kdc')).toThrow(/header checksum mismatch/);
  });

  it('version 1 checkpoints (no header checksum) still load, the shipped teacher among them', () => {
    const v1 = withHeader(encodeCheckpoint(content), ({ headerSha256: _s, ...h }) => ({ ...h, version: 1 }));
    const { header, arrays: a } = decodeCheckpoint(v1, 'v1.kdc');
    expect(header.version).toBe(1);
    expect([...a.get('w')!.data]).toEqual([1, 2, 3, 4]);
    const teacher = loadCheckpoint(path.join(ROOT, 'checkpoints', 'teacher'));
    expect(teacher.header.model).toBeDefined();
  });

  it('a version from the future is refused with one line', () => {
    const v9 = withHeader(encodeCheckpoint(content), (h) => ({ ...h, version: 9 }));
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kd-ck-')), 'checkpoint.kdc');
    fs.writeFileSync(f, v9);
    expect(() => loadCheckpoint(f)).toThrow(/checkpoint format version 9 is not supported \(this kd reads versions 1 and 2\)/);
  });
});
