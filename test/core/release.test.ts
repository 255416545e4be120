import { describe, expect, it } from 'vitest';
import { releaseArrays } from '../../src/core/release.js';

describe('releaseArrays', () => {
  it('frees the arrays now (no GC): their views read as empty, the memory is given back', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const a = new Float64Array(8 << 20), b = new Uint8Array(a.buffer, 16, 100), c = new Int32Array(1 << 20);
    a[0] = 1;
    expect(process.memoryUsage().arrayBuffers - before).toBeGreaterThanOrEqual(64 << 20);
    releaseArrays([a, b, c, null, undefined]);
    expect([a.length, b.length, c.length]).toEqual([0, 0, 0]);
    await new Promise((r) => setTimeout(r, 50));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 << 20);
  });

  it('leaves what cannot be transferred alone: Node\'s pooled Buffers keep their bytes', () => {
    const pooled = Buffer.from('hello'), other = Buffer.from('world');
    expect(() => releaseArrays([pooled])).not.toThrow();
    expect([pooled.toString(), other.toString()]).toEqual(['hello', 'world']);
  });
});
