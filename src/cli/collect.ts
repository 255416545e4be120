import type { Argv, CommandModule } from 'yargs';
import type { CollectInput } from '../collect/options.js';
import type { CollectSummary } from '../collect/collect.js';
import { parseShardSpec } from '../collect/partition.js';

export interface CollectArgs {
  teacherUrl?: string;
  model?: string;
  input?: string;
  out?: string;
  mode?: string;
  format?: string;
  column?: string;
  idColumn?: string;
  systemColumn?: string;
  system?: string;
  apiKeyEnv?: string;
  topK?: number;
  maxTokens?: number;
  temperature?: number;
  seed?: number;
  n?: number;
  scoreApi?: string;
  chatApi?: string;
  chunkTokens?: number;
  chunkOverlap?: number;
  maxPromptTokens?: number;
  concurrency?: number;
  retries?: number;
  maxFailures?: number;
  timeout?: number;
  maxCost?: number;
  priceIn?: number;
  priceOut?: number;
  prices?: string;
  shardMb?: number;
  shard?: string;
  dryRun?: boolean;
  probe?: boolean;
  budgetTokens?: number;
  select?: string;
  student?: string | string[];
  randomShare?: number;
  selectSeed?: number;
  json?: boolean;
}

/** argv → stage options (pure; validation happens in resolveCollectOptions). */
export function collectOptionsFromArgs(a: CollectArgs): CollectInput {
  return {
    teacherUrl: a.teacherUrl,
    model: a.model ?? '',
    input: a.input ?? '',
    out: a.out ?? '',
    mode: a.mode as CollectInput['mode'],
    format: a.format as CollectInput['format'],
    column: a.column,
    idColumn: a.idColumn,
    systemColumn: a.systemColumn,
    system: a.system,
    apiKeyEnv: a.apiKeyEnv,
    topK: a.topK,
    maxTokens: a.maxTokens,
    temperature: a.temperature,
    seed: a.seed,
    n: a.n,
    scoreApi: a.scoreApi as CollectInput['scoreApi'],
    chatApi: a.chatApi as CollectInput['chatApi'],
    chunkTokens: a.chunkTokens,
    chunkOverlap: a.chunkOverlap,
    maxPromptTokens: a.maxPromptTokens,
    concurrency: a.concurrency,
    retries: a.retries,
    maxFailures: a.maxFailures,
    timeoutMs: a.timeout === undefined ? undefined : a.timeout * 1000,
    maxCost: a.maxCost,
    priceIn: a.priceIn,
    priceOut: a.priceOut,
    pricesFile: a.prices,
    shardBytes: a.shardMb === undefined ? undefined : Math.round(a.shardMb * 1024 * 1024),
    shard: a.shard === undefined ? undefined : parseShardSpec(a.shard),
    dryRun: a.dryRun,
    budgetTokens: a.budgetTokens,
    select: a.select as CollectInput['select'],
    student: a.student,
    randomShare: a.randomShare,
    selectSeed: a.selectSeed,
  };
}

const usd = (v: number) => `$${v.toFixed(v < 1 ? 4 : 2)}`;

function formatSelection(x: NonNullable<CollectSummary['selection']>): string {
  const budget = x.budgetTokens === null ? '' : ` of the ${x.budgetTokens} budget (${x.spentTokensBefore} spent before)`;
  return `selected ${x.selected} of ${x.candidates} candidate rows by ${x.strategy}${x.strategy !== 'random' ? ` (${x.byStrategy} by ${x.strategy}, ${x.byRandom} at random)` : ''}, ~${x.selectedTokens} teacher tokens${budget}; ${x.nearDuplicates} near-duplicates dropped, ${x.alreadyDone} rows answered before${x.reused ? '; the stored selection reused' : ''}`;
}

/** The human summary (pure). */
export function formatCollectSummary(s: CollectSummary): string {
  if (s.dryRun && s.estimate) {
    const e = s.estimate;
    return [
      `dry run${s.shard ? ` of shard ${s.shard}` : ''}: ${s.rows} rows → ${s.requestsTotal} requests (${s.alreadyDone} already done, ${s.pending} to send) to ${s.model}`,
      `tokens   ~${e.promptTokens} prompt (${s.tokens.method}), ≤ ${e.maxCompletionTokens} completion`,
      ...(s.selection ? [formatSelection(s.selection)] : []),
      `cost     ${usd(e.minCostUsd)} (prompts only) .. ${usd(e.maxCostUsd)} (every completion at max length) at $${s.price.input}/$${s.price.output} per 1M in/out (${s.price.source})`,
    ].join('\n');
  }
  const lines = [
    `${s.stopReason === 'complete' ? 'collected' : `stopped (${s.stopReason})`}${s.shard ? ` shard ${s.shard}` : ''}: ${s.answered} answered, ${s.rejected} rejected, ${s.alreadyDone} already done, ${s.pending} pending of ${s.requestsTotal} requests (${s.rows} rows)`,
    `sent     ${s.sent} HTTP requests, ${s.retries} retries, ${s.reqPerSec.toFixed(1)} req/s over ${(s.elapsedMs / 1000).toFixed(1)} s`,
    `tokens   ${s.tokens.prompt} prompt + ${s.tokens.completion} completion`,
    `cost     ${usd(s.costUsd)} this run, ${usd(s.totalCostUsd)} in total (${s.price.source === 'unknown' ? 'no price known' : `$${s.price.input}/$${s.price.output} per 1M in/out`})`,
    `out      ${s.out} (${s.records} records this run)`,
  ];
  if (s.parseStats.sentinels || s.parseStats.shortTopK) {
    lines.push(`logprobs ${s.parseStats.positions} positions, ${s.parseStats.sentinels} sentinel (-9999) values stored as null, ${s.parseStats.shortTopK} positions with fewer alternatives than asked`);
  }
  if (s.selection) lines.push(formatSelection(s.selection));
  if (s.stopDetail) lines.push(`why      ${s.stopDetail}`);
  return lines.join('\n');
}

export const collectCommand: CommandModule<object, CollectArgs> = {
  command: 'collect',
  describe: 'Collect teacher log-probs (chat or teacher-forced score) into raw Arrow shards, resumably',
  builder: (y: Argv<object>) => y
    .option('teacher-url', { type: 'string', describe: 'OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (else OPENAI_BASE_URL, else OpenAI)' })
    .option('model', { type: 'string', describe: 'teacher model name (required; with --probe, default: the first of GET /models)' })
    .option('input', { type: 'string', describe: 'CSV (header row) or JSONL file (required unless --probe)' })
    .option('out', { type: 'string', describe: 'output directory, e.g. datasets/NAME/raw (required unless --probe)' })
    .option('mode', { type: 'string', choices: ['chat', 'score'], describe: 'chat: generate with top-k log-probs; score: teacher-forced log-probs of given text (default chat)' })
    .option('format', { type: 'string', choices: ['csv', 'jsonl'], describe: 'input format (default: from the extension)' })
    .option('column', { type: 'string', describe: 'CSV column / JSONL field with the prompt (chat, default "prompt") or text (score, default "text")' })
    .option('id-column', { type: 'string', describe: 'column/field with row ids (default: JSONL "id" if present, else the row number)' })
    .option('system-column', { type: 'string', describe: 'CSV column with a system prompt per row' })
    .option('system', { type: 'string', describe: 'system prompt for rows without one' })
    .option('api-key-env', { type: 'string', describe: 'environment variable holding the API key (default OPENAI_API_KEY; local servers need none)' })
    .option('top-k', { type: 'number', describe: 'alternatives per position, ≤ 20 (≤ 5 for OpenAI echo scoring) (default 20)' })
    .option('max-tokens', { type: 'number', describe: 'chat: tokens to generate (default 256)' })
    .option('temperature', { type: 'number', describe: 'chat sampling temperature (default 1)' })
    .option('seed', { type: 'number', describe: 'chat sampling seed (best effort on the server)' })
    .option('n', { type: 'number', describe: 'chat: choices per prompt, each billed (default 1)' })
    .option('score-api', { type: 'string', choices: ['echo', 'vllm'], describe: 'score mode wire format: legacy echo+logprobs or vLLM prompt_logprobs (default echo)' })
    .option('chat-api', { type: 'string', choices: ['chat', 'responses'], describe: 'chat mode wire format: /v1/chat/completions, or OpenAI\'s Responses API /v1/responses (no --seed, --n 1) (default chat)' })
    .option('chunk-tokens', { type: 'number', describe: 'score: chunk length in approx. tokens (4 characters each) (default 2048)' })
    .option('chunk-overlap', { type: 'number', describe: 'score: overlap between chunks in approx. tokens (default 256)' })
    .option('max-prompt-tokens', { type: 'number', describe: 'reject rows whose estimated prompt is longer' })
    .option('concurrency', { type: 'number', describe: 'requests in flight (default 8)' })
    .option('retries', { type: 'number', describe: 'retries per request on 408/409/429/5xx/network/timeout (default 6)' })
    .option('max-failures', { type: 'number', describe: 'stop after this many consecutive failed requests (default 10)' })
    .option('timeout', { type: 'number', describe: 'seconds per request attempt (default 120)' })
    .option('max-cost', { type: 'number', describe: 'USD budget for everything in --out; stops before it would be passed' })
    .option('price-in', { type: 'number', describe: 'USD per 1M input tokens (overrides the table)' })
    .option('price-out', { type: 'number', describe: 'USD per 1M output tokens (overrides the table)' })
    .option('prices', { type: 'string', describe: 'JSON price file {"model": {"input": USD/1M, "output": USD/1M}}' })
    .option('budget-tokens', { type: 'number', describe: 'teacher-token budget for everything in --out (estimated prompt + completion tokens): only the rows --select picks within it are sent' })
    .option('select', { type: 'string', choices: ['random', 'entropy', 'margin', 'disagreement'], describe: 'how rows are picked under --budget-tokens / --max-cost: at random, or where --student is least sure (highest mean entropy, smallest top-2 margin), or where several --student checkpoints disagree most (mean Jensen–Shannon divergence) (default random with --budget-tokens)' })
    .option('student', { type: 'string', describe: 'student checkpoint (run directory) whose uncertainty ranks the rows for --select entropy|margin; repeat (≥ 2, one tokenizer) for --select disagreement' })
    .option('random-share', { type: 'number', describe: 'share of the budget picked at random for coverage with --select entropy|margin (default 0.2)' })
    .option('select-seed', { type: 'number', describe: 'seed of the random picks (default 0)' })
    .option('shard-mb', { type: 'number', describe: 'roll to a new shard after this many MiB (default 256)' })
    // requiresArg: the value is taken even when it looks like a flag ("-1/4" gets the --shard error, not "unknown argument 1")
    .option('shard', { type: 'string', requiresArg: true, describe: 'i/n: collect only slice i (0 ≤ i < n) of the input rows, by a hash of each row id; one --out per shard, then kd dataset merge (Kubernetes: --shard $JOB_COMPLETION_INDEX/8)' })
    .option('probe', { type: 'boolean', default: false, describe: 'only probe the teacher (--teacher-url, --model): does it score given text or only its own answers? 3 tiny requests, nothing collected' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'estimate tokens and cost without calling the teacher' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON summary on stdout' })
    .example('$0 collect --teacher-url http://127.0.0.1:8080/v1 --model kd-teacher --input datasets/demo-prompts.csv --out datasets/mine/raw --dry-run', 'estimate tokens and cost, calling nothing')
    .example('$0 collect --teacher-url http://127.0.0.1:8080/v1 --model kd-teacher --input datasets/demo-sotu.jsonl --mode score --out datasets/mine/raw-score', 'teacher-forced top-20 log-probs of the text (kd serve --checkpoint checkpoints/teacher --model-name kd-teacher answers there)')
    .example('$0 collect --teacher-url http://127.0.0.1:8080/v1 --model kd-teacher --input texts.jsonl --mode score --out datasets/mine/raw --budget-tokens 50000 --select entropy --student checkpoints/mine', 'spend 50k teacher tokens on the texts the student is least sure of (20% at random)')
    .example('$0 collect --model gpt-4o-mini --input datasets/demo-prompts.csv --out datasets/mini/raw --max-cost 2', 'OpenAI (key from OPENAI_API_KEY): the teacher\'s answers with top-20 alternatives, at most $2') as Argv<CollectArgs>,
  handler: async (argv) => {
    if (argv.probe) {
      const { printProbe } = await import('./probe.js');
      return printProbe({ teacherUrl: argv.teacherUrl, model: argv.model, apiKeyEnv: argv.apiKeyEnv, timeout: argv.timeout, json: argv.json });
    }
    const { collect } = await import('../collect/collect.js');
    const { KdError } = await import('../core/errors.js');
    const controller = new AbortController();
    let interrupts = 0;
    const onSigint = () => {
      if (++interrupts > 1) process.exit(130);
      process.stderr.write('\nkd: stopping (Ctrl-C again to quit at once)…\n');
      controller.abort();
    };
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigint); // kd run stopping, or its parent gone
    const tty = !argv.json && process.stderr.isTTY;
    let bar: import('../collect/progress.js').ProgressBar | null = null;
    let summary: CollectSummary;
    try {
      const [{ progressBar, progressLines }, { progressSink }] = await Promise.all([import('../collect/progress.js'), import('../core/progress.js')]);
      const sink = progressSink(); // under kd run: progress as lines to its pipe
      summary = await collect(collectOptionsFromArgs(argv), {
        signal: controller.signal,
        log: (line) => process.stderr.write(`kd: ${line}\n`),
        onProgress: sink || tty
          ? (p) => {
            bar ??= sink ? progressLines(sink) : progressBar(process.stderr, p.done);
            bar.update(p);
          }
          : undefined,
      });
    } finally {
      (bar as import('../collect/progress.js').ProgressBar | null)?.stop();
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigint);
    }
    process.stdout.write((argv.json ? JSON.stringify(summary) : formatCollectSummary(summary)) + '\n');
    if (!['complete', 'budget'].includes(summary.stopReason)) {
      throw new KdError(`collect-${summary.stopReason.replace(/_/g, '-')}`, summary.stopDetail ?? summary.stopReason);
    }
  },
};
