import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs holds one global engine per process: keep each test file in its own fork.
    pool: 'forks',
    // the JSON report lets .ci/run print a plain "N passed, N failed" closing line
    reporters: ['default', ['json', { outputFile: 'test-artifacts/vitest.json' }]],
  },
});
