import { describe, expect, it } from 'vitest';
import { parseBackendName } from '../../src/backend/index.js';
import { KdError } from '../../src/core/errors.js';

describe('backend names', () => {
  it('accepts the four backends and aliases', () => {
    expect(parseBackendName('wasm', 'x')).toBe('wasm');
    expect(parseBackendName('CPU', 'x')).toBe('cpu');
    expect(parseBackendName('node-gpu', 'x')).toBe('tensorflow-gpu');
  });
  it('rejects an unknown name with a KdError naming the source', () => {
    expect(() => parseBackendName('webgpu', '--backend')).toThrow(KdError);
    expect(() => parseBackendName('webgpu', '--backend')).toThrow(/--backend: unknown backend "webgpu"/);
  });
});
