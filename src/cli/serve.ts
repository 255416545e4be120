import { KdError } from '../core/errors.js';
import { msOfSeconds } from '../core/options.js';
import { DEFAULT_HOST, DEFAULT_PORT, SERVE_OPTIONS, type ServeArgs } from '../serve/options.js';
import { specCommand } from './command.js';

export interface ResolvedServe {
  /** exactly one of checkpoint (the OpenAI API) and static (a folder's files) */
  checkpoint?: string;
  static?: string;
  host: string;
  port: number;
  apiKeyEnv?: string;
  modelName?: string;
  maxBodyBytes?: number;
  maxPromptTokens?: number;
  requestTimeoutMs?: number;
  backend?: string;
  quiet: boolean;
  json: boolean;
}

const positiveInt = (v: number | undefined, flag: string) => {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new KdError('bad-config', `${flag} must be a positive integer, got ${v}`);
  return v;
};

const positiveNumber = (v: number, flag: string) => {
  if (!Number.isFinite(v) || v <= 0) throw new KdError('bad-config', `${flag} must be a positive number of seconds, got ${v}`);
  return v;
};

/** Flags → options; pure. */
export function resolveServeArgs(a: ServeArgs): ResolvedServe {
  const port = a.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new KdError('bad-config', `--port must be 0..65535, got ${a.port}`);
  if ((a.checkpoint === undefined) === (a.static === undefined)) {
    throw new KdError('bad-config', 'kd serve takes --checkpoint CKPT (the OpenAI API) or --static DIR (a folder, e.g. an export, for a browser), not both or neither');
  }
  if (a.static !== undefined) {
    const apiOnly = ([['apiKeyEnv', '--api-key-env'], ['modelName', '--model-name'], ['maxBodyBytes', '--max-body-bytes'], ['maxPromptTokens', '--max-prompt-tokens'], ['backend', '--backend']] as const)
      .filter(([k]) => a[k] !== undefined).map(([, flag]) => flag);
    if (apiOnly.length) throw new KdError('bad-config', `${apiOnly.join(', ')}: only for serving a checkpoint, not with --static`);
  }
  if (a.apiKeyEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(a.apiKeyEnv)) {
    throw new KdError('bad-config', `--api-key-env takes the name of an environment variable (e.g. KD_SERVE_KEY), got "${a.apiKeyEnv}"`);
  }
  return {
    checkpoint: a.checkpoint, static: a.static, host: a.host ?? DEFAULT_HOST, port, apiKeyEnv: a.apiKeyEnv, modelName: a.modelName,
    maxBodyBytes: positiveInt(a.maxBodyBytes, '--max-body-bytes'), maxPromptTokens: positiveInt(a.maxPromptTokens, '--max-prompt-tokens'),
    requestTimeoutMs: msOfSeconds(a.requestTimeout === undefined ? undefined : positiveNumber(a.requestTimeout, '--request-timeout')),
    backend: a.backend, quiet: Boolean(a.quiet), json: Boolean(a.json),
  };
}

export const serveCommand = specCommand({
  command: 'serve',
  describe: 'Serve a checkpoint (teacher or student) over the OpenAI API: /v1/models, /v1/completions, /v1/chat/completions; or a folder (--static)',
  options: SERVE_OPTIONS,
  examples: [
    ['$0 serve --checkpoint checkpoints/student --port 0 --json', 'serve a student on a free port and print where'],
    ['$0 serve --static exports/run', 'open http://127.0.0.1:8080/ for the exported student\'s page'],
  ],
  handler: async (argv) => {
    const r = resolveServeArgs(argv);
    if (r.static !== undefined) return serveFolder(r, r.static);
    const { serve } = await import('../serve/serve.js');
    const h = await serve({ ...r, checkpoint: r.checkpoint! });
    const info = { event: 'listening', url: h.url, baseURL: `${h.url}/v1`, model: h.model, host: h.host, port: h.port, backend: h.backend,
      fingerprint: h.fingerprint, vocabSize: h.vocabSize, seqLen: h.seqLen, params: h.params, pid: process.pid };
    if (r.json) process.stdout.write(JSON.stringify(info) + '\n');
    else process.stdout.write(`kd serve: ${h.model} (${h.params.toLocaleString('en-US')} parameters, ${h.backend}) at ${h.url}/v1 — Ctrl-C to stop\n`);
    await untilSignal(() => h.close());
    if (!r.quiet && !r.json) process.stderr.write('kd serve: stopped\n');
  },
});

/** Resolves after SIGINT or SIGTERM, once `close` has finished. */
/** The first SIGINT/SIGTERM closes gracefully (bounded: see serve's shutdownGraceMs), a second one exits at once. */
function untilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) {
        process.stderr.write('kd serve: stopping now\n');
        process.exit(130);
      }
      stopping = true;
      void close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

async function serveFolder(r: ResolvedServe, dir: string): Promise<void> {
  const { serveStatic } = await import('../serve/static.js');
  const log = r.quiet || r.json ? undefined : (l: string) => void process.stderr.write(`kd serve: ${l}\n`);
  const h = await serveStatic({ dir, host: r.host, port: r.port, log });
  if (r.json) process.stdout.write(JSON.stringify({ event: 'listening', url: `${h.url}/`, dir: h.dir, host: h.host, port: h.port, pid: process.pid }) + '\n');
  else process.stdout.write(`kd serve: ${h.dir} at ${h.url}/ — Ctrl-C to stop\n`);
  await untilSignal(() => h.close());
  if (!r.quiet && !r.json) process.stderr.write('kd serve: stopped\n');
}
