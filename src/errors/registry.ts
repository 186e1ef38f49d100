/**
 * The one registry of aofq's error codes. Clients match on `code`; the message
 * is for people. Each entry gives the HTTP status and, for the RESP port, the
 * Redis error prefix (`ERR`, `WRONGTYPE`, `MISCONF`, ...). Messages are
 * templates: `{name}` is filled from the error's params. Later issues add
 * codes here and nowhere else; docs/ERRORS.md and openapi.yaml list them all.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly resp: string;
  readonly message: string;
}

export const ERRORS = {
  // --- RESP protocol ---
  AOFQ_ERR_RESP_PROTOCOL: { status: 400, resp: 'ERR', message: 'Protocol error: {reason}' },
  AOFQ_ERR_RESP_LIMIT: { status: 400, resp: 'ERR', message: 'Protocol error: {reason}' },

  // --- RESP port: server-level commands; messages are Redis's own ---
  AOFQ_ERR_RESP_MAX_CLIENTS: { status: 503, resp: 'ERR', message: 'max number of clients reached' },
  AOFQ_ERR_RESP_NOPROTO: {
    status: 400,
    resp: 'NOPROTO',
    message: 'sorry, this protocol version is not supported',
  },
  AOFQ_ERR_RESP_WRONGPASS: {
    status: 401,
    resp: 'WRONGPASS',
    message: 'invalid username-password pair or user is disabled.',
  },
  AOFQ_ERR_RESP_AUTH_NOT_CONFIGURED: {
    status: 400,
    resp: 'ERR',
    message:
      'AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
  },
  AOFQ_ERR_RESP_HELLO_NOAUTH: {
    status: 401,
    resp: 'NOAUTH',
    message:
      'HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
  },
  AOFQ_ERR_RESP_UNKNOWN_SUBCOMMAND: {
    status: 400,
    resp: 'ERR',
    message: "unknown subcommand '{subcommand}'. Try {command} HELP.",
  },
  AOFQ_ERR_RESP_CONFIG_UNKNOWN: {
    status: 400,
    resp: 'ERR',
    message: "Unknown option or number of arguments for CONFIG SET - '{directive}'",
  },
  AOFQ_ERR_RESP_CONFIG_BAD_VALUE: {
    status: 400,
    resp: 'ERR',
    message: "CONFIG SET failed (possibly related to argument '{directive}') - {reason}",
  },
  AOFQ_ERR_RESP_WAITAOF_NO_AOF: {
    status: 400,
    resp: 'ERR',
    message: 'WAITAOF cannot be used when numlocal is set but appendonly is disabled.',
  },
  AOFQ_ERR_RESP_BAD_ARGUMENT: { status: 400, resp: 'ERR', message: '{reason}' },

  // --- commands (store); messages are Redis's own ---
  AOFQ_ERR_CMD_UNKNOWN: {
    status: 400,
    resp: 'ERR',
    message: "unknown command '{command}', with args beginning with: {args}",
  },
  AOFQ_ERR_CMD_ARITY: {
    status: 400,
    resp: 'ERR',
    message: "wrong number of arguments for '{command}' command",
  },
  AOFQ_ERR_CMD_SYNTAX: { status: 400, resp: 'ERR', message: 'syntax error' },
  AOFQ_ERR_CMD_WRONGTYPE: {
    status: 400,
    resp: 'WRONGTYPE',
    message: 'Operation against a key holding the wrong kind of value',
  },
  AOFQ_ERR_CMD_NOT_INTEGER: { status: 400, resp: 'ERR', message: 'value is not an integer or out of range' },
  AOFQ_ERR_CMD_HASH_NOT_INTEGER: { status: 400, resp: 'ERR', message: 'hash value is not an integer' },
  AOFQ_ERR_CMD_OVERFLOW: { status: 400, resp: 'ERR', message: 'increment or decrement would overflow' },
  AOFQ_ERR_CMD_BAD_EXPIRE: {
    status: 400,
    resp: 'ERR',
    message: "invalid expire time in '{command}' command",
  },
  AOFQ_ERR_CMD_DB_INDEX: { status: 400, resp: 'ERR', message: 'DB index is out of range' },
  AOFQ_ERR_CMD_BAD_CURSOR: { status: 400, resp: 'ERR', message: 'invalid cursor' },
  AOFQ_ERR_CMD_STRING_TOO_LONG: { status: 400, resp: 'ERR', message: 'string exceeds maximum allowed size' },
  AOFQ_ERR_CMD_NOAUTH: { status: 401, resp: 'NOAUTH', message: 'Authentication required.' },
  AOFQ_ERR_CMD_DECREMENT_OVERFLOW: { status: 400, resp: 'ERR', message: 'decrement would overflow' },
  AOFQ_ERR_CMD_OUT_OF_RANGE: {
    status: 400,
    resp: 'ERR',
    message: 'value is out of range, value must between {min} and {max}',
  },
  AOFQ_ERR_CMD_UNSUPPORTED_OPTION: { status: 400, resp: 'ERR', message: 'Unsupported option {option}' },
  AOFQ_ERR_CMD_INCOMPATIBLE_OPTIONS: {
    status: 400,
    resp: 'ERR',
    message: '{options} options at the same time are not compatible',
  },
  AOFQ_ERR_STORE_BAD_RECORD: { status: 500, resp: 'ERR', message: "Bad store record '{command}': {reason}" },

  // --- AOF engine ---
  AOFQ_ERR_AOF_WRITE_FAILED: {
    status: 503,
    resp: 'MISCONF',
    message:
      'Errors writing to the AOF file: {reason}. Writes are refused until the disk accepts them again.',
  },
  AOFQ_ERR_AOF_CLOSED: { status: 503, resp: 'ERR', message: 'The AOF is closed' },
  AOFQ_ERR_AOF_MANIFEST: { status: 500, resp: 'ERR', message: '{reason}' },
  AOFQ_ERR_AOF_CORRUPT: {
    status: 500,
    resp: 'ERR',
    message:
      'Bad file format reading the append only file {file} at offset {offset}: {reason}. Run: {repair}',
  },
  AOFQ_ERR_AOF_TRUNCATED: {
    status: 500,
    resp: 'ERR',
    message: 'Unexpected end of file reading the append only file {file} at offset {offset}. Run: {repair}',
  },
  AOFQ_ERR_AOF_MISSING_FILE: { status: 500, resp: 'ERR', message: "The AOF file {file} doesn't exist" },
  AOFQ_ERR_AOF_BAD_RECORD: {
    status: 500,
    resp: 'ERR',
    message: 'Bad record in the append only file {file} at offset {offset} (LSN {lsn}): {reason}',
  },
  AOFQ_ERR_AOF_REWRITE_IN_PROGRESS: {
    status: 409,
    resp: 'ERR',
    message: 'Background append only file rewriting already in progress',
  },
  AOFQ_ERR_AOF_NO_SPACE: {
    status: 507,
    resp: 'ERR',
    message: 'Not enough free disk space for a rewrite: {free} bytes free, {needed} needed',
  },
  AOFQ_ERR_AOF_REWRITE_FAILED: {
    status: 500,
    resp: 'ERR',
    message: 'Background AOF rewrite failed: {reason}',
  },
  AOFQ_ERR_AOF_SNAPSHOT: {
    status: 500,
    resp: 'ERR',
    message: 'Bad snapshot record in the AOF base: {reason}',
  },

  // --- queues and jobs ---
  AOFQ_ERR_QUEUE_NOT_FOUND: { status: 404, resp: 'ERR', message: "Queue '{queue}' does not exist" },
  AOFQ_ERR_QUEUE_INVALID_NAME: {
    status: 400,
    resp: 'ERR',
    message: 'Invalid queue name: must match ^[A-Za-z0-9._:-]{1,128}$',
  },
  AOFQ_ERR_QUEUE_FULL: {
    status: 429,
    resp: 'ERR',
    message: "Queue '{queue}' is full: it holds {maxJobs} jobs (maxJobs)",
  },
  AOFQ_ERR_QUEUE_INVALID_CONFIG: {
    status: 400,
    resp: 'ERR',
    message: 'Invalid queue configuration: {reason}',
  },
  AOFQ_ERR_JOB_NOT_FOUND: { status: 404, resp: 'ERR', message: "Job '{id}' not found in queue '{queue}'" },
  AOFQ_ERR_JOB_INVALID: { status: 400, resp: 'ERR', message: 'Invalid job: {reason}' },
  AOFQ_ERR_JOB_DATA_TOO_LARGE: {
    status: 413,
    resp: 'ERR',
    message: 'Job data is {size} bytes, over the queue limit of {limit} bytes',
  },
  AOFQ_ERR_JOB_STATE: { status: 409, resp: 'ERR', message: "Job '{id}' is {state}: {reason}" },
  AOFQ_ERR_LEASE_LOST: {
    status: 409,
    resp: 'ERR',
    message: "The lease on job '{id}' is lost: the token is stale, the lease expired or the job is finished",
  },
  AOFQ_ERR_LEASE_INVALID: { status: 400, resp: 'ERR', message: 'Invalid lease request: {reason}' },
  AOFQ_ERR_QUEUE_INVALID_REQUEST: { status: 400, resp: 'ERR', message: 'Invalid queue request: {reason}' },
  AOFQ_ERR_QUEUE_BUSY: {
    status: 409,
    resp: 'ERR',
    message: "Queue '{queue}' has {active} active jobs: obliterate it with force",
  },
  AOFQ_ERR_QUEUE_RECORD_INVALID: {
    status: 500,
    resp: 'ERR',
    message: "Malformed queue record '{command}': {reason}",
  },

  // --- server, HTTP, auth, config ---
  AOFQ_ERR_HTTP_VALIDATION: { status: 400, resp: 'ERR', message: '{reason}' },
  AOFQ_ERR_HTTP_BODY_TOO_LARGE: {
    status: 413,
    resp: 'ERR',
    message: 'Request body is larger than {limit} bytes',
  },
  AOFQ_ERR_HTTP_NOT_FOUND: { status: 404, resp: 'ERR', message: 'Route {method} {url} not found' },
  AOFQ_ERR_HTTP_BAD_JSON: { status: 400, resp: 'ERR', message: 'Request body is not valid JSON: {reason}' },
  AOFQ_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    resp: 'ERR',
    message: 'Unsupported Content-Type {contentType}: send application/json',
  },
  AOFQ_ERR_HTTP_NOT_ACCEPTABLE: { status: 406, resp: 'ERR', message: 'Cannot answer in {accept}' },
  AOFQ_ERR_AOF_REWRITE_UNAVAILABLE: {
    status: 501,
    resp: 'ERR',
    message: 'AOF rewrite is not available in this version of aofq',
  },
  AOFQ_ERR_HTTP_TOO_MANY_POLLS: {
    status: 429,
    resp: 'ERR',
    message: 'Too many long polls on this connection',
  },
  AOFQ_ERR_AUTH_MISSING: { status: 401, resp: 'NOAUTH', message: 'Authentication required' },
  AOFQ_ERR_AUTH_INVALID: { status: 401, resp: 'WRONGPASS', message: 'Invalid bearer token' },
  AOFQ_ERR_AUTH_FORBIDDEN: { status: 403, resp: 'NOPERM', message: "This token's role may not {action}" },
  AOFQ_ERR_SERVER_LOADING: { status: 503, resp: 'LOADING', message: 'aofq is loading the dataset in memory' },
  AOFQ_ERR_SERVER_SHUTTING_DOWN: { status: 503, resp: 'ERR', message: 'aofq is shutting down' },
  AOFQ_ERR_CONFIG_INVALID: { status: 400, resp: 'ERR', message: 'Invalid configuration: {reason}' },
  AOFQ_ERR_CONFIG_READONLY: {
    status: 400,
    resp: 'ERR',
    message: "CONFIG SET failed: '{directive}' cannot be changed at run time",
  },
  AOFQ_ERR_INTERNAL: { status: 500, resp: 'ERR', message: 'Internal error' },

  // --- WebSocket API (src/http/ws.ts) ---
  AOFQ_ERR_WS_MALFORMED: { status: 400, resp: 'ERR', message: 'Malformed WebSocket message: {reason}' },
  AOFQ_ERR_WS_UNKNOWN_TYPE: { status: 400, resp: 'ERR', message: "Unknown WebSocket message type '{type}'" },
  AOFQ_ERR_WS_INVALID_MESSAGE: { status: 400, resp: 'ERR', message: "Invalid '{type}' message: {reason}" },
  AOFQ_ERR_WS_NOT_SUBSCRIBED: {
    status: 409,
    resp: 'ERR',
    message: "This connection is not subscribed to the {what} of queue '{queue}'",
  },
  AOFQ_ERR_WS_ALREADY_SUBSCRIBED: {
    status: 409,
    resp: 'ERR',
    message: "This connection is already subscribed to the {what} of queue '{queue}'",
  },
  AOFQ_ERR_WS_TOO_MANY_SUBSCRIPTIONS: {
    status: 429,
    resp: 'ERR',
    message: 'A WebSocket connection may hold at most {limit} subscriptions',
  },
  AOFQ_ERR_WS_TOO_MANY_ERRORS: {
    status: 400,
    resp: 'ERR',
    message: 'Too many bad messages ({count}) on this WebSocket connection: closing it',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export type ErrorParams = Readonly<Record<string, string | number>>;

function render(template: string, params: ErrorParams): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.hasOwn(params, name) ? String(params[name]) : whole,
  );
}

/** Every error that aofq means to report carries a code from the registry. */
export class AofqError extends Error {
  override name = 'AofqError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly params: ErrorParams;

  constructor(code: ErrorCode, params: ErrorParams = {}, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERRORS[code];
    super(render(spec.message, params), options);
    this.code = code;
    this.status = spec.status;
    this.params = params;
  }

  /** The error as a RESP error line's text, without the leading '-'. */
  toResp(): string {
    return `${ERRORS[this.code].resp} ${this.message}`;
  }
}

export function isAofqError(err: unknown, code?: ErrorCode): err is AofqError {
  return err instanceof AofqError && (code === undefined || err.code === code);
}
