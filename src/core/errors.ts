/**
 * The one error class meant for users. The CLI prints `kd: <code>: <message>` and exits non-zero;
 * anything else that escapes is a bug and may show a stack.
 */
export class KdError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'KdError';
    this.code = code;
  }
}

export function isKdError(e: unknown): e is KdError {
  return e instanceof KdError;
}
