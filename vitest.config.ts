import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs holds one global engine per process: keep each test file in its own fork.
    pool: 'forks',
  },
});
