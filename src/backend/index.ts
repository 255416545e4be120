/**
 * Compute backend choice. Best first: tfjs-node-gpu → tfjs-node → wasm (XNNPACK) → cpu.
 * The native packages are optionalDependencies whose install downloads libtensorflow; when that
 * failed (no network, or the 403 of tensorflow/tfjs#8742) they are simply absent and we fall through.
 * `--backend NAME` / KD_BACKEND force one.
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { KdError } from '../core/errors.js';
import { nativeStatus } from './native.js';

export const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendAttempt {
  name: BackendName;
  ok: boolean;
  reason: string;
}

export interface BackendInfo {
  backend: BackendName;
  /** the tfjs backend name actually registered (tfjs-node-gpu registers itself as 'tensorflow') */
  tfBackend: string;
  attempts: BackendAttempt[];
  threads: number;
  tfjsVersion: string;
  nodeVersion: string;
  cpus: number;
  /** what runs the matmuls: on wasm, kd's native matmul when built, else XNNPACK (and why) */
  matmul: string;
}

const require = createRequire(import.meta.url);
let current: BackendInfo | undefined;

export function parseBackendName(name: string, source: string): BackendName {
  const n = name.trim().toLowerCase();
  const alias: Record<string, BackendName> = { 'node-gpu': 'tensorflow-gpu', gpu: 'tensorflow-gpu', node: 'tensorflow', 'tfjs-node': 'tensorflow' };
  const b = (alias[n] ?? n) as BackendName;
  if (!BACKENDS.includes(b)) {
    throw new KdError('bad-backend', `${source}: unknown backend "${name}"; choose one of ${BACKENDS.join(', ')}`);
  }
  return b;
}

function errMsg(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n')[0].slice(0, 200);
}

async function tryNative(pkg: string): Promise<void> {
  // tfjs-node registers the 'tensorflow' backend on import; its native addon throws when libtensorflow is absent.
  require.resolve(pkg);
  await import(pkg);
  if (!tf.findBackendFactory('tensorflow')) throw new Error(`${pkg} loaded but registered no backend`);
}

async function tryWasm(threads: number): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  wasm.setWasmPaths(path.join(dir, 'dist') + path.sep);
  if (threads > 0) wasm.setThreadsCount(threads);
  const { registerWasmKernels } = await import('./wasm-kernels.js');
  registerWasmKernels();
}

async function tryCpu(): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
  const { registerCpuKernels } = await import('./cpu-kernels.js');
  registerCpuKernels();
}

async function activate(name: BackendName): Promise<string> {
  const tfName = name === 'tensorflow-gpu' || name === 'tensorflow' ? 'tensorflow' : name;
  if (name === 'tensorflow-gpu') await tryNative('@tensorflow/tfjs-node-gpu');
  else if (name === 'tensorflow') await tryNative('@tensorflow/tfjs-node');
  else if (name === 'wasm') await tryWasm(0);
  else await tryCpu();
  const ok = await tf.setBackend(tfName);
  if (!ok) throw new Error(`tf.setBackend('${tfName}') failed`);
  await tf.ready();
  return tfName;
}

export interface InitOptions {
  /** force one backend (flag or KD_BACKEND); otherwise the best available */
  backend?: string;
}

/** Choose and initialise the backend once per process. */
export async function initBackend(opts: InitOptions = {}): Promise<BackendInfo> {
  if (current) return current;
  // Production mode: no debug checks and none of tfjs's "install tfjs-node" console banners.
  tf.enableProdMode();
  const forcedRaw = opts.backend ?? process.env.KD_BACKEND;
  const forced = forcedRaw ? parseBackendName(forcedRaw, opts.backend ? '--backend' : 'KD_BACKEND') : undefined;
  const order: BackendName[] = forced ? [forced] : [...BACKENDS];
  const attempts: BackendAttempt[] = [];
  for (const name of order) {
    try {
      const tfBackend = await activate(name);
      attempts.push({ name, ok: true, reason: forced ? 'forced' : 'best available' });
      current = { backend: name, tfBackend, attempts, threads: threadCount(tfBackend), tfjsVersion: tf.version_core,
        nodeVersion: process.versions.node, cpus: os.availableParallelism?.() ?? os.cpus().length, matmul: matmulEngine(tfBackend) };
      return current;
    } catch (e) {
      attempts.push({ name, ok: false, reason: errMsg(e) });
    }
  }
  const why = attempts.map((a) => `${a.name}: ${a.reason}`).join('; ');
  throw new KdError('backend-unavailable', `no usable backend (${why})`);
}

function matmulEngine(tfBackend: string): string {
  if (tfBackend === 'tensorflow') return 'libtensorflow';
  if (tfBackend === 'cpu') return 'tfjs cpu (JavaScript)';
  const n = nativeStatus();
  return n.loaded ? `kd native (${n.detail})` : `XNNPACK; kd native matmul ${n.detail}`;
}

function threadCount(tfBackend: string): number {
  if (tfBackend === 'wasm') {
    try {
      const wasm = require('@tensorflow/tfjs-backend-wasm') as { getThreadsCount(): number };
      return wasm.getThreadsCount();
    } catch {
      return 1;
    }
  }
  if (tfBackend === 'cpu') return 1;
  return os.availableParallelism?.() ?? os.cpus().length;
}

export function backendInfo(): BackendInfo | undefined {
  return current;
}
