// Build kd's optional native kernels (native/*.cc → build/Release/kd_native.node) with node-gyp.
// Runs as the package's install script. It never fails the install: without a C++ compiler (or node
// headers) kd runs on XNNPACK and tfjs ops instead, as `kd doctor` then says.
// KD_SKIP_NATIVE=1 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const strict = process.argv.includes('--strict'); // `npm run build:native`: report failure with the exit code

function nodeGyp() {
  // npm tells its lifecycle scripts where its bundled node-gyp is; otherwise look next to npm.
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(path.join(path.dirname(process.execPath), '../lib/node_modules/npm/package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch { /* npm not installed beside node */ }
  return candidates.find((c) => c && existsSync(c));
}

if (process.env.KD_SKIP_NATIVE === '1') {
  console.log('kd: native kernels skipped (KD_SKIP_NATIVE=1)');
  process.exit(0);
}
const gyp = nodeGyp();
// Build against the headers of the node that runs us when they are installed beside it (no download).
const prefix = path.resolve(path.dirname(process.execPath), '..');
const args = ['rebuild', ...(existsSync(path.join(prefix, 'include/node/node_api.h')) && !process.env.npm_config_nodedir ? [`--nodedir=${prefix}`] : [])];
const r = gyp
  ? spawnSync(process.execPath, [gyp, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
  : spawnSync('node-gyp', args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', shell: process.platform === 'win32' });
if (r.status === 0) {
  console.log('kd: native kernels built (build/Release/kd_native.node)');
} else {
  const why = r.error ? r.error.message : (r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' | ');
  console.warn(`kd: native kernels not built; kd will use XNNPACK and tfjs ops (slower): ${why}`);
  if (strict) process.exit(1);
}
