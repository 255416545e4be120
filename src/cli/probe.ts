/** `kd doctor --teacher-url` and `kd collect --probe`: the teacher capability probe, printed (thin shell over collect/probe.ts). */
import { msOfSeconds } from '../core/options.js';
import { printSummary } from './command.js';

/** The flags both commands share (collect's spec and doctor's name them alike); --timeout in seconds. */
export interface ProbeArgs { teacherUrl?: string; model?: string; apiKeyEnv?: string; timeout?: number; json?: boolean }

export async function printProbe(a: ProbeArgs): Promise<void> {
  const { probeTeacher, formatProbe } = await import('../collect/probe.js');
  printSummary(a.json, await probeTeacher({ teacherUrl: a.teacherUrl, model: a.model, apiKeyEnv: a.apiKeyEnv, timeoutMs: msOfSeconds(a.timeout) }), formatProbe);
}
