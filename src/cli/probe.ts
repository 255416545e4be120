/** `kd doctor --teacher-url` and `kd collect --probe`: the teacher capability probe, printed (thin shell over collect/probe.ts). */
export interface ProbeArgs { teacherUrl?: string; model?: string; apiKeyEnv?: string; timeout?: number; json?: boolean }

export async function printProbe(a: ProbeArgs): Promise<void> {
  const { probeTeacher, formatProbe } = await import('../collect/probe.js');
  const v = await probeTeacher({ teacherUrl: a.teacherUrl, model: a.model, apiKeyEnv: a.apiKeyEnv, timeoutMs: a.timeout === undefined ? undefined : a.timeout * 1000 });
  process.stdout.write((a.json ? JSON.stringify(v) : formatProbe(v)) + '\n');
}
