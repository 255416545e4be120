/**
 * An error answered as OpenAI does: HTTP status and {"error": {message, type, param, code}}. Thrown by
 * validation and handlers; the HTTP layer turns it into a response (anything else is a 500).
 */
export type ApiErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'server_error';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: ApiErrorType = status === 401 ? 'authentication_error' : status === 404 ? 'not_found_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 naming the parameter (the common case). */
export const badParam = (param: string, message: string, code = 'invalid_value') => new ApiError(400, message, param, code);
