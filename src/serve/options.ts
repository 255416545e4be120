/**
 * `kd serve`'s options, once: the defaults the server applies and the spec its flags and types come
 * from (the pipeline's `services:` serve block uses the same names). Light on purpose: --help loads it.
 */
import { BACKEND_OPTION, type OptionsOf, type OptionsSpec, flag } from '../core/options.js';

/** loopback only: exposing a server is a deliberate choice */
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_PROMPT_TOKENS = 32768;
/** Node's default is 300 s: a client sending its body at 1 byte/s would hold a connection (and shutdown) that long. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

export const SERVE_OPTIONS = {
  checkpoint: { type: 'string', describe: 'checkpoint file or run directory' },
  static: { type: 'string', describe: 'serve this folder\'s files instead (e.g. a kd export: its index.html runs the model in the browser)' },
  host: { type: 'string', describe: 'address to bind; the default answers this machine only', default: DEFAULT_HOST },
  port: { type: 'number', describe: 'port (0 = any free port, see --json)', default: DEFAULT_PORT },
  apiKeyEnv: { type: 'string', describe: 'environment variable holding the key clients must send as a Bearer token' },
  modelName: { type: 'string', describe: 'model name to report', defaultText: 'the checkpoint directory name' },
  maxBodyBytes: { type: 'number', describe: 'largest request body; larger ones get 413', default: DEFAULT_MAX_BODY_BYTES },
  maxPromptTokens: { type: 'number', describe: 'longest prompt in tokens; longer ones get 400', default: DEFAULT_MAX_PROMPT_TOKENS },
  requestTimeout: { type: 'number', describe: 'seconds to receive a whole request, headers and body; slower ones get 408', default: DEFAULT_REQUEST_TIMEOUT_MS / 1000 },
  backend: BACKEND_OPTION,
  quiet: flag('no per-request log lines on stderr'),
  json: flag('print one JSON line {url, model, ...} on stdout once listening'),
} as const satisfies OptionsSpec;

export type ServeArgs = OptionsOf<typeof SERVE_OPTIONS>;
