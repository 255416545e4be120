import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs holds one global engine per process: keep each test file in its own fork.
    pool: 'forks',
    // vitest's default is one worker fewer than the cores, which on a 2-core CI machine runs the files one
    // after another; most test time is kd subprocesses and HTTP round trips, so two files at a time halve it.
    maxWorkers: 2,
    // the JSON report lets .ci/run print a plain "N passed, N failed" closing line
    reporters: ['default', ['json', { outputFile: 'test-artifacts/vitest.json' }]],
  },
});
