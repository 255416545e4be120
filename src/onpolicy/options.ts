/** `kd onpolicy`'s options, once: the defaults the loop applies and the spec its flags and types come from. Light: --help loads it. */
import type { KdLossOptions } from '../train/index.js';
import { BACKEND_OPTION, type OptionsOf, type OptionsSpec, PRICE_OPTIONS, TEACHER_OPTIONS, TEACHER_TIMEOUT_SECONDS, flag } from '../core/options.js';

export const ONPOLICY_DEFAULTS = {
  rounds: 2, lambda: 0.5, maxNewTokens: 64, temperature: 1, stepsPerRound: 200, lr: 1e-3, minLr: 1e-4, warmupSteps: 10, seed: 0, topK: 20, concurrency: 4,
};

/** GKD's choices (arXiv 2306.13649): the divergence of every round's training, on- and off-policy rows alike. */
export const ONPOLICY_DIVERGENCES = ['forward-kl', 'reverse-kl', 'jsd'] as const satisfies readonly KdLossOptions['divergence'][];

export const ONPOLICY_OPTIONS = {
  teacherUrl: { ...TEACHER_OPTIONS.teacherUrl, describe: 'OpenAI-compatible teacher that scores given text (kd serve, vLLM; probed first)', defaultText: 'OPENAI_BASE_URL' },
  model: { ...TEACHER_OPTIONS.model, required: true },
  apiKeyEnv: TEACHER_OPTIONS.apiKeyEnv,
  prompts: { type: 'string', required: true, describe: 'CSV or JSONL of prompts the student continues' },
  column: { type: 'string', describe: 'column/field with the prompt', default: 'prompt' },
  student: { type: 'string', required: true, describe: 'student checkpoint to start from (trained on a kd dataset: its tokenizer is kept)' },
  offpolicy: { type: 'string', describe: 'off-policy raw collection (kd collect --out) mixed in; needed unless --lambda 1' },
  out: { type: 'string', required: true, describe: 'output directory: raw-onpolicy/ (the ledger), round-N/{samples.jsonl,data,run}' },
  rounds: { type: 'number', describe: 'sample → score → train rounds', default: ONPOLICY_DEFAULTS.rounds },
  lambda: { type: 'number', describe: 'share of on-policy sequences among each round\'s training rows, (0, 1]', default: ONPOLICY_DEFAULTS.lambda },
  maxNewTokens: { type: 'number', describe: 'student tokens sampled after each prompt', default: ONPOLICY_DEFAULTS.maxNewTokens },
  temperature: { type: 'number', describe: 'student sampling temperature', default: ONPOLICY_DEFAULTS.temperature },
  stepsPerRound: { type: 'number', describe: 'training steps per round', default: ONPOLICY_DEFAULTS.stepsPerRound },
  divergence: { type: 'string', choices: ONPOLICY_DIVERGENCES, describe: 'divergence of each round\'s training (GKD favours reverse-kl or jsd on the student\'s own samples)', defaultText: 'the student checkpoint\'s own' },
  lr: { type: 'number', describe: 'peak learning rate of each round, cosine to --min-lr', default: ONPOLICY_DEFAULTS.lr },
  minLr: { type: 'number', describe: 'learning rate at each round\'s last step', default: ONPOLICY_DEFAULTS.minLr },
  warmupSteps: { type: 'number', describe: 'warm-up steps per round', default: ONPOLICY_DEFAULTS.warmupSteps },
  seed: { type: 'number', describe: 'seed of sampling, mixing and training', default: ONPOLICY_DEFAULTS.seed },
  topK: { type: 'number', describe: 'teacher alternatives per position', default: ONPOLICY_DEFAULTS.topK },
  maxCost: { type: 'number', describe: 'USD budget for all on-policy scoring in --out; stops before it would be passed' },
  ...PRICE_OPTIONS,
  concurrency: { type: 'number', describe: 'teacher requests in flight', default: ONPOLICY_DEFAULTS.concurrency },
  workers: { type: 'number', describe: 'training worker threads', defaultText: 'one per core on wasm/cpu' },
  timeout: { type: 'number', describe: 'seconds per teacher request', default: TEACHER_TIMEOUT_SECONDS },
  backend: { ...BACKEND_OPTION, describe: 'tfjs backend for sampling and training' },
  json: flag('print one JSON summary'),
} as const satisfies OptionsSpec;

export type OnPolicyArgs = OptionsOf<typeof ONPOLICY_OPTIONS>;
