/**
 * Every HTTP error as RFC 9457 problem details (`application/problem+json`)
 * carrying an aofq error code. Maps fastify's own errors (validation, body
 * too large, bad JSON, media type, bad URL), Node's HTTP parser errors and
 * AofqErrors to their codes; anything
 * else is AOFQ_ERR_INTERNAL, logged with its stack and never shown.
 */
import { AofqError, ERRORS, type ErrorCode, isAofqError } from '../errors/index.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  message: string;
  instance?: string;
  requestId?: string;
}

/** Retry-After seconds for codes that are worth retrying later. */
const RETRY_AFTER_SECONDS: Partial<Record<ErrorCode, number>> = {
  AOFQ_ERR_QUEUE_FULL: 1,
  AOFQ_ERR_SERVER_LOADING: 1,
  AOFQ_ERR_AOF_WRITE_FAILED: 1,
  AOFQ_ERR_HTTP_TOO_MANY_POLLS: 1,
};

export function retryAfterSeconds(code: ErrorCode): number | undefined {
  return RETRY_AFTER_SECONDS[code];
}

function titleOf(code: ErrorCode): string {
  return code
    .replace(/^AOFQ_ERR_/, '')
    .toLowerCase()
    .replace(/_/g, ' ')
    .replace(/^./, (c) => c.toUpperCase());
}

export function problemOf(error: AofqError, instance?: string, requestId?: string): Problem {
  const problem: Problem = {
    type: `urn:aofq:error:${error.code}`,
    title: titleOf(error.code),
    status: error.status,
    code: error.code,
    message: error.message,
  };
  if (instance !== undefined) problem.instance = instance;
  if (requestId !== undefined) problem.requestId = requestId;
  return problem;
}

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  message?: string;
  validation?: unknown;
  validationContext?: string;
}

/**
 * Turn anything thrown in a request into an AofqError. Returns `internal: true`
 * when the error was not one we meant to report (it gets logged).
 */
export function toAofqError(
  err: unknown,
  context: { bodyLimit: number; contentType?: string; maxParamLength?: number },
): { error: AofqError; internal: boolean } {
  if (isAofqError(err)) return { error: err, internal: false };
  const e = (err ?? {}) as FastifyLikeError;
  if (e.validation !== undefined) {
    const where = e.validationContext ?? 'request';
    return {
      error: new AofqError('AOFQ_ERR_HTTP_VALIDATION', { reason: `${where}: ${e.message ?? 'invalid'}` }),
      internal: false,
    };
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        error: new AofqError('AOFQ_ERR_HTTP_BODY_TOO_LARGE', { limit: context.bodyLimit }),
        internal: false,
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        error: new AofqError('AOFQ_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE', {
          contentType: context.contentType ?? '(none)',
        }),
        internal: false,
      };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return {
        error: new AofqError('AOFQ_ERR_HTTP_VALIDATION', { reason: e.message ?? 'bad Content-Length' }),
        internal: false,
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return {
        error: new AofqError('AOFQ_ERR_HTTP_BAD_JSON', { reason: 'the body is empty' }),
        internal: false,
      };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { error: new AofqError('AOFQ_ERR_HTTP_BAD_JSON', { reason: e.message ?? '' }), internal: false };
    // Routing errors (fastify's frameworkErrors): the path cannot name a resource.
    case 'FST_ERR_BAD_URL':
      return {
        error: new AofqError('AOFQ_ERR_HTTP_VALIDATION', {
          reason: 'path: the URL is not valid percent-encoded UTF-8',
        }),
        internal: false,
      };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return {
        error: new AofqError('AOFQ_ERR_HTTP_VALIDATION', {
          reason: `path: a path parameter is longer than ${context.maxParamLength ?? 'the limit of'} characters`,
        }),
        internal: false,
      };
  }
  // fastify's JSON parser throws a plain SyntaxError with statusCode 400 for bad JSON.
  if (err instanceof SyntaxError && e.statusCode === 400) {
    return { error: new AofqError('AOFQ_ERR_HTTP_BAD_JSON', { reason: err.message }), internal: false };
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return {
      error: new AofqError('AOFQ_ERR_HTTP_VALIDATION', { reason: e.message ?? `status ${e.statusCode}` }),
      internal: false,
    };
  }
  return { error: new AofqError('AOFQ_ERR_INTERNAL', {}, { cause: err }), internal: true };
}

/**
 * An error of Node's HTTP parser (the server's `clientError` event: a
 * malformed request line or header, headers over the limit, a request that
 * did not arrive in time), which no route ever sees.
 */
export function clientErrorOf(
  err: NodeJS.ErrnoException & { reason?: unknown },
  maxHeaderBytes: number,
): AofqError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new AofqError('AOFQ_ERR_HTTP_HEADERS_TOO_LARGE', { limit: maxHeaderBytes });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new AofqError('AOFQ_ERR_HTTP_REQUEST_TIMEOUT');
    default: {
      const reason = typeof err.reason === 'string' ? ` (${err.reason})` : '';
      return new AofqError('AOFQ_ERR_HTTP_BAD_REQUEST', { reason: `${err.code ?? 'unparsable'}${reason}` });
    }
  }
}

/** The codes of the registry, for the contract test and the docs. */
export function allErrorCodes(): ErrorCode[] {
  return Object.keys(ERRORS) as ErrorCode[];
}
