/**
 * The options of `kd dataset build | inspect | import | merge | export`, once each: their defaults, and
 * the specs their flags, types and pipeline `with:` keys come from. Light on purpose: --help loads it.
 */
import { type OptionsOf, type OptionsSpec, flag } from '../core/options.js';
import { DATASET_FORMAT_VERSION, type DatasetVersion } from '../schema/dataset-version.js';

export const BUILD_DEFAULTS = { vocabSize: 8192, valFraction: 0.05, seed: 0, shardBytes: 64 * 1024 * 1024, formatVersion: DATASET_FORMAT_VERSION as DatasetVersion };
/** alternatives kept per position of imported responses (the APIs' maximum) */
export const IMPORT_DEFAULTS = { topK: 20 };
export const EXPORT_FORMATS = ['parquet', 'arrow-float32'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export const EXPORT_DEFAULTS = { format: 'parquet' as ExportFormat };

const json = flag('print the summary as JSON');

export const BUILD_OPTIONS = {
  from: { type: 'string', required: true, describe: 'raw directory (datasets/NAME/raw), or a .jsonl/.csv of saved chat-completion responses' },
  out: { type: 'string', required: true, describe: 'dataset directory (datasets/NAME)' },
  vocabSize: { type: 'number', describe: 'student vocabulary: 256 bytes + the most useful teacher tokens', default: BUILD_DEFAULTS.vocabSize },
  valFraction: { type: 'number', describe: 'share of inputs held out for validation', default: BUILD_DEFAULTS.valFraction },
  seed: { type: 'number', describe: 'seed of the train/val split', default: BUILD_DEFAULTS.seed },
  shardMb: { type: 'number', describe: 'bound on each shard\'s size in MiB', default: BUILD_DEFAULTS.shardBytes / (1024 * 1024) },
  formatVersion: { type: 'number', describe: 'dataset format: 2 = 8-bit log-probs and bit-packed ids (~3 bytes per top-k entry), 1 = float16 + uint16 (4.5 bytes; for kd before issue 17)', default: BUILD_DEFAULTS.formatVersion },
  text: { type: 'string', describe: 'a .jsonl/.csv of score-mode texts (as given to kd collect --mode score): rows no raw record has (not sent to the teacher, e.g. outside --budget-tokens) are added with their hard targets only' },
  textColumn: { type: 'string', describe: 'CSV column / JSONL field of --text with the text (as kd collect --column)', default: 'text' },
  idColumn: { type: 'string', describe: 'column/field of --text with row ids (as kd collect --id-column)', defaultText: 'JSONL "id" if present, else the row number' },
  tokenizer: { type: 'string', describe: 'use this student tokenizer (a tokenizer.json, e.g. a dataset\'s, or a checkpoint) instead of deriving one: new data for an existing student' },
  workers: { type: 'number', describe: 'worker threads converting raw shards (0 = this thread)', defaultText: 'one per core, at most 4, when the raw data is ≥ 32 MiB in ≥ 2 shards' },
  force: flag('replace a dataset already in --out'),
  json,
} as const satisfies OptionsSpec;

export const INSPECT_OPTIONS = {
  dir: { type: 'string', positional: true, required: true, describe: 'dataset directory' },
  json: flag('print JSON'),
} as const satisfies OptionsSpec;

export const IMPORT_OPTIONS = {
  from: { type: 'string', required: true, describe: '.jsonl (completions, Batch API output lines, or {messages, response}) or .csv with a "response" column' },
  out: { type: 'string', required: true, describe: 'raw directory to write (datasets/NAME/raw)' },
  topK: { type: 'number', describe: 'alternatives kept per position', default: IMPORT_DEFAULTS.topK },
  force: flag('replace raw shards already in --out'),
  json,
} as const satisfies OptionsSpec;

export const MERGE_OPTIONS = {
  from: { type: 'string', array: true, required: true, describe: 'raw directories: repeat --from, or give several (a shell glob); on a duplicate request the first one wins' },
  out: { type: 'string', required: true, describe: 'raw directory to write (datasets/NAME/raw)' },
  force: flag('replace a non-empty --out'),
  json,
} as const satisfies OptionsSpec;

export const EXPORT_OPTIONS = {
  from: { type: 'string', required: true, describe: 'dataset directory (kd dataset build) or raw directory (kd collect)' },
  out: { type: 'string', required: true, describe: 'directory to write: one file per source shard (train-00000.parquet, …), tokenizer.json, export.json' },
  format: { type: 'string', describe: 'parquet (zstd; polars, DuckDB, pandas, Spark) or arrow-float32 (Arrow IPC file; polars read_ipc, pyarrow, Rust arrow-ipc)', default: EXPORT_DEFAULTS.format },
  force: flag('replace an export already in --out'),
  json,
} as const satisfies OptionsSpec;

export type DatasetBuildArgs = OptionsOf<typeof BUILD_OPTIONS>;
export type DatasetImportArgs = OptionsOf<typeof IMPORT_OPTIONS>;
export type DatasetMergeArgs = OptionsOf<typeof MERGE_OPTIONS>;
