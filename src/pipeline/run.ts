/**
 * `kd run pipelines/NAME.yaml`: plan, then run (DVC's reproduce). Every stage is validated before
 * anything runs; a stage whose output manifest (kd-stage.json) carries the same key — a hash of its
 * command, parameters, inputs' contents and kd version — is skipped as up to date; an interrupted
 * stage resumes; `--force` reruns. Each stage runs as a child `kd` process (see stages.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeJsonAtomic } from '../core/atomic.js';
import { KdError } from '../core/errors.js';
import { kebab } from '../core/names.js';
import type { StageKind } from '../schema/pipeline.js';
import { gitCommit } from '../core/provenance.js';
import { tsxNodeArgs } from '../core/tsx.js';
import { KD_VERSION } from '../core/version.js';
import { EXIT_WITH_PARENT_ENV, PROGRESS_FD_ENV } from '../core/env.js';
import { type RelayTarget, relayProgress } from './progress-relay.js';
import { hashInput, inputPaths, outputFingerprint, sha256 } from './hash.js';
import { type LoadedPipeline, at, loadPipeline } from './load.js';
import { STAGES, flagValues, toArgv, withProblem } from './stages.js';

export interface RunOptions {
  from?: string;
  to?: string;
  force?: boolean;
  dryRun?: boolean;
  /** progress lines (stderr by default) */
  log?: (line: string) => void;
  /** where the running stage's own progress line is shown (stderr by default; see progress-relay.ts) */
  progress?: RelayTarget;
  /** on a target that is not a terminal, one progress line every this many ms (default 10 s) */
  progressEveryMs?: number;
  /**
   * Checks a stage's command line against that command's own flags before anything runs; throws with
   * the message a user would get. The CLI passes its yargs check (src/cli/validate.ts).
   */
  checkArgv: (command: string[], argv: string[]) => Promise<void>;
  /**
   * How interrupts reach the run: called once with the handler, returns the unsubscribe. The CLI wires
   * SIGINT/SIGTERM to it; the first stops the run cleanly, a second kills the children at once.
   */
  interrupts?: (onInterrupt: (sig: NodeJS.Signals) => void) => () => void;
}

export interface StageReport {
  name: string;
  stage: StageKind;
  status: 'ran' | 'skipped' | 'failed' | 'planned';
  reason: string;
  seconds: number;
  summary?: Record<string, unknown>;
  error?: string;
}

export interface PipelineReport {
  pipeline: string;
  file: string;
  ok: boolean;
  /** the signal that stopped the run (SIGINT, SIGTERM), if one did */
  interrupted?: NodeJS.Signals;
  seconds: number;
  stages: StageReport[];
}

interface PlannedStage {
  index: number;
  name: string;
  kind: StageKind;
  /** argv with ${services.*} placeholders left in: what the key is made of */
  template: string[];
  out: string;
}

const SERVICE_REF = /\$\{services\.([A-Za-z0-9_-]+)\.url\}/g;

/** The kd entry point for child processes: dist/cli.js, or src/cli.ts through tsx when running from source. */
function kdCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  const root = path.resolve(path.dirname(here), '..', '..');
  return here.endsWith('.ts') ? [...tsxNodeArgs(), path.join(root, 'src', 'cli.ts')] : [path.join(root, 'dist', 'cli.js')];
}

function manifestPath(p: PlannedStage): string {
  return STAGES[p.kind].outIsFile ? `${p.out}.kd-stage.json` : path.join(p.out, 'kd-stage.json');
}

/** The earlier stage (of `rerun`) whose output is one of this stage's inputs, if any. */
function upstreamOf(p: PlannedStage, rerun: PlannedStage[]): PlannedStage | undefined {
  const inside = (f: string, out: string) => { const rel = path.relative(path.resolve(out), path.resolve(f)); return !rel.startsWith('..') && !path.isAbsolute(rel); };
  const inputs = STAGES[p.kind].inputs.flatMap((flag) => flagValues(p.template, flag)).flatMap(inputPaths);
  return rerun.find((u) => inputs.some((f) => inside(f, u.out)));
}

function stageKey(p: PlannedStage): { key: string; inputs: Record<string, string> } {
  const inputs: Record<string, string> = {};
  for (const flag of STAGES[p.kind].inputs) for (const v of flagValues(p.template, flag)) inputs[`${flag}=${v}`] = hashInput(v);
  return { key: sha256(JSON.stringify({ kind: p.kind, argv: p.template, inputs, kd: KD_VERSION })), inputs };
}

async function plan(lp: LoadedPipeline, checkArgv: RunOptions['checkArgv']): Promise<PlannedStage[]> {
  const { pipeline, file } = lp;
  const seen = new Set<string>();
  const planned: PlannedStage[] = [];
  for (const [i, s] of pipeline.stages.entries()) {
    const name = s.name ?? s.stage;
    if (seen.has(name)) throw new KdError('bad-pipeline', `${at(file, lp.lineOf(['stages', i]))}: stages[${i}]: a second stage named "${name}"; give each a distinct name`);
    seen.add(name);
    const problem = withProblem(s.stage, s.with);
    if (problem) throw new KdError('bad-pipeline', `${at(file, lp.lineOf(['stages', i, 'with', problem.key]))}: stages[${i}] (${name}, kd ${STAGES[s.stage].command.join(' ')}): ${problem.message}`);
    const template = toArgv(s.with);
    for (const m of template.join(' ').matchAll(SERVICE_REF)) {
      if (!pipeline.services?.[m[1]]) throw new KdError('bad-pipeline', `${at(file, lp.lineOf(['stages', i, 'with']))}: stages[${i}].with: unknown service "${m[1]}"`);
    }
    try {
      await checkArgv(STAGES[s.stage].command, template.map((a) => a.replace(SERVICE_REF, 'http://127.0.0.1:1/v1')));
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0];
      const bad = /Unknown arguments?: ([\w-]+)/.exec(msg)?.[1] ?? /Missing required argument: ([\w-]+)/.exec(msg)?.[1];
      const key = bad && Object.keys(s.with).find((k) => kebab(k) === bad);
      const line = lp.lineOf(key ? ['stages', i, 'with', key] : ['stages', i]);
      throw new KdError('bad-pipeline', `${at(file, line)}: stages[${i}] (${name}, kd ${STAGES[s.stage].command.join(' ')}): ${msg}`);
    }
    const out = flagValues(template, STAGES[s.stage].out)[0];
    if (!out) throw new KdError('bad-pipeline', `${at(file, lp.lineOf(['stages', i, 'with']))}: stages[${i}].with.${STAGES[s.stage].out} is required`);
    planned.push({ index: i, name, kind: s.stage, template, out });
  }
  return planned;
}

function selectRange(planned: PlannedStage[], o: RunOptions, file: string): PlannedStage[] {
  const idx = (n: string | undefined, flag: string) => {
    if (n === undefined) return undefined;
    const i = planned.findIndex((p) => p.name === n || p.kind === n);
    if (i < 0) throw new KdError('bad-pipeline', `${flag} ${n}: ${file} has no such stage (stages: ${planned.map((p) => p.name).join(', ')})`);
    return i;
  };
  const from = idx(o.from, '--from') ?? 0;
  const to = idx(o.to, '--to') ?? planned.length - 1;
  return planned.slice(from, to + 1);
}

/**
 * A kd child: its own process group (a terminal's Ctrl-C reaches kd run alone, which passes it on
 * once), and a stdin pipe that closes when kd run goes away, however it goes (see src/cli/child.ts).
 */
function spawnKd(argv: string[], progressPipe = false): ChildProcess {
  // a stage also gets fd 3, a pipe for its progress line (src/core/progress.ts)
  const child = spawn(process.execPath, [...kdCommand(), ...argv], {
    stdio: progressPipe ? ['pipe', 'pipe', 'inherit', 'pipe'] : ['pipe', 'pipe', 'inherit'], detached: true,
    env: { ...process.env, [EXIT_WITH_PARENT_ENV]: '1', ...(progressPipe ? { [PROGRESS_FD_ENV]: '3' } : {}) },
  });
  child.stdin!.on('error', () => {}); // the child exiting first is no error
  return child;
}

/** SIGTERM, then SIGKILL if it has not exited within `ms`; resolves once it has exited. */
function stopChild(child: ChildProcess, ms = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill('SIGTERM');
  });
}

/** Start `kd serve` for a service; resolves with its base URL once it prints its startup JSON line. */
function startService(name: string, s: { checkpoint: string; host?: string; port?: number; model_name?: string }, log: (l: string) => void, onStart: (c: ChildProcess) => void): Promise<{ url: string; child: ChildProcess }> {
  const args = ['serve', '--checkpoint', s.checkpoint, '--port', String(s.port ?? 0), '--json', '--quiet',
    ...(s.host ? ['--host', s.host] : []), ...(s.model_name ? ['--model-name', s.model_name] : [])];
  const child = spawnKd(args);
  onStart(child);
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n')[0];
      if (buf.includes('\n')) {
        try {
          const info = JSON.parse(line) as { url: string };
          log(`service ${name}: kd serve ${s.checkpoint} at ${info.url} (pid ${child.pid})`);
          resolve({ url: info.url.replace(/\/$/, '') + '/v1', child });
        } catch {
          reject(new KdError('service-failed', `service ${name}: kd serve printed no startup line`));
        }
      }
    });
    child.on('exit', (code) => reject(new KdError('service-failed', `service ${name}: kd serve exited with code ${code}`)));
  });
}

function runChild(argv: string[], onStart: (c: ChildProcess) => void, showProgress: (pipe: Readable) => { stop(): Promise<void> }): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawnKd(argv, true);
    onStart(child);
    const relay = showProgress(child.stdio[3] as Readable);
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.on('exit', (code, signal) => void relay.stop().then(() => resolve({ code: code ?? (signal ? 130 : 1), stdout })));
  });
}

function lastJson(stdout: string): Record<string, unknown> | undefined {
  for (const line of stdout.trim().split('\n').reverse()) {
    try {
      const v = JSON.parse(line);
      if (v && typeof v === 'object') return v as Record<string, unknown>;
    } catch { /* not JSON */ }
  }
  return undefined;
}

export async function runPipeline(file: string, o: RunOptions): Promise<PipelineReport> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const lp = loadPipeline(file);
  const stages = selectRange(await plan(lp, o.checkArgv), o, file);
  const t0 = performance.now();
  const report: PipelineReport = { pipeline: lp.pipeline.name, file, ok: true, seconds: 0, stages: [] };
  const stateDir = path.join(path.dirname(path.resolve(file)), '.kd', lp.pipeline.name); // run state beside the pipeline file
  const services = new Map<string, { url: string; child: ChildProcess }>();
  const commit = gitCommit();
  // SIGINT/SIGTERM: passed on to the stage running (it stops cleanly and can resume), services are
  // stopped, no further stage starts; a second signal kills the children at once
  const children = new Set<ChildProcess>();
  const track = (c: ChildProcess) => { children.add(c); c.once('exit', () => children.delete(c)); };
  const onSignal = (sig: NodeJS.Signals) => {
    if (report.interrupted) {
      for (const c of children) c.kill('SIGKILL');
      return;
    }
    report.interrupted = sig;
    report.ok = false;
    log(`kd run: ${sig}: stopping (again to kill at once)…`);
    for (const c of children) if (![...services.values()].some((s) => s.child === c)) c.kill(sig);
  };
  const unsubscribe = o.interrupts?.(onSignal);
  const wouldRun: PlannedStage[] = []; // --dry-run: the stages planned so far (their outputs would change)
  try {
    for (const p of stages) {
      if (report.interrupted) break;
      const { key, inputs } = stageKey(p);
      // --dry-run: an input that an earlier planned stage would rewrite makes this stage rerun too,
      // whatever its manifest says now (a real run sees the new input's hash)
      const upstream = o.dryRun && !o.force ? upstreamOf(p, wouldRun) : undefined;
      const mfile = manifestPath(p);
      const done = readJson(mfile);
      const outExists = fs.existsSync(p.out);
      // up to date: same key, and the output still as the stage left it (a removed checkpoint is not "done")
      const outputsIntact = outExists && typeof done?.outputs === 'string' && done.outputs === outputFingerprint(p.out);
      if (!o.force && !upstream && done?.key === key && done.status === 'done' && outputsIntact) {
        report.stages.push({ name: p.name, stage: p.kind, status: 'skipped', reason: 'up to date', seconds: 0, summary: done.summary as Record<string, unknown> });
        log(`- ${p.name}: up to date`);
        continue;
      }
      const state = readJson(path.join(stateDir, `${p.name}.json`));
      const def = STAGES[p.kind];
      const extra: string[] = [];
      let reason = upstream ? `${upstream.name} would rerun` : done
        ? done.key !== key ? 'inputs or parameters changed' : o.force ? 'forced' : done.status === 'done' && !outputsIntact ? 'outputs changed or missing' : 'not finished'
        : outExists ? 'no manifest' : 'first run';
      if (!o.force && state?.key === key && state.status === 'running' && def.resume && outExists) { extra.push(`--${def.resume}`); reason = 'resuming an interrupted run'; }
      else if (outExists && def.force) extra.push(`--${def.force}`);
      if (o.dryRun) {
        wouldRun.push(p);
        report.stages.push({ name: p.name, stage: p.kind, status: 'planned', reason, seconds: 0 });
        log(`- ${p.name}: would run (${reason}): kd ${[...def.command, ...p.template, ...extra].join(' ')}`);
        continue;
      }
      for (const m of p.template.join('\n').matchAll(SERVICE_REF)) {
        if (!services.has(m[1])) services.set(m[1], await startService(m[1], lp.pipeline.services![m[1]].serve, log, track));
      }
      const argv = [...def.command, ...p.template.map((a) => a.replace(SERVICE_REF, (_, n: string) => services.get(n)!.url)), ...extra, '--json'];
      log(`▶ ${p.name} (${reason}): kd ${argv.join(' ')}`);
      writeJsonAtomic(path.join(stateDir, `${p.name}.json`), { key, status: 'running', startedAt: new Date().toISOString() });
      const started = new Date();
      const s0 = performance.now();
      const r = await runChild(argv, track, (pipe) => relayProgress(pipe, p.name, o.progress ?? process.stderr, { everyMs: o.progressEveryMs }));
      const seconds = (performance.now() - s0) / 1000;
      const summary = lastJson(r.stdout);
      if (r.code !== 0) {
        writeJsonAtomic(path.join(stateDir, `${p.name}.json`), { key, status: 'running', failedAt: new Date().toISOString(), code: r.code });
        report.stages.push({ name: p.name, stage: p.kind, status: 'failed', reason, seconds, summary, error: `kd ${def.command.join(' ')} exited with code ${r.code}` });
        report.ok = false;
        log(`✗ ${p.name} failed after ${seconds.toFixed(1)}s (exit code ${r.code})`);
        break;
      }
      const manifest = {
        format: 'kd-stage', version: 1, pipeline: lp.pipeline.name, stage: p.name, kind: p.kind, key, status: 'done',
        command: ['kd', ...def.command, ...p.template], inputs, kdVersion: KD_VERSION,
        startedAt: started.toISOString(), endedAt: new Date().toISOString(), seconds,
        provenance: {
          gitCommit: commit, node: process.versions.node, seed: flagValues(p.template, 'seed')[0] ?? null,
          // collect stages: who answered
          ...(p.kind === 'collect' ? { teacherModel: summary?.model ?? null, systemFingerprints: summary?.systemFingerprints ?? [] } : {}),
        },
        summary,
        outputs: outputFingerprint(p.out),
      };
      writeJsonAtomic(mfile, manifest);
      writeJsonAtomic(path.join(stateDir, `${p.name}.json`), { key, status: 'done' });
      report.stages.push({ name: p.name, stage: p.kind, status: 'ran', reason, seconds, summary });
      log(`✓ ${p.name} ${seconds.toFixed(1)}s`);
    }
  } finally {
    await Promise.all([...services.values()].map((s) => stopChild(s.child)));
    unsubscribe?.();
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined; // absent or corrupt: treat as not run (a corrupt manifest means re-run, never reuse)
  }
}
