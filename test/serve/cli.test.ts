import { spawn } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.js';
import { resolveServeArgs } from '../../src/cli/serve.js';
import { makeCheckpoint } from './fixture.js';
import { startKd } from '../helpers/kd.js';

const root = path.resolve(__dirname, '../..');

describe('resolveServeArgs', () => {
  it('binds loopback on 8080 by default and checks flags', () => {
    expect(resolveServeArgs({ checkpoint: 'c' })).toMatchObject({ host: '127.0.0.1', port: 8080, quiet: false, json: false });
    expect(resolveServeArgs({ checkpoint: 'c', port: 0, apiKeyEnv: 'KD_KEY' })).toMatchObject({ port: 0, apiKeyEnv: 'KD_KEY' });
    expect(() => resolveServeArgs({ checkpoint: 'c', port: 70000 })).toThrow(/--port must be 0..65535/);
    expect(() => resolveServeArgs({ checkpoint: 'c', apiKeyEnv: 'sk-abc123' })).toThrow(/name of an environment variable/);
    expect(() => resolveServeArgs({ checkpoint: 'c', maxBodyBytes: 0 })).toThrow(/--max-body-bytes must be a positive integer/);
  });
});

describe('kd serve (process)', () => {
  let dir: string;
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
    dir = await makeCheckpoint();
  });

  it('--port 0 --json prints where it listens; SIGTERM stops it cleanly', async () => {
    const { child, firstLine, exited, stderr: err } = await startKd(['serve', '--checkpoint', dir, '--port', '0', '--json', '--backend', 'cpu', '--model-name', 'demo']);
    const info = JSON.parse(firstLine);
    expect(info).toMatchObject({ event: 'listening', model: 'demo', host: '127.0.0.1', backend: 'cpu' });
    expect(info.port).toBeGreaterThan(0);
    const models = (await (await fetch(`${info.baseURL}/models`)).json()) as { data: { id: string }[] };
    expect(models.data[0]!.id).toBe('demo');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(err()).toMatch(/GET \/v1\/models 200/); // one log line per request on stderr
  });

  it('a bad checkpoint is one clear line and exit 1', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli.ts'), 'serve', '--checkpoint', path.join(dir, 'nope'), '--port', '0', '--backend', 'cpu'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^kd: .*no such checkpoint/);
  });
});
