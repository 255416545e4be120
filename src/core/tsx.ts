/**
 * Running from the TypeScript sources (tests, `npm run kd`) rather than dist/: child processes and
 * worker threads then load .ts through tsx. Its loader is named by absolute URL, so a child started
 * in another working directory (a pipeline in a scratch directory) still finds it.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const tsxDir = () => path.dirname(require.resolve('tsx/package.json'));

/** node flags that make a child process run .ts files */
export function tsxNodeArgs(): string[] {
  return ['--import', pathToFileURL(path.join(tsxDir(), 'dist', 'loader.mjs')).href];
}

/** file URL of tsx's ESM register API, for workers started from eval'd code */
export function tsxEsmApiUrl(): string {
  return pathToFileURL(path.join(tsxDir(), 'dist', 'esm', 'api', 'index.mjs')).href;
}

/**
 * Starts a worker thread on the module `stem` next to `callerUrl` (import.meta.url): `stem.js` when
 * running from dist/, or — running from the TypeScript sources (tests, tsx) — `stem.ts` through tsx.
 */
export function startWorker(callerUrl: string, stem: string, workerData: unknown): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`${stem}.js`, callerUrl), { workerData });
  const script = new URL(`${stem}.ts`, callerUrl).href;
  const boot = `import(${JSON.stringify(tsxEsmApiUrl())}).then((m) => { m.register(); return import(${JSON.stringify(script)}); });`;
  return new Worker(boot, { eval: true, workerData });
}
