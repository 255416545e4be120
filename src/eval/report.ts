/**
 * index.html: one self-contained file rendered from report.json and the charts' SVG. No script, no
 * external resource: CSS is inline, charts are inline SVG, and a Content-Security-Policy of
 * default-src 'none' makes any stray reference fail closed instead of reaching the network.
 * Every piece of user-controlled text (student names, paths, prompts, generations, errors) goes
 * through `escapeHtml`.
 */
import type { EvalReport, StudentReport } from '../schema/eval-report.js';
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

type Pick = { key: string; label: string; better: 'higher' | 'lower'; get: (s: StudentReport) => number | null; show: (s: StudentReport) => string };
const PICKS: Pick[] = [
  { key: 'quality', label: 'quality', better: 'higher', get: (s) => s.metrics.agreement, show: (s) => `agreement ${num(s.metrics.agreement)}, KL ${num(s.metrics.kl)}` },
  { key: 'size', label: 'size', better: 'lower', get: (s) => s.size.weightBytes, show: (s) => formatBytes(s.size.weightBytes) },
  { key: 'speed', label: 'speed', better: 'higher', get: (s) => s.latency.tokensPerSec, show: (s) => `${int(s.latency.tokensPerSec)} tok/s` },
  { key: 'calibration', label: 'calibration', better: 'lower', get: (s) => s.metrics.ece, show: (s) => `ECE ${num(s.metrics.ece)}` },
];

function best(students: StudentReport[], p: Pick): StudentReport | null {
  let b: StudentReport | null = null;
  for (const s of students) {
    const v = p.get(s);
    if (v === null || !Number.isFinite(v)) continue;
    const bv = b ? p.get(b)! : null;
    // quality ties (same agreement) go to the lower KL
    if (bv === null || (p.better === 'higher' ? v > bv : v < bv) || (p.key === 'quality' && v === bv && (s.metrics.kl ?? Infinity) < (b!.metrics.kl ?? Infinity))) b = s;
  }
  return b;
}

/** The one-line verdict: which student is best for what. */
export function summarize(students: StudentReport[]): EvalReport['summary'] {
  const bestBy: Record<string, string | null> = {};
  const parts: string[] = [];
  for (const p of PICKS) {
    const b = best(students, p);
    bestBy[p.key] = b?.name ?? null;
    if (b) parts.push(`best ${p.label}: ${b.name} (${p.show(b).replace(/<[^>]+>/g, '')})`);
  }
  return { line: parts.length ? parts.join(' · ') : 'no student could be scored', best: bestBy };
}

function summaryTable(r: EvalReport): string {
  const cols: [string, (s: StudentReport) => string][] = [
    ['kind', (s) => escapeHtml(s.kind)],
    ['KL ↓', (s) => num(s.metrics.kl, 4)],
    ['agreement ↑', (s) => num(s.metrics.agreement)],
    ['top-k recall ↑', (s) => num(s.metrics.recall)],
    ['perplexity ↓', (s) => num(s.metrics.ppl, 2, 'no targets')],
    ['accuracy ↑', (s) => num(s.metrics.accuracy)],
    ['ECE ↓', (s) => num(s.metrics.ece)],
    ['p50 / p95 ms', (s) => `${num(s.latency.p50Ms, 2)} / ${num(s.latency.p95Ms, 2)}`],
    ['tokens/s', (s) => int(s.latency.tokensPerSec)],
    ['params', (s) => int(s.size.params)],
    ['weights', (s) => formatBytes(s.size.weightBytes)],
    ['on disk', (s) => formatBytes(s.size.bytesOnDisk)],
    ['sparsity', (s) => `${(s.size.sparsity * 100).toFixed(1)}%`],
    ['bits', (s) => s.size.bits.toFixed(1)],
  ];
  const wins = r.summary.best;
  const rows = r.students.map((s) => {
    const tags = Object.entries(wins).filter(([, n]) => n === s.name).map(([k]) => `<span class="tag">${escapeHtml(k)}</span>`).join(' ');
    return `<tr><th scope="row">${escapeHtml(s.name)} ${tags}</th>${cols.map(([, f]) => `<td>${f(s)}</td>`).join('')}</tr>`;
  });
  return `<div class="scroll"><table class="summary"><thead><tr><th>student</th>${cols.map(([h]) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
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
    `<td>${num(s.cost.cpuSecondsPer1MTokens, 0)}</td><td>${s.cost.usdPer1MTokens === null ? missing('pass --cpu-usd-per-hour') : `$${s.cost.usdPer1MTokens.toFixed(4)}`}</td>` +
    `<td>${p ? `$${p.output.toFixed(2)}` : missing('unknown teacher price')}</td></tr>`);
  return `<table class="summary"><thead><tr><th>student</th><th>FLOPs/token</th><th>CPU-seconds per 1M tokens</th><th>student $ per 1M tokens</th><th>teacher $ per 1M output tokens</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function samplesSection(r: EvalReport): string {
  if (!r.samples.length) return `<p>${missing('no prompts')}</p>`;
  return r.samples.map((s, i) => {
    const teacher = s.teacher === null ? missing(r.teacher.live && r.teacher.live.status !== 'ok' ? `teacher ${r.teacher.live.status}` : 'no teacher text for this prompt') : `<pre>${escapeHtml(s.teacher)}</pre>`;
    const cells = [`<div class="gen"><h4>teacher${s.teacherSource ? ` (${s.teacherSource})` : ''}</h4>${teacher}</div>`,
      ...r.students.map((st, j) => `<div class="gen"><h4>${escapeHtml(st.name)}</h4><pre>${escapeHtml(s.students[j] ?? '')}</pre></div>`)];
    return `<div class="sample"><h3>prompt ${i + 1}</h3><pre class="prompt">${escapeHtml(s.prompt)}</pre><div class="gens">${cells.join('')}</div></div>`;
  }).join('');
}

/** Bits per byte on each --text: one row per model, one column per text (lower is better). */
function textsSection(r: EvalReport): string {
  if (!r.texts.length) return '';
  const head = r.texts.map((t) => `<th>${escapeHtml(t.text)}<br><small>${int(t.bytes)} bytes</small></th>`).join('');
  const row = (name: string, get: (t: EvalReport['texts'][number]) => number | null) =>
    `<tr><th scope="row">${escapeHtml(name)}</th>${r.texts.map((t) => `<td>${num(get(t), 4)}</td>`).join('')}</tr>`;
  const src = r.texts.find((t) => t.teacherSource)?.teacherSource;
  const note = r.texts.find((t) => t.teacherNote)?.teacherNote;
  const rows = [
    ...(src ? [row(`teacher (${src})`, (t) => t.teacher?.bpb ?? null)] : []),
    ...(note && !src ? [`<tr><th scope="row">teacher</th><td colspan="${r.texts.length}">${missing(note)}</td></tr>`] : []),
    ...r.students.map((s, i) => row(s.name, (t) => t.students[i]?.bpb ?? null)),
  ];
  return `<section><h2>Bits per byte on held-out text</h2><p>Each model scores the text with its own tokenizer: total −log₂ p of its tokens over their UTF-8 bytes (lower is better; comparable across vocabularies).</p>` +
    `<div class="scroll"><table class="summary"><thead><tr><th>model</th>${head}</tr></thead><tbody>${rows.join('')}</tbody></table></div></section>`;
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
table{border-collapse:collapse;margin:8px 0}td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th[scope=row],table.kv td{text-align:left}table.kv th{text-align:left;font-weight:normal;color:#555;padding-right:16px}
thead th{background:#fafafa;font-weight:600}.tag{font-size:11px;background:#e6f0e6;color:#2d6a2d;border-radius:3px;padding:0 4px;font-weight:normal}
.missing{color:#a15c00;background:#fff4e0;border-radius:3px;padding:0 4px;font-size:12px}.bad{color:#b00020}.good{color:#2d6a2d}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}figcaption{font-size:12px;color:#555;max-width:520px}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:12px;background:#fafafa;padding:6px;border-radius:3px}
.gens{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:8px}.prompt{background:#f3f3f3}
.sample{margin-bottom:16px}dl dt{font-weight:600}dl dd{margin:0 0 6px 16px;color:#444}`;

export function renderHtml(r: EvalReport, charts: Charts, title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kd eval — ${escapeHtml(title)}</title><style>${CSS}</style></head>
<body>
<h1>kd eval — ${escapeHtml(title)}</h1>
<p class="meta">${escapeHtml(r.createdAt)} · kd ${escapeHtml(r.kdVersion)} · backend ${escapeHtml(r.backend)} · data ${escapeHtml(r.data.spec)} · ${r.data.batches} validation batches of ${r.data.batchSize}×${r.data.seqLen} tokens</p>
<p class="verdict">${escapeHtml(r.summary.line)}</p>
${summaryTable(r)}
${textsSection(r)}
${gateSection(r)}
<section><h2>Quality</h2>
${chart(charts.quality, 'Forward KL(teacher‖student) on the teacher top-k (lower is better) and top-1 agreement (higher is better).', 'no labelled positions')}
${chart(charts.size, 'Size vs quality: stored weight bytes against top-1 agreement.', 'no agreement figures')}
${chart(charts.reliability, 'Reliability diagram: per confidence bin, how often the student top-1 is the actual next token; the dashed diagonal is perfect calibration.', 'no targets')}
</section>
<section><h2>Training</h2>
${chart(charts.loss, 'Training loss (solid) and validation loss (dashed) from each run directory\u2019s train-log.jsonl.', 'no train-log.jsonl next to any student checkpoint')}
</section>
<section><h2>Speed and cost</h2>
${chart(charts.latency, `Next-token latency on this machine: each step runs the last ${r.students[0]?.latency.context ?? 0} tokens of context, greedy, one stream.`, 'no latency measured')}
${costSection(r)}
</section>
<section><h2>Teacher</h2>${teacherSection(r)}</section>
<section><h2>Sample generations</h2>${samplesSection(r)}</section>
<section><h2>Provenance</h2>${provenanceSection(r)}</section>
<section><h2>Definitions</h2><dl>
<dt>KL</dt><dd>Σₖ pₜ(k)·(log pₜ(k) − log pₛ(k)) at T = 1 over the teacher's top-k renormalised; pₛ is the student's full-vocabulary probability (kd-kernel's forward KL).</dd>
<dt>agreement</dt><dd>the student's argmax over the full vocabulary equals the teacher's top-1 id.</dd>
<dt>top-k recall</dt><dd>|student top-k ∩ teacher top-k| / k, k = the teacher's usable entries at the position.</dd>
<dt>perplexity</dt><dd>exp(mean −log pₛ(actual next token)); the teacher's uses its own log-prob where the actual token is in its top-k, and excludes misses (coverage = share of hits).</dd>
<dt>ECE</dt><dd>Σ_b (n_b/N)·|accuracy_b − confidence_b| over ${r.students[0]?.metrics.reliability.length ?? 10} equal-width bins of the student's top-1 probability, accuracy against the actual next token.</dd>
</dl></section>
</body></html>
`;
}
