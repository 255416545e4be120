import { type CollectArgs, type CollectInput, COLLECT_OPTIONS } from '../collect/options.js';
import { bytesOfMiB, msOfSeconds } from '../core/options.js';
import { printSummary, specCommand } from './command.js';
import type { CollectSummary } from '../collect/collect.js';
import { parseShardSpec } from '../collect/partition.js';

/** argv → stage options (pure; validation happens in resolveCollectOptions): seconds → ms, MiB → bytes, i/n → a shard. */
export function collectOptionsFromArgs(a: CollectArgs): CollectInput {
  const { timeout, shardMb, shard, prices, probe: _probe, json: _json, ...same } = a;
  return {
    ...same, model: a.model ?? '', input: a.input ?? '', out: a.out ?? '',
    timeoutMs: msOfSeconds(timeout), shardBytes: bytesOfMiB(shardMb), shard: shard === undefined ? undefined : parseShardSpec(shard), pricesFile: prices,
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

export const collectCommand = specCommand({
  command: 'collect',
  describe: 'Collect teacher log-probs (chat or teacher-forced score) into raw Arrow shards, resumably',
  options: COLLECT_OPTIONS,
  examples: [
    ['$0 collect --teacher-url http://127.0.0.1:8080/v1 --model kd-teacher --input datasets/demo-prompts.csv --out datasets/mine/raw --dry-run', 'estimate tokens and cost, calling nothing'],
    ['$0 collect --teacher-url http://127.0.0.1:8080/v1 --model kd-teacher --input datasets/demo-sotu.jsonl --mode score --out datasets/mine/raw-score', 'teacher-forced top-20 log-probs of the text (kd serve --checkpoint checkpoints/teacher --model-name kd-teacher answers there)'],
    ['$0 collect --teacher-url http://127.0.0.1:8080/v1 --model kd-teacher --input texts.jsonl --mode score --out datasets/mine/raw --budget-tokens 50000 --select entropy --student checkpoints/mine', 'spend 50k teacher tokens on the texts the student is least sure of (20% at random)'],
    ['$0 collect --model gpt-4o-mini --input datasets/demo-prompts.csv --out datasets/mini/raw --max-cost 2', 'OpenAI (key from OPENAI_API_KEY): the teacher\'s answers with top-20 alternatives, at most $2'],
  ],
  handler: async (argv) => {
    if (argv.probe) {
      const { printProbe } = await import('./probe.js');
      return printProbe(argv);
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
    printSummary(argv.json, summary, formatCollectSummary);
    if (!['complete', 'budget'].includes(summary.stopReason)) {
      throw new KdError(`collect-${summary.stopReason.replace(/_/g, '-')}`, summary.stopDetail ?? summary.stopReason);
    }
  },
});
