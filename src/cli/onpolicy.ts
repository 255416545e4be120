import { msOfSeconds } from '../core/options.js';
import { ONPOLICY_OPTIONS, type OnPolicyArgs } from '../onpolicy/options.js';
import { printSummary, specCommand } from './command.js';
import type { OnPolicyInput, OnPolicySummary } from '../onpolicy/onpolicy.js';

/** argv → the loop's options: seconds → ms; --backend and --json are the CLI's. */
export function onPolicyOptionsFromArgs(a: OnPolicyArgs): OnPolicyInput {
  const { timeout, backend: _backend, json: _json, ...same } = a;
  return { ...same, timeoutMs: msOfSeconds(timeout) };
}

export function formatOnPolicy(s: OnPolicySummary): string {
  return [
    `${s.stopReason === 'complete' ? 'done' : `stopped (${s.stopReason})`}: ${s.rounds.length} round(s), ${s.teacherTokens} on-policy teacher tokens, $${s.totalCostUsd.toFixed(4)} in total`,
    ...s.rounds.map((r) => `round ${r.round + 1}: ${r.onRows} on-policy + ${r.offRows} off-policy sequences, ${r.teacherTokens} teacher tokens, ${r.steps} steps, loss ${Number.isFinite(r.loss) ? r.loss.toFixed(4) : '—'}`),
    `student  ${s.student}`,
  ].join('\n');
}

export const onPolicyCommand = specCommand({
  command: 'onpolicy',
  describe: 'On-policy distillation (GKD): the student samples continuations, the teacher scores them, the student trains on them mixed with off-policy data',
  options: ONPOLICY_OPTIONS,
  examples: [
    ['$0 onpolicy --teacher-url http://127.0.0.1:8080/v1 --model kd-teacher --prompts prompts.jsonl --student checkpoints/mine --offpolicy datasets/mine/raw --out datasets/mine/onpolicy --max-cost 5', 'two GKD rounds at λ 0.5, at most $5 of teacher scoring'],
  ],
  handler: async (argv) => {
    const [{ onPolicy }, { progressBar }, { startProgress, formatDuration }] = await Promise.all([import('../onpolicy/onpolicy.js'), import('../collect/progress.js'), import('../core/progress.js')]);
    const controller = new AbortController();
    const onSig = () => controller.abort();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const tty = !argv.json && Boolean(process.stderr.isTTY);
    let cbar: import('../collect/progress.js').ProgressBar | null = null;
    let tbar: ReturnType<typeof startProgress> | null = null;
    try {
      const s = await onPolicy(onPolicyOptionsFromArgs(argv), {
        signal: controller.signal, backend: argv.backend,
        log: (l) => { cbar?.stop(); cbar = null; tbar?.stop(); tbar = null; process.stderr.write(`kd: ${l}\n`); },
        onCollectProgress: tty ? (p) => { cbar ??= progressBar(process.stderr, p.done); cbar.update(p); } : undefined,
        onTrainStep: tty ? (p) => { tbar ??= startProgress(p.steps, 'train |{bar}| {value}/{total} steps | loss {loss} | ETA {etaText}', true); tbar.update(p.step, { loss: p.loss.toFixed(4), etaText: formatDuration(p.etaSec) }); } : undefined,
      });
      (cbar as { stop(): void } | null)?.stop();
      (tbar as { stop(): void } | null)?.stop();
      printSummary(argv.json, s, formatOnPolicy);
      if (s.stopReason === 'interrupted') process.exitCode = 130;
    } finally {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    }
  },});
