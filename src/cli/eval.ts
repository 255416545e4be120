import { KdError } from '../core/errors.js';
import { msOfSeconds } from '../core/options.js';
import { EVAL_OPTIONS, type EvalArgs } from '../eval/options.js';
import { specCommand } from './command.js';
import type { EvalOptions, EvalResult } from '../eval/eval.js';

/**
 * Exit codes: 0 = evaluated (and every gate passed), 1 = bad input (KdError), 2 = usage,
 * 3 = the report was written but a --fail-if / --baseline gate failed (GATE_EXIT_CODE in
 * src/eval/gate.ts; kept as a literal here so --help loads no stage code).
 */
export const EVAL_GATE_EXIT = 3;

/** argv → EvalOptions; pure (the stage checks values that need files or models). */
export function resolveEvalArgs(a: EvalArgs): EvalOptions {
  const students = (Array.isArray(a.student) ? a.student : [a.student]).filter((s): s is string => typeof s === 'string' && s.length > 0);
  if (!students.length) throw new KdError('bad-option', 'give at least one --student checkpoint');
  if (a.gateOn !== undefined && a.gateOn !== 'each' && a.gateOn !== 'best') throw new KdError('bad-option', `--gate-on must be "each" or "best", got "${a.gateOn}"`);
  if (a.maxRegression !== undefined && !a.baseline) throw new KdError('bad-option', '--max-regression needs --baseline OLD/report.json');
  // the flags are EvalOptions' own names but for these: a list of students and texts, seconds, the CLI's --backend and --json
  const { student: _student, text, teacherTimeout, baselineMetrics, backend: _backend, json: _json, ...same } = a;
  return {
    ...same, students, teacherTimeoutMs: msOfSeconds(teacherTimeout),
    baselineMetrics: baselineMetrics ? [baselineMetrics] : undefined,
    texts: text === undefined ? undefined : (Array.isArray(text) ? text : [text]).map(String),
  };
}

function printResult(r: EvalResult, json: boolean): void {
  const out = (s: string) => process.stdout.write(s + '\n');
  if (json) {
    const { students, summary, gate, teacher, texts, headline, warnings, data } = r.report;
    out(JSON.stringify({
      out: r.outDir, summary: summary.line, best: summary.best, ties: summary.ties, gate, warnings,
      validation: { sequences: data.sequences, tokens: data.tokens, splitTokens: data.splitTokens, whole: data.whole },
      headline: headline.map((h) => ({ text: h.text, baseline: h.baseline, baselineBpb: h.baselineBpb, teacherBpb: h.teacherBpb, students: Object.fromEntries(h.rows.map((x) => [x.name, { bpb: x.bpb, gain: x.gain, gapClosed: x.gapClosed, verdict: x.verdict }])) })),
      texts: texts.map((t) => ({ text: t.text, bytes: t.bytes, teacherBpb: t.teacher?.bpb ?? null, students: Object.fromEntries(t.students.map((x) => [x.name, x.bpb])) })),
      teacher: { model: teacher.model, ppl: teacher.ppl, live: teacher.live ? { status: teacher.live.status, error: teacher.live.error ?? null } : null },
      students: students.map((s) => ({ name: s.name, kind: s.kind, kl: s.metrics.kl, agreement: s.metrics.agreement, recall: s.metrics.recall, ppl: s.metrics.ppl, ece: s.metrics.ece, p50Ms: s.latency.p50Ms, p95Ms: s.latency.p95Ms, tokensPerSec: s.latency.tokensPerSec, tokensPerSecLong: s.latencyLong.tokensPerSec, params: s.size.params, weightBytes: s.size.weightBytes, deployableBytes: s.size.deployableBytes, baseline: s.baseline })),
    }));
  } else {
    const f = (x: number | null, d = 3) => (x === null ? '—' : x.toFixed(d));
    for (const s of r.report.students) {
      out(`${s.name.padEnd(16)} ${s.kind.padEnd(6)} KL ${f(s.metrics.kl, 4)}  agreement ${f(s.metrics.agreement)}  recall ${f(s.metrics.recall)}  ppl ${f(s.metrics.ppl, 2)}  ECE ${f(s.metrics.ece)}  p50 ${f(s.latency.p50Ms, 2)} ms  ${Math.round(s.latency.tokensPerSec)} tok/s @${s.latency.context}  ${Math.round(s.latencyLong.tokensPerSec)} tok/s @${s.latencyLong.context}${s.baseline ? '  (hard-label baseline)' : ''}`);
    }
    for (const t of r.report.texts) {
      const parts = [...(t.teacher ? [`teacher ${f(t.teacher.bpb, 4)}`] : []), ...t.students.map((x) => `${x.name} ${f(x.bpb, 4)}`)];
      out(`bits per byte on ${t.text} (${t.bytes} bytes): ${parts.join('  ')}`);
    }
    for (const w of r.report.warnings) out(`warning: ${w}`);
    out(r.report.summary.line);
    out(`report: ${r.outDir}/index.html (figures in report.json)`);
  }
  for (const line of r.failures) process.stderr.write(`kd eval: ${line}\n`);
}

export const evalCommand = specCommand({
  command: 'eval',
  describe: 'Evaluate students against the teacher: KL, agreement, calibration, speed, size; HTML report and CI gates',
  options: EVAL_OPTIONS,
  examples: [
    ['$0 eval --data datasets/web --student checkpoints/run --student int8=checkpoints/run-int8 --out reports/run', 'compare a student with its int8 version'],
    ['$0 eval --data datasets/demo/data --student kd=checkpoints/kd --baseline-student hard=checkpoints/hard --teacher-checkpoint checkpoints/teacher --text corpus:sotu --out reports/bpb', 'did distillation pay? bits per byte on held-out text beside a hard-label baseline and the teacher'],
    ['$0 eval --data datasets/web --student checkpoints/run --out reports/nightly --force --fail-if "agreement<0.6,kl>0.5" --baseline reports/last/report.json', 'a nightly CI gate (exit 3 on failure)'],
  ],
  epilogue: 'Exit codes: 0 ok, 1 bad input, 2 usage, 3 a gate failed (the report is still written). Gate metrics: agreement, kl, recall, ppl, accuracy, ece, p50-ms, p95-ms, tokens-per-sec, params, bytes, disk-bytes, sparsity, bits.',
  handler: async (argv) => {
    const o = resolveEvalArgs(argv);
    const { initBackend } = await import('../backend/index.js');
    await initBackend({ backend: argv.backend });
    const { evalStudents } = await import('../eval/eval.js');
    const r = await evalStudents({ ...o, log: argv.json ? undefined : (l) => process.stderr.write(`kd eval: ${l}\n`) });
    printResult(r, Boolean(argv.json));
    if (r.failures.length) process.exitCode = EVAL_GATE_EXIT;
  },
});
