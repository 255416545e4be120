import { RUN_OPTIONS } from '../pipeline/options.js';
import { type SpecCommand, specCommand } from './command.js';

/** `kd run`, checking each stage's command line with `checkArgv` (kd's own commands: src/cli/index.ts). */
export const runCommandWith = (checkArgv: (command: string[], argv: string[]) => Promise<void>): SpecCommand<typeof RUN_OPTIONS> => specCommand({
  command: 'run <pipeline>',
  describe: 'Run a pipeline file: stages in order, skipping those whose inputs and parameters are unchanged',
  options: RUN_OPTIONS,
  examples: [
    ['$0 run pipelines/demo.yaml', 'the offline demo: every stage, skipping what is up to date'],
    ['$0 run pipelines/demo.yaml --dry-run', 'what would run, and why, without running anything'],
    ['$0 run pipelines/demo.yaml --from train --force', 'rerun train and every stage after it'],
  ],
  handler: async (a) => {
    const { runPipeline } = await import('../pipeline/run.js');
    const r = await runPipeline(a.pipeline, { from: a.from, to: a.to, force: a.force, dryRun: a.dryRun, checkArgv, interrupts: signalsOf(process) });
    if (a.json) process.stdout.write(JSON.stringify(r) + '\n');
    else {
      const rows = r.stages.map((s) => `  ${s.status.padEnd(8)} ${s.name.padEnd(16)} ${s.seconds.toFixed(1).padStart(7)}s  ${s.error ?? (s.status === 'skipped' ? s.reason : `(${s.reason})`)}`);
      const reports = r.stages.filter((s) => s.stage === 'eval' && typeof s.summary?.out === 'string').map((s) => `report: ${s.summary!.out}/index.html`);
      process.stdout.write([`pipeline ${r.pipeline}: ${r.ok ? 'ok' : 'FAILED'} in ${r.seconds.toFixed(1)}s`, ...rows, ...reports].join('\n') + '\n');
    }
    if (!r.ok) process.exitCode = r.interrupted ? 128 + (r.interrupted === 'SIGINT' ? 2 : 15) : 1;
  },
});

/**
 * SIGINT/SIGTERM to the pipeline: the first stops it cleanly (the running stage checkpoints), a second
 * kills the children (the pipeline does that) and exits at once, 128 + the signal's number.
 */
export function signalsOf(proc: NodeJS.Process) {
  return (onInterrupt: (sig: NodeJS.Signals) => void) => {
    let seen = 0;
    const h = (sig: NodeJS.Signals) => {
      onInterrupt(sig);
      if (++seen > 1) proc.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    };
    proc.on('SIGINT', h);
    proc.on('SIGTERM', h);
    return () => { proc.off('SIGINT', h); proc.off('SIGTERM', h); };
  };
}
