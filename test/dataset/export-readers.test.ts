/**
 * The README's "Reading kd's files" recipes, as written: its `kd dataset export` lines run in a folder
 * laid out like the demo's (datasets/demo/data and datasets/demo/raw from a fixture), its SQL block runs
 * in DuckDB (@duckdb/node-api, the same engine as the duckdb CLI and Python package) and gives the
 * dataset's own counts, and every file its Python block opens exists after the export. (The Python
 * block itself needs polars/pyarrow, which CI does not have; it was run by hand, see the README.)
 */
import { DuckDBInstance } from '@duckdb/node-api';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDataset } from '../../src/dataset/build.js';
import { shellWords } from '../helpers/command-lines.js';
import { ROOT, kd } from '../helpers/kd.js';
import { builtDataset } from './fixtures.js';

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('#### Reading kd\'s files'), readme.indexOf('### kd train'));
const block = (lang: string) => [...section.matchAll(new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```', 'gm'))].map((m) => m[1]);

describe('the README\'s recipes for reading exports', () => {
  const fx = builtDataset({ texts: 16 });
  const built = buildDataset({ from: fx.raw, out: fx.out, vocabSize: 300, valFraction: 0.25 });
  const cwd = path.join(fx.root, 'clone');
  fs.mkdirSync(path.join(cwd, 'datasets/demo'), { recursive: true });
  fs.cpSync(fx.out, path.join(cwd, 'datasets/demo/data'), { recursive: true });
  fs.cpSync(fx.raw, path.join(cwd, 'datasets/demo/raw'), { recursive: true });

  it('its kd dataset export lines run as written', () => {
    const lines = block('bash').flatMap((b) => b.split('\n')).map((l) => l.replace(/(^|\s)#\s.*$/, '').trim()).filter((l) => l.startsWith('kd dataset export'));
    expect(lines.length).toBe(3);
    for (const line of lines) {
      const r = kd(shellWords(line).slice(1), { cwd });
      expect(r.status, `${line}: ${r.stderr}`).toBe(0);
    }
    expect(fs.readdirSync(path.join(cwd, 'datasets/demo/parquet')).sort()).toEqual(['export.json', 'tokenizer.json', 'train-00000.parquet', 'val-00000.parquet']);
    expect(fs.existsSync(path.join(cwd, 'datasets/demo/arrow/train-00000.arrow'))).toBe(true);
    expect(fs.readdirSync(path.join(cwd, 'datasets/demo/raw-parquet')).filter((f) => f.endsWith('.parquet')).length).toBe(fs.readdirSync(fx.raw).filter((f) => f.endsWith('.arrows')).length);
  });

  it('its SQL runs in DuckDB and counts what kd dataset build wrote', async () => {
    const sql = block('sql');
    expect(sql.length).toBe(1);
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    try {
      const rows = (await c.runAndReadAll(sql[0].replaceAll("'datasets/", `'${cwd}/datasets/`))).getRowObjectsJson();
      expect(rows).toHaveLength(1);
      const r = rows[0] as Record<string, unknown>;
      expect(Number(r.sequences)).toBe(built.splits.train.sequences);
      expect(Number(r.tokens)).toBe(built.splits.train.tokens);
      expect(Number(r.labelled)).toBe(built.splits.train.labelled);
      expect(Number(r.mean_best_p)).toBeGreaterThan(0);
      expect(Number(r.mean_best_p)).toBeLessThanOrEqual(1);
      // the raw export's bytes are lists DuckDB reads, not blobs
      const raw = (await c.runAndReadAll(`SELECT typeof(token_bytes) AS t FROM read_parquet('${cwd}/datasets/demo/raw-parquet/raw-*.parquet') LIMIT 1`)).getRowObjectsJson();
      expect(raw[0].t).toBe('UTINYINT[][]');
    } finally {
      c.closeSync();
    }
  });

  it('every file its Python block opens exists after the export', () => {
    const py = block('python').join('\n');
    const files = [...py.matchAll(/"(datasets\/[^"]+)"/g)].map((m) => m[1]);
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const f of files) {
      const dir = path.join(cwd, path.dirname(f));
      const re = new RegExp('^' + path.basename(f).replace(/[.]/g, '\\.').replace(/\*/g, '.*') + '$');
      expect(fs.existsSync(dir) && fs.readdirSync(dir).some((n) => re.test(n)), f).toBe(true);
    }
  });
});
