/**
 * `kd dataset build | inspect | import | merge | export`: thin shells over src/dataset. Handlers import the stage
 * lazily so `--help` loads neither Arrow nor the tokenizer.
 */
import type { Argv, CommandModule } from 'yargs';
import { BUILD_OPTIONS, type DatasetBuildArgs, type DatasetImportArgs, type DatasetMergeArgs, EXPORT_DEFAULTS, EXPORT_OPTIONS, IMPORT_OPTIONS, INSPECT_OPTIONS, MERGE_OPTIONS } from '../dataset/options.js';
import { bytesOfMiB } from '../core/options.js';
import { summaryCommand } from './command.js';
import type { BuildOptions, BuildSummary } from '../dataset/build.js';
import type { ExportSummary } from '../dataset/export.js';
import type { ImportOptions, ImportSummary } from '../dataset/import.js';
import type { Inspection } from '../dataset/inspect.js';
import type { MergeOptions, MergeSummary } from '../dataset/merge.js';
import { KdError } from '../core/errors.js';
import { lockingOut } from '../core/lock.js';

/** argv → build options (pure). */
export function buildOptionsFromArgs(a: DatasetBuildArgs): BuildOptions & { workers?: number } {
  if (a.shardMb !== undefined && !(a.shardMb > 0)) throw new KdError('bad-option', `--shard-mb must be > 0, got ${a.shardMb}`);
  if (a.formatVersion !== undefined && a.formatVersion !== 1 && a.formatVersion !== 2) throw new KdError('bad-option', `--format-version must be 1 or 2, got ${a.formatVersion}`);
  if (a.workers !== undefined && !(Number.isInteger(a.workers) && a.workers >= 0)) throw new KdError('bad-option', `--workers must be an integer ≥ 0, got ${a.workers}`);
  return {
    from: a.from, out: a.out, vocabSize: a.vocabSize, valFraction: a.valFraction, seed: a.seed,
    shardBytes: bytesOfMiB(a.shardMb), force: a.force,
    formatVersion: a.formatVersion as 1 | 2 | undefined, workers: a.workers,
  };
}

export function importOptionsFromArgs(a: DatasetImportArgs): ImportOptions {
  if (a.topK !== undefined && (!Number.isInteger(a.topK) || a.topK < 1)) throw new KdError('bad-option', `--top-k must be a positive integer, got ${a.topK}`);
  return { from: a.from, out: a.out, topK: a.topK, force: a.force };
}

/** argv → merge options (pure); yargs gives a string for a single --from. */
export function mergeOptionsFromArgs(a: DatasetMergeArgs): MergeOptions {
  return { from: ([] as string[]).concat(a.from ?? []), out: a.out, force: a.force };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const int = (x: number) => x.toLocaleString('en-US');

export function formatBuild(s: BuildSummary): string {
  const lines = [`kd dataset build → ${s.out}`,
    `tokenizer: ${s.vocabSize} ids (256 bytes + ${s.vocabSize - 256} teacher tokens); teacher top-k mass kept one-to-one: ${pct(s.massKept)}`];
  if (s.counts.textSequences) lines.push(`text: ${int(s.counts.textSequences)} sequences the teacher did not score, with hard targets only`);
  for (const [name, x] of Object.entries(s.splits)) {
    lines.push(`${name.padEnd(5)} ${int(x.sequences)} sequences, ${int(x.tokens)} tokens, ${int(x.labelled)} labelled, ${x.shards} shard${x.shards === 1 ? '' : 's'}, ${(x.bytes / 1e6).toFixed(2)} MB`);
  }
  lines.push(`format v${s.formatVersion}: ${s.bytesPerLabelled.toFixed(1)} bytes per labelled token at top-k ${s.topK} (target ≤ ${s.targetBytesPerLabelled})${s.bytesPerLabelled > s.targetBytesPerLabelled ? ' — OVER TARGET' : ''}, ${s.bytesPerEntry.toFixed(2)} bytes per top-k entry; ${s.seconds.toFixed(1)} s (${int(Math.round(s.counts.labelled / Math.max(s.seconds, 1e-9)))} labelled tokens/s)`);
  if (s.counts.bytesFromString > 0) lines.push(`note: ${int(s.counts.bytesFromString)} teacher tokens had no bytes; their UTF-8 string was used`);
  if (s.counts.labelled === 0) lines.push('warning: no position has a teacher log-prob (collected with --top-k 0, or responses saved without logprobs): kd train can only use the hard targets');
  return lines.join('\n');
}

export function formatMerge(s: MergeSummary): string {
  const c = s.counts;
  const lines = [`kd dataset merge → ${s.out}: ${int(c.records)} records (${int(c.requests)} requests) in ${s.shards.length} shard${s.shards.length === 1 ? '' : 's'} from ${s.sources.length} source${s.sources.length === 1 ? '' : 's'}`,
    `duplicates dropped: ${int(c.duplicate_requests)} request${c.duplicate_requests === 1 ? '' : 's'} (${int(c.duplicate_records)} records), ${int(c.duplicate_rejects)} reject line${c.duplicate_rejects === 1 ? '' : 's'}; ${int(c.rejects)} rejects kept`,
    `tokens ${int(s.tokens.prompt)} prompt + ${int(s.tokens.completion)} completion; $${s.cost_usd.toFixed(4)} spent on the sources; teacher ${s.teacher.models.join(', ') || 'unknown'}`];
  for (const src of s.sources) {
    const m = src.manifest;
    lines.push(`  ${src.dir}${m?.shard ? ` (shard ${m.shard.index}/${m.shard.count})` : ''}: ${int(src.records)} records kept, ${int(src.duplicate_records)} duplicates, ${int(src.rejects)} rejects${m?.status ? `, ${m.status}` : ''}`);
  }
  for (const n of s.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

export function formatInspection(r: Inspection): string {
  const lines = [`${r.dir}: ${r.format} v${r.version}, built ${r.createdAt}, teacher ${r.teacherModels.join(', ') || 'unknown'}`,
    `tokenizer ${r.tokenizer.hash.slice(0, 12)}…, ${r.tokenizer.vocabSize} ids, top-k ${r.topK}, ${r.bytesPerLabelled.toFixed(1)} bytes per labelled token (target ≤ ${r.targetBytesPerLabelled}), ${r.bytesPerEntry.toFixed(2)} bytes per top-k entry`,
    'split  sequences      tokens    labelled  entropy  mass kept  bytes/token  bytes/labelled  bytes/entry'];
  for (const [name, s] of Object.entries(r.splits)) {
    lines.push(`${name.padEnd(5)} ${int(s.sequences).padStart(10)} ${int(s.tokens).padStart(11)} ${int(s.labelled).padStart(11)} ${s.meanEntropy.toFixed(3).padStart(8)} ${pct(s.massKept).padStart(10)} ${s.bytesPerToken.toFixed(1).padStart(12)} ${s.bytesPerLabelled.toFixed(1).padStart(15)} ${s.bytesPerEntry.toFixed(2).padStart(12)}`);
  }
  return lines.join('\n');
}

export function formatImport(s: ImportSummary, out: string): string {
  return [`kd dataset import: ${s.records} records from ${s.lines} lines of ${s.file} → ${out} (${s.shards.length} shard${s.shards.length === 1 ? '' : 's'})`,
    ...(s.rejected ? [`${s.rejected} lines rejected (see rejects.jsonl), e.g. line ${s.rejects[0].line}: ${s.rejects[0].reason}`] : [])].join('\n');
}

export function formatExport(s: ExportSummary): string {
  const rows = s.files.reduce((n, f) => n + f.rows, 0), bytes = s.files.reduce((n, f) => n + f.bytes, 0);
  const lines = [`kd dataset export → ${s.out}: ${s.format} copy of the ${s.kind === 'dataset' ? 'dataset' : 'raw directory'} ${s.from}, ${int(rows)} rows in ${s.files.length} file${s.files.length === 1 ? '' : 's'}, ${(bytes / 1e6).toFixed(2)} MB; ${s.seconds.toFixed(1)} s`];
  for (const f of s.files) lines.push(`  ${f.file}  ${int(f.rows)} rows  ${(f.bytes / 1e6).toFixed(2)} MB`);
  lines.push(`columns: ${s.columns.map((c) => `${c.name} ${c.type}`).join(', ')}`);
  return lines.join('\n');
}

/** A stage that reports (done, total), with a bar on stderr when it is a terminal (not with --json); the bar is gone before the summary. */
async function withBar<T>(format: string, json: boolean | undefined, work: (onProgress: (done: number, total: number) => void) => T | Promise<T>): Promise<T> {
  const { startProgress } = await import('../core/progress.js');
  let bar: ReturnType<typeof startProgress> | undefined;
  try {
    return await work((done, total) => {
      bar ??= startProgress(total, format, !json && Boolean(process.stderr.isTTY));
      bar.update(done, {});
    });
  } finally {
    bar?.stop();
  }
}

/** A tokenizer.json, or the tokenizer inside a checkpoint (its directory or .kdc file). */
async function readStudentTokenizer(p: string): Promise<import('../tokenizer/tokenizer.js').Tokenizer> {
  const fs = await import('node:fs');
  if (!p.endsWith('.kdc') && !fs.existsSync(p)) throw new KdError('missing-file', `${p}: no such tokenizer file or checkpoint`);
  if (!p.endsWith('.kdc') && !fs.statSync(p).isDirectory()) return (await import('../tokenizer/tokenizer.js')).readTokenizerFile(p);
  const { loadCheckpoint } = await import('../schema/checkpoint.js');
  const { tokenizerOf } = await import('../model/load.js');
  const { header, file } = loadCheckpoint(p);
  const tok = tokenizerOf(header, file);
  if (!tok) throw new KdError('bad-tokenizer', `${file}: the checkpoint holds no tokenizer`);
  return tok;
}

/** The rows of a score-mode input file (kd collect's reader: the same ids); empty texts are skipped. */
async function readTexts(file: string, column: string | undefined, idColumn: string | undefined): Promise<{ id: string; text: string }[]> {
  const { readInput } = await import('../collect/index.js');
  const rows: { id: string; text: string }[] = [];
  for await (const r of readInput({ file, mode: 'score', column, idColumn })) if (r.text !== undefined && !r.reject) rows.push({ id: r.id, text: r.text });
  return rows;
}

export const buildCommand = summaryCommand({
  command: 'build',
  describe: 'Build a soft-label dataset (student tokenizer, train/val Arrow shards, manifest) from raw teacher output',
  options: BUILD_OPTIONS,
  examples: [
    ['$0 dataset build --from datasets/sotu/raw --out datasets/sotu --vocab-size 4096', ''],
    ['$0 dataset build --from datasets/sotu/raw --out datasets/sotu --text texts.jsonl', 'also the texts the teacher was not asked about (--budget-tokens), with hard targets only'],
  ],
  run: async (argv) => {
    const o = buildOptionsFromArgs(argv);
    if (argv.tokenizer) o.tokenizer = await readStudentTokenizer(argv.tokenizer);
    if (argv.text) o.text = await readTexts(argv.text, argv.textColumn, argv.idColumn);
    const { buildDatasetParallel } = await import('../dataset/build.js');
    // two passes over the raw shards; the total is known once the source is resolved
    return withBar('build |{bar}| {value}/{total} raw shards (2 passes) | ETA {eta_formatted}', argv.json, (onProgress) => buildDatasetParallel({ ...o, onProgress }));
  },
  format: formatBuild,
});

export const inspectCommand = summaryCommand({
  command: 'inspect <dir>',
  describe: 'Per split: sequences, tokens, labelled positions, teacher entropy, mass kept, bytes per token (checks every shard)',
  options: INSPECT_OPTIONS,
  examples: [
    ['$0 dataset inspect datasets/demo/data', 'per split: sequences, tokens, labelled positions, teacher entropy'],
    ['$0 dataset inspect datasets/demo/data --json', 'the same as one JSON object'],
  ],
  run: async (argv) => (await import('../dataset/inspect.js')).inspectDataset(argv.dir),
  format: formatInspection,
});

export const importCommand = summaryCommand({
  command: 'import',
  describe: 'Turn saved OpenAI chat-completion responses (JSONL or CSV, with logprobs) into raw shards',
  options: IMPORT_OPTIONS,
  examples: [
    ['$0 dataset import --from batch-output.jsonl --out datasets/mine/raw', 'OpenAI Batch API output (chat completions with logprobs) as raw shards'],
    ['$0 dataset build --from datasets/mine/raw --out datasets/mine', 'then the dataset, as from kd collect'],
  ],
  run: async (argv) => (await import('../dataset/import.js')).importResponses(importOptionsFromArgs(argv)),
  format: (s, argv) => formatImport(s, argv.out),
});

export const mergeCommand = summaryCommand({
  command: 'merge',
  describe: 'Merge raw directories (the shards of kd collect --shard i/n) into one for kd dataset build, dropping duplicate requests',
  options: MERGE_OPTIONS,
  examples: [
    ['$0 dataset merge --from datasets/sotu/raw-shard-*-of-8 --out datasets/sotu/raw', ''],
  ],
  run: async (argv) => (await import('../dataset/merge.js')).mergeRaw(mergeOptionsFromArgs(argv)),
  format: formatMerge,
});

export const exportDatasetCommand = summaryCommand({
  command: 'export',
  describe: 'Write a plain-typed copy of a dataset or raw directory for polars, DuckDB, pandas/pyarrow, Rust arrow: float32 log-probs, int32 ids, bytes as uint8 lists',
  options: EXPORT_OPTIONS,
  examples: [
    ['$0 dataset export --from datasets/demo/data --out datasets/demo/parquet', 'Parquet files for polars.read_parquet / DuckDB read_parquet'],
    ['$0 dataset export --from datasets/demo/raw --out datasets/demo/raw-arrow --format arrow-float32', 'the raw teacher output as Arrow IPC files, bytes as uint8 lists'],
  ],
  run: async (argv) => {
    const { exportDataset } = await import('../dataset/export.js');
    return withBar('export |{bar}| {value}/{total} shards | ETA {eta_formatted}', argv.json, (onProgress) =>
      exportDataset({ from: argv.from, out: argv.out, format: (argv.format ?? EXPORT_DEFAULTS.format) as never, force: argv.force, onProgress }));
  },
  format: formatExport,
});

export const datasetCommand: CommandModule<object, object> = {
  command: 'dataset <command>',
  describe: 'Build, inspect, import, merge and export soft-label datasets',
  builder: (y: Argv) => y.command(lockingOut('kd dataset build', buildCommand)).command(inspectCommand).command(lockingOut('kd dataset import', importCommand)).command(lockingOut('kd dataset merge', mergeCommand)).command(lockingOut('kd dataset export', exportDatasetCommand)).demandCommand(1, 'Give a dataset command: build, inspect, import, merge or export.'),
  handler: () => {},
};
