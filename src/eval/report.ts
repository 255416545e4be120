/**
 * index.html: one self-contained file rendered from report.json and the charts' SVG. No script, no
 * external resource: CSS is inline, charts are inline SVG, and a Content-Security-Policy of
 * default-src 'none' makes any stray reference fail closed instead of reaching the network.
 * Every piece of user-controlled text (student names, paths, prompts, generations, errors) goes
 * through `escapeHtml`.
 */
import type { Continuation, EvalReport } from '../schema/eval-report.js';
import type { Interval } from './bootstrap.js';
import type { StudentSize } from './load.js';
import type { LatencyFigures } from './student.js';
import type { Charts } from './charts.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const missing = (why: string) => `<span class="missing" title="${escapeHtml(why)}">missing</span>`;
const num = (x: number | null | undefined, digits = 3, why = 'not computed') => (x === null || x === undefined || !Number.isFinite(x) ? missing(why) : x.toFixed(digits));
const int = (x: number) => Math.round(x).toLocaleString('en-US');
export function formatBytes(b: number): string {
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  return `${(b / 1024 / 1024).toFixed(2)} MiB`;
}

const ci = (x: Interval | null | undefined, digits: number, scale = 1) => (x ? ` <small class="ci">[${(x.lo * scale).toFixed(digits)}, ${(x.hi * scale).toFixed(digits)}]</small>` : '');
const pct = (x: number | null | undefined, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? missing('not computed') : `${(x * 100).toFixed(digits)}%`);

function badges(r: EvalReport, name: string): string {
  const won = Object.entries(r.summary.best).filter(([, n]) => n === name).map(([k]) => `<span class="tag">best ${escapeHtml(k)}</span>`);
  const tied = Object.entries(r.summary.ties ?? {}).filter(([, ns]) => ns.includes(name)).map(([k]) => `<span class="tag tie" title="the difference is within the 95% interval">tie ${escapeHtml(k)}</span>`);
  const base = r.students.find((s) => s.name === name)?.baseline ? ['<span class="tag base">hard-label baseline</span>'] : [];
  return [...base, ...won, ...tied].join(' ');
}

/** "Did distillation pay?": per text, each student against the hard-label baseline and the teacher. */
function headlineSection(r: EvalReport): string {
  if (!r.headline.length) {
    const why = !r.texts.length ? 'give --text (e.g. corpus:sotu) and --baseline-student' : 'give --baseline-student (a student trained on hard labels only, alpha 1, same size and tokens)';
    return `<section class="headline"><h2>Did distillation pay?</h2><p>${missing(why)} — without a hard-label baseline on held-out text the report cannot say.</p></section>`;
  }
  const blocks = r.headline.map((h) => {
    const rows = h.rows.map((x) => `<tr><th scope="row">${escapeHtml(x.name)}</th><td>${x.bpb.toFixed(4)}${ci(x.ci, 4)}</td>` +
      `<td class="${x.verdict === 'paid' ? 'good' : x.verdict === 'worse' ? 'bad' : ''}">${x.gain >= 0 ? '−' : '+'}${(Math.abs(x.gain) * 100).toFixed(1)}%${ci(x.gainCi && { lo: -x.gainCi.hi, hi: -x.gainCi.lo }, 1, 100)}</td>` +
      `<td>${x.gapClosed === null ? missing(h.teacherBpb === null ? 'no teacher figure on this text (--teacher-checkpoint, or a --teacher-url that scores text)' : 'the teacher is not below the baseline') : pct(x.gapClosed)}${ci(x.gapClosedCi, 1, 100)}</td>` +
      `<td class="verdict-cell">${escapeHtml(x.verdict)}</td></tr>`);
    return `<h3>${escapeHtml(h.text)}</h3><table class="summary headline-table"><thead><tr><th>model</th><th>bits per byte ↓</th><th>vs baseline</th><th>gap to teacher closed</th><th>verdict</th></tr></thead><tbody>` +
      `<tr class="teacher"><th scope="row">teacher</th><td>${h.teacherBpb === null ? missing('no teacher figure on this text') : h.teacherBpb.toFixed(4)}</td><td></td><td>100%</td><td></td></tr>` +
      `<tr class="baseline"><th scope="row">${escapeHtml(h.baseline)} <span class="tag base">hard-label baseline</span></th><td>${h.baselineBpb.toFixed(4)}</td><td>0%</td><td>0%</td><td></td></tr>` +
      rows.join('') + '</tbody></table>' + (h.notes.length ? `<ul>${h.notes.map((n) => `<li class="bad">${escapeHtml(n)}</li>`).join('')}</ul>` : '');
  });
  return `<section class="headline"><h2>Did distillation pay?</h2><p>Bits per byte on held-out text (each model with its own tokenizer; lower is better) against a student of the same size trained on the same tokens with hard labels only. "vs baseline": the change in bits per byte; "gap closed": (baseline − student) / (baseline − teacher). In brackets: 95% bootstrap intervals over ${r.texts[0]?.blockBytes ?? 4096}-byte blocks of the text; "paid" when the whole interval is an improvement.</p>${blocks.join('')}</section>`;
}

/**
 * Quality, one row per model: the teacher first. Figures against the teacher's labels (KL,
 * agreement, recall) are not defined for the teacher itself; figures on the actual tokens
 * (perplexity, accuracy, ECE) compare like with like only on the students' tokenizer.
 */
function qualityTable(r: EvalReport): string {
  const tc = r.teacher.checkpoint;
  const tokNote = tc && !tc.sameTokenizer
    ? `needs the students' tokenizer: the teacher's (${tc.vocabSize} tokens) differs, so its per-token figures do not compare; compare bits per byte`
    : 'needs the teacher as a checkpoint with the students\u2019 tokenizer (--teacher-checkpoint)';
  const textCols = r.texts.map((t) => `<th>bits/byte ↓<br><small>${escapeHtml(t.text)}</small></th>`).join('');
  const head = `<tr><th>model</th>${textCols}<th>KL ↓</th><th>agreement ↑</th><th>top-k recall ↑</th><th>perplexity ↓</th><th>accuracy ↑</th><th>ECE ↓</th></tr>`;
  const reference = '<span class="na" title="measured against the teacher: not defined for the teacher itself">reference</span>';
  const na = (why: string) => `<span class="na" title="${escapeHtml(why)}">n/a</span>`;
  const teacherRow = tc || r.texts.some((t) => t.teacher)
    ? `<tr class="teacher"><th scope="row">teacher${r.teacher.model ? ` <small>${escapeHtml(r.teacher.model)}</small>` : ''}</th>${r.texts.map((t) => `<td>${t.teacher ? `${t.teacher.bpb.toFixed(4)}${ci(t.teacherCi, 4)}` : missing(t.teacherNote ?? 'no teacher figure on this text')}</td>`).join('')}` +
      `<td>${reference}</td><td>${reference}</td><td>${reference}</td>` +
      (tc?.metrics ? `<td>${num(tc.metrics.ppl, 2)}</td><td>${num(tc.metrics.accuracy)}</td><td>${num(tc.metrics.ece)}</td>` : `<td>${na(tokNote)}</td><td>${na(tokNote)}</td><td>${na(tokNote)}</td>`) + '</tr>'
    : `<tr class="teacher"><th scope="row">teacher</th><td colspan="${r.texts.length + 6}">${missing('give --teacher-checkpoint (or --text with a --teacher-url that scores text) to put the teacher in this table')}</td></tr>`;
  const rows = r.students.map((s, i) => {
    const iv = s.intervals;
    return `<tr><th scope="row">${escapeHtml(s.name)} ${badges(r, s.name)}</th>` +
      r.texts.map((t) => `<td>${num(t.students[i]?.bpb, 4)}${ci(t.students[i]?.ci, 4)}</td>`).join('') +
      `<td>${num(s.metrics.kl, 4)}${ci(iv?.kl, 4)}</td><td>${num(s.metrics.agreement)}${ci(iv?.agreement, 3)}</td><td>${num(s.metrics.recall)}</td>` +
      `<td>${num(s.metrics.ppl, 1, 'no targets')}${ci(iv?.ppl, 1)}</td><td>${num(s.metrics.accuracy)}</td><td>${num(s.metrics.ece)}${ci(iv?.ece, 3)}</td></tr>`;
  });
  return `<div class="scroll"><table class="summary quality"><thead>${head}</thead><tbody>${teacherRow}${rows.join('')}</tbody></table></div>` +
    `<p class="note">Bits per byte compare every model, whatever its tokenizer. KL, agreement and recall are measured against the teacher's top-k labels on the validation split; perplexity, accuracy and ECE on its actual tokens with the students' vocabulary of ${r.students[0]?.model.vocabSize ?? '?'} tokens — ${tc?.sameTokenizer ? 'the teacher shares it' : 'shown for the teacher only when it shares that tokenizer'}. The teacher's perplexity inside its own top-k (${num(r.teacher.ppl, 2, 'no target in the teacher top-k')}, over the ${pct(r.teacher.coverage, 0)} of tokens it covers) is in the Teacher section: it is not comparable. In brackets: 95% bootstrap intervals over the ${int(r.data.sequences)} validation sequences.</p>`;
}

const latencyCell = (l: LatencyFigures) => `${num(l.p50Ms, 2)} / ${num(l.p95Ms, 2)}`;

/** Size and speed, one row per model, the teacher first. */
function speedTable(r: EvalReport): string {
  const S = r.students[0]?.latency.context ?? 0, L = r.students[0]?.latencyLong.context ?? 0;
  const head = `<tr><th>model</th><th>params</th><th>deployable ↓</th><th>checkpoint file</th><th>sparsity</th><th>bits/weight</th><th>p50 / p95 ms @${S}</th><th>tok/s @${S}</th><th>p50 / p95 ms @${L}</th><th>tok/s @${L}</th></tr>`;
  const sparsity = (z: StudentSize) => {
    const asked = z.askedSparsity !== null ? ` (asked ${(z.askedSparsity * 100).toFixed(0)}%)` : '';
    return `<span title="zeros in the block matrices kd prune works on; ${(z.overallSparsity * 100).toFixed(1)}% of all weights (embeddings and LayerNorms are not pruned)">${(z.sparsity * 100).toFixed(1)}%${asked}</span>`;
  };
  const row = (name: string, cls: string, z: StudentSize, a: LatencyFigures, b: LatencyFigures) =>
    `<tr class="${cls}"><th scope="row">${name}</th><td>${int(z.params)}</td><td>${formatBytes(z.deployableBytes)}</td><td>${formatBytes(z.bytesOnDisk)}</td><td>${sparsity(z)}</td><td>${z.bits.toFixed(1)}</td>` +
    `<td>${latencyCell(a)}</td><td>${int(a.tokensPerSec)}</td><td>${latencyCell(b)}</td><td>${int(b.tokensPerSec)}</td></tr>`;
  const tc = r.teacher.checkpoint;
  const rows = [
    tc ? row('teacher', 'teacher', tc.size, tc.latency, tc.latencyLong) : `<tr class="teacher"><th scope="row">teacher</th><td colspan="9">${missing('give --teacher-checkpoint to time the teacher on this machine (a --teacher-url is timed per request, over HTTP: see the Teacher section)')}</td></tr>`,
    ...r.students.map((s) => row(`${escapeHtml(s.name)} ${badges(r, s.name)}`, '', s.size, s.latency, s.latencyLong)),
  ];
  return `<div class="scroll"><table class="summary speed"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table></div>` +
    `<p class="note">Deployable: the weights only, as stored (int8 values and scales, or float32), with a pruned matrix stored sparse (a bitmap and its nonzeros) when that is smaller; the checkpoint file also holds the optimizer state of a training run. Latency: one stream, greedy, with a KV cache holding ${S} or ${L} tokens of context, ${r.students[0]?.latency.steps ?? 0} timed steps each, on this machine (backend ${escapeHtml(r.backend)}).</p>`;
}

function warningsSection(r: EvalReport): string {
  if (!r.warnings.length) return '';
  return `<ul class="warnings">${r.warnings.map((w) => `<li>⚠ ${escapeHtml(w)}</li>`).join('')}</ul>`;
}

function teacherSection(r: EvalReport): string {
  const t = r.teacher;
  const c = t.collection;
  const live = t.live;
  const liveWhy = live ? `teacher ${live.status}${live.error ? `: ${live.error}` : ''}` : 'no --teacher-url given';
  const rows: [string, string][] = [
    ['model', t.model ? escapeHtml(t.model) : missing('no teacher model recorded')],
    ['perplexity on the actual tokens (within its top-k)', `${num(t.ppl, 2, 'no target in the teacher top-k')} (coverage ${num(t.coverage)})`],
    ['collection', c ? `${int(c.requests)} records, ${int(c.promptTokens)} prompt + ${int(c.completionTokens)} completion tokens, $${c.costUsd.toFixed(4)}` : missing('no collection records (synthetic data or dataset without raw/manifest.json)')],
    ['price per 1M tokens', t.price ? `$${t.price.input} in / $${t.price.output} out (${escapeHtml(t.price.source)})` : missing('unknown teacher price')],
    ['latency while collecting', c?.latency ? `p50 ${num(c.latency.p50Ms, 0)} ms, p95 ${num(c.latency.p95Ms, 0)} ms per request, ${num(c.latency.msPerToken, 1, 'no usage reported')} ms/token (${c.latency.n} requests)` : missing('no collection records')],
    ['latency measured live', live?.latency ? `p50 ${num(live.latency.p50Ms, 0)} ms, p95 ${num(live.latency.p95Ms, 0)} ms per request, ${num(live.latency.msPerToken, 1, 'no usage reported')} ms/token (${live.latency.n} requests, ${escapeHtml(live.url)})` : missing(liveWhy)],
  ];
  if (live && live.status !== 'ok') rows.push(['live teacher', `<span class="bad">${escapeHtml(liveWhy)}</span>`]);
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th scope="row">${k}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function provenanceSection(r: EvalReport): string {
  const p = r.provenance;
  const rows: [string, string][] = [
    ['git commit', p.gitCommit ? `<code>${escapeHtml(p.gitCommit)}</code>` : missing('not run inside a git repository')],
    ['teacher system_fingerprint', p.systemFingerprints.length ? p.systemFingerprints.map((f) => `<code>${escapeHtml(f)}</code>`).join(' ') : missing('none recorded while collecting')],
    ...p.students.map((s): [string, string] => [`student ${escapeHtml(s.name)}`, `seed ${s.seed ?? '—'}, ${s.steps ?? '—'} training steps`]),
  ];
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th scope="row">${k}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function costSection(r: EvalReport): string {
  const p = r.teacher.price;
  const rows = r.students.map((s) => `<tr><th scope="row">${escapeHtml(s.name)}</th><td>${(s.cost.flopsPerToken / 1e6).toFixed(2)} MFLOP</td>` +
    `<td>${num(s.cost.cpuSecondsPer1MTokens, 0)}</td><td>${s.cost.usdPer1MTokens === null ? '<span class="missing">pass --cpu-usd-per-hour PRICE</span>' : `$${s.cost.usdPer1MTokens.toFixed(4)}`}</td>` +
    `<td>${p ? `$${p.output.toFixed(2)}` : missing('unknown teacher price')}</td></tr>`);
  return `<table class="summary"><thead><tr><th>student</th><th>FLOPs/token</th><th>CPU-seconds per 1M tokens</th><th>student $ per 1M tokens</th><th>teacher $ per 1M output tokens</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function samplesSection(r: EvalReport): string {
  if (!r.samples.length) return `<p>${missing('no prompts')}</p>`;
  const gen = (c: Continuation | null, why: string) => c === null ? missing(why)
    : `<pre>${escapeHtml(c.text)}</pre><small class="${c.repeated >= 0.2 ? 'bad' : ''}">repeats ${(c.repeated * 100).toFixed(0)}% of its word 3-grams</small>`;
  return `<p class="note">Every model continues the same prompt text (a plain completion, no chat template): greedy, then sampled (seeded). A high share of repeated 3-grams is a loop.</p>` + r.samples.map((s, i) => {
    const noTeacher = r.teacher.live && r.teacher.live.status !== 'ok' ? `teacher ${r.teacher.live.status}` : 'no teacher continuation (--teacher-checkpoint or --teacher-url)';
    const cells = [
      `<div class="gen teacher"><h4>teacher${s.teacherSource ? ` (${s.teacherSource})` : ''}</h4><h5>greedy</h5>${gen(s.teacher?.greedy ?? null, noTeacher)}<h5>sampled</h5>${gen(s.teacher?.sampled ?? null, noTeacher)}</div>`,
      ...r.students.map((st, j) => `<div class="gen"><h4>${escapeHtml(st.name)}</h4><h5>greedy</h5>${gen(s.students[j]?.greedy ?? null, 'not generated')}<h5>sampled</h5>${gen(s.students[j]?.sampled ?? null, 'not generated')}</div>`),
    ];
    const ref = s.reference !== null ? `<div class="gen"><h4>the text that follows</h4><pre>${escapeHtml(s.reference)}</pre></div>` : '';
    return `<div class="sample"><h3>prompt ${i + 1}</h3><pre class="prompt">${escapeHtml(s.prompt)}</pre><div class="gens">${ref}${cells.join('')}</div></div>`;
  }).join('');
}

function gateSection(r: EvalReport): string {
  const g = r.gate;
  if (!g) return '';
  const lines = g.failures.map((f) => `<li class="bad">${escapeHtml(f)}</li>`).concat(g.notes.map((n) => `<li>${escapeHtml(n)}</li>`));
  return `<section><h2>CI gate: <span class="${g.passed ? 'good' : 'bad'}">${g.passed ? 'passed' : 'FAILED'}</span></h2>` +
    `<p>conditions: ${g.conditions.length ? escapeHtml(g.conditions.join(', ')) : 'none'}${g.baseline ? `; baseline ${escapeHtml(g.baseline)}, max regression ${((g.maxRegression ?? 0) * 100).toFixed(1)}%` : ''}</p>` +
    (lines.length ? `<ul>${lines.join('')}</ul>` : '') + '</section>';
}

const chart = (svg: string | null, caption: string, why: string) =>
  `<figure>${svg ?? `<p>${missing(why)}</p>`}<figcaption>${caption}</figcaption></figure>`;

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:24px auto;max-width:1320px;padding:0 16px}
.scroll{overflow-x:auto}table.summary{font-size:13px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:14px;margin:12px 0 4px}h4{font-size:12px;margin:0 0 4px;color:#555}
.meta{color:#666;font-size:12px}.verdict{font-size:15px;background:#f3f7fb;border-left:4px solid #4c78a8;padding:8px 12px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}thead th{white-space:normal;max-width:110px;vertical-align:bottom;overflow-wrap:anywhere}tbody th[scope=row]{white-space:normal;max-width:190px}
th[scope=row],table.kv td{text-align:left}table.kv th{text-align:left;font-weight:normal;color:#555;padding-right:16px}
thead th{background:#fafafa;font-weight:600}.tag{font-size:11px;background:#e6f0e6;color:#2d6a2d;border-radius:3px;padding:0 4px;font-weight:normal}
.missing{color:#a15c00;background:#fff4e0;border-radius:3px;padding:0 4px;font-size:12px}.bad{color:#b00020}.good{color:#2d6a2d}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}figcaption{font-size:12px;color:#555;max-width:520px}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:12px;background:#fafafa;padding:6px;border-radius:3px}
.gens{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:8px}.prompt{background:#f3f3f3}
.sample{margin-bottom:16px}.ci{color:#777;font-size:11px;display:block}.na{color:#777}.note{color:#555;font-size:12px;max-width:1100px}
.tag.tie{background:#eee;color:#555}.tag.base{background:#fdf0d5;color:#7a4b00}tr.teacher{background:#f5f8fc}.warnings{background:#fff8e6;border-left:4px solid #e0a000;padding:6px 12px 6px 28px}
h5{font-size:11px;margin:4px 0 2px;color:#777;font-weight:normal}.headline h3{margin-top:8px}dl dt{font-weight:600}dl dd{margin:0 0 6px 16px;color:#444}`;

export function renderHtml(r: EvalReport, charts: Charts, title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kd eval — ${escapeHtml(title)}</title><style>${CSS}</style></head>
<body>
<h1>kd eval — ${escapeHtml(title)}</h1>
<p class="meta">${escapeHtml(r.createdAt)} · kd ${escapeHtml(r.kdVersion)} · backend ${escapeHtml(r.backend)} · data ${escapeHtml(r.data.spec)} · validation: ${int(r.data.tokens)} tokens in ${int(r.data.sequences)} sequences of ${r.data.seqLen}, each scored once (${r.data.splitTokens === null ? 'synthetic data' : r.data.whole ? 'the whole split' : `of ${int(r.data.splitTokens)}`}; cap --max-tokens ${int(r.data.capTokens)})</p>
${warningsSection(r)}
<p class="verdict">${escapeHtml(r.summary.line)}</p>
${headlineSection(r)}
<section><h2>Quality</h2>${qualityTable(r)}</section>
<section><h2>Size and speed</h2>${speedTable(r)}</section>
${gateSection(r)}
<section><h2>Quality charts</h2>
${chart(charts.quality, 'Forward KL(teacher‖student) on the teacher top-k (lower is better) and top-1 agreement (higher is better).', 'no labelled positions')}
${chart(charts.size, 'Size vs quality: deployable weight bytes against top-1 agreement (colour: model, shape: kind).', 'no agreement figures')}
${chart(charts.reliability, 'Reliability diagram: per confidence bin, how often the student top-1 is the actual next token; the dashed diagonal is perfect calibration.', 'no targets')}
</section>
<section><h2>Training</h2>
${chart(charts.loss, 'Training loss (thin solid line) and validation loss (dashed, with points) in nats per token, from each run directory\u2019s train-log.jsonl; students without one (compressed copies) are not listed.', 'no train-log.jsonl next to any student checkpoint')}
</section>
<section><h2>Speed and cost</h2>
${chart(charts.latency, `Next-token latency on this machine with a KV cache, at ${r.students[0]?.latency.context ?? 0} and ${r.students[0]?.latencyLong.context ?? 0} tokens of context, greedy, one stream.`, 'no latency measured')}
${costSection(r)}
</section>
<section><h2>Teacher</h2>${teacherSection(r)}</section>
<section><h2>Sample generations</h2>${samplesSection(r)}</section>
<section><h2>Provenance</h2>${provenanceSection(r)}</section>
<section><h2>Definitions</h2><dl>
<dt>KL</dt><dd>Σₖ pₜ(k)·(log pₜ(k) − log pₛ(k)) + R·(log R − log Rₛ) at T = 1: the teacher's top-k log-probs as it gave them, plus one tail class for its mass outside them, R = 1 − Σₖ pₜ(k), against the student's Rₛ = 1 − Σₖ pₛ(k) (pₛ its full-vocabulary probability). The divergence kd train minimises by default; a lower bound on the full-vocabulary KL.</dd>
<dt>agreement</dt><dd>the student's argmax over the full vocabulary equals the teacher's top-1 id.</dd>
<dt>top-k recall</dt><dd>|student top-k ∩ teacher top-k| / k, k = the teacher's usable entries at the position.</dd>
<dt>perplexity</dt><dd>exp(mean −log pₛ(actual next token)); the teacher's uses its own log-prob where the actual token is in its top-k, and excludes misses (coverage = share of hits).</dd>
<dt>ECE</dt><dd>Σ_b (n_b/N)·|accuracy_b − confidence_b| over ${r.students[0]?.metrics.reliability.length ?? 10} equal-width bins of the student's top-1 probability, accuracy against the actual next token.</dd>
</dl></section>
</body></html>
`;
}
