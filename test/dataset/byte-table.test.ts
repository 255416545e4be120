import { describe, expect, it } from 'vitest';
import { ByteTable } from '../../src/dataset/columnar.js';

describe('ByteTable (the build\'s byte-string interning)', () => {
  it('gives dense first-insertion indices and finds every key again, whatever its length or position', () => {
    // keys that differ only in trailing zero bytes, in length around the 4- and 8-byte words, and long keys
    const keys: Uint8Array[] = [
      Uint8Array.of(), Uint8Array.of(0), Uint8Array.of(0, 0), Uint8Array.of(97), Uint8Array.of(97, 0), Uint8Array.of(1, 2, 3, 4),
      Uint8Array.of(1, 2, 3, 4, 0), Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 0),
      Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9), Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 10), new Uint8Array(300).fill(7), new Uint8Array(301).fill(7),
    ];
    for (let i = 0; i < 5000; i++) keys.push(Uint8Array.from(Buffer.from(`tok${i}${'x'.repeat(i % 13)}`)));
    // one buffer holding every key twice: the second copy sits at the buffer's end (the short-read path)
    const parts = [...keys, ...keys];
    const buf = new Uint8Array(parts.reduce((a, k) => a + k.length, 0));
    const at: number[] = [];
    let o = 0;
    for (const k of parts) { at.push(o); buf.set(k, o); o += k.length; }
    const t = new ByteTable();
    parts.forEach((k, i) => expect(t.intern(buf, at[i], at[i] + k.length)).toBe(i % keys.length));
    expect(t.size).toBe(keys.length);
    keys.forEach((k, i) => expect([...t.bytes(i)]).toEqual([...k]));
    // a key looked up from a separate exact-size buffer (fewer than 8 bytes after it) is the same key
    expect(t.intern(Uint8Array.of(97, 0), 0, 2)).toBe(4);
    const { pool, off } = t.dump();
    expect(off.length).toBe(keys.length + 1);
    expect([...pool.subarray(off[9], off[10])]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
