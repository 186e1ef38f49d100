/**
 * The server's configuration: Redis-style directives read from a config file
 * (`--config aofq.conf`), then the environment (`AOFQ_<DIRECTIVE>`), then flags
 * (`--<directive> <value>`), each source overriding the one before. Directive
 * names and defaults are Redis's where Redis has them. The merged directives
 * are converted to typed values and validated with ajv (strict) in one place;
 * every problem is an AofqError AOFQ_ERR_CONFIG_INVALID naming its source.
 *
 * The config file is named by `--config <file>` (or the env AOFQ_CONFIG). Flags
 * take one value each, as `--appendfsync always` or `--appendfsync=always`.
 * Unknown directives are refused; unknown AOFQ_* variables only warn.
 *
 * Tokens: `tokens name:role:secret[,name:role:secret...]`; the directive may be
 * repeated in the file (the lists are joined); env and flags replace the list.
 * Roles: producer, consumer, admin, replica. Secrets are at least 16 bytes.
 * `requirepass <secret>` adds an admin token named `default`.
 */
import { isIP } from 'node:net';
import { Ajv } from 'ajv';
import type { AofConfig, AppendFsync } from '../aof/config.js';
import { DEFAULT_AOF_CONFIG } from '../aof/config.js';
import { AofqError } from '../errors/index.js';
import { LIMITS } from '../util/limits.js';

export type TokenRole = 'producer' | 'consumer' | 'admin' | 'replica';
export const TOKEN_ROLES: readonly TokenRole[] = ['producer', 'consumer', 'admin', 'replica'];

export interface TokenSpec {
  readonly name: string;
  readonly role: TokenRole;
  readonly secret: string;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** The WebSocket API's options (directives ws-*). */
export interface WsConfig {
  readonly maxPayload: number;
  readonly eventRingSize: number;
  readonly releaseOnDisconnect: boolean;
  readonly pingIntervalMs: number;
}

export interface ServerConfig {
  readonly aof: AofConfig;
  readonly host: string;
  readonly port: number;
  /** 0: no RESP port (as Redis's `port 0`). */
  readonly respPort: number;
  readonly respHost: string;
  /** Redis's maxclients, client-query-buffer-limit and proto-max-bulk-len, for the RESP port. */
  readonly maxClients: number;
  readonly clientQueryBufferLimit: number;
  readonly protoMaxBulkLen: number;
  readonly ws: WsConfig;
  readonly tokens: readonly TokenSpec[];
  readonly tlsCertFile: string | null;
  readonly tlsKeyFile: string | null;
  readonly bodyLimit: number;
  readonly loglevel: LogLevel;
}

export interface LoadedConfig {
  readonly config: ServerConfig;
  /** Effective directive values as text, secrets included (redact before showing). */
  readonly directives: Readonly<Record<string, string>>;
  /** Things an operator should know but that do not stop the start. */
  readonly warnings: readonly string[];
}

type Kind = 'string' | 'bool' | 'int' | 'memory' | 'enum' | 'tokens';

interface DirectiveSpec {
  readonly kind: Kind;
  readonly default: string;
  readonly values?: readonly string[];
  /** Changeable at run time through PUT /v1/admin/config. */
  readonly runtime?: boolean;
  /** Holds a secret: redacted when shown. */
  readonly secret?: boolean;
  /** Accepted for compatibility, ignored with a warning. */
  readonly ignored?: string;
}

const REDIS_LOGLEVELS: Readonly<Record<string, LogLevel>> = {
  debug: 'debug',
  verbose: 'debug',
  notice: 'info',
  warning: 'warn',
  nothing: 'silent',
};
const PINO_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export const DIRECTIVES: Readonly<Record<string, DirectiveSpec>> = {
  dir: { kind: 'string', default: DEFAULT_AOF_CONFIG.dir },
  appendonly: { kind: 'bool', default: 'yes' },
  appendfilename: { kind: 'string', default: DEFAULT_AOF_CONFIG.appendfilename },
  appenddirname: { kind: 'string', default: DEFAULT_AOF_CONFIG.appenddirname },
  appendfsync: {
    kind: 'enum',
    default: DEFAULT_AOF_CONFIG.appendfsync,
    values: ['always', 'everysec', 'no'],
    runtime: true,
  },
  'aof-load-truncated': { kind: 'bool', default: 'yes' },
  'aof-timestamp-enabled': { kind: 'bool', default: 'no' },
  'aof-use-rdb-preamble': { kind: 'bool', default: 'yes' },
  'auto-aof-rewrite-percentage': { kind: 'int', default: '100' },
  'auto-aof-rewrite-min-size': { kind: 'memory', default: '64mb' },
  'aof-rewrite-incremental-fsync': { kind: 'bool', default: 'yes' },
  'aof-disable-auto-gc': { kind: 'bool', default: 'no' },
  'no-appendfsync-on-rewrite': {
    kind: 'bool',
    default: 'no',
    ignored: 'aofq never skips fsync during a rewrite',
  },
  port: { kind: 'int', default: '7700' },
  host: { kind: 'string', default: '127.0.0.1' },
  'resp-port': { kind: 'int', default: '7379' },
  'resp-host': { kind: 'string', default: '127.0.0.1' },
  maxclients: { kind: 'int', default: String(LIMITS.respPortMaxClients) },
  'client-query-buffer-limit': { kind: 'memory', default: '64mb' },
  'proto-max-bulk-len': { kind: 'memory', default: '512mb' },
  'ws-max-payload': { kind: 'memory', default: '1mb' },
  'ws-event-ring-size': { kind: 'int', default: String(LIMITS.wsEventRingSize) },
  'ws-release-on-disconnect': { kind: 'bool', default: 'yes' },
  'ws-ping-interval-ms': { kind: 'int', default: String(LIMITS.wsPingIntervalMs) },
  requirepass: { kind: 'string', default: '', secret: true },
  tokens: { kind: 'tokens', default: '', secret: true },
  'tls-cert-file': { kind: 'string', default: '' },
  'tls-key-file': { kind: 'string', default: '' },
  'body-limit': { kind: 'memory', default: '1mb' },
  loglevel: {
    kind: 'enum',
    default: 'notice',
    values: [...Object.keys(REDIS_LOGLEVELS), ...PINO_LEVELS],
    runtime: true,
  },
};

/** Most lines in a config file, and longest line: bounds on what we read. */
const MAX_CONFIG_LINES = 10_000;
const MAX_CONFIG_LINE_BYTES = 64 * 1024;
const MIN_SECRET_BYTES = 16;
const MIB = 1024 * 1024;
const MAX_TOKENS = 1000;

export function configError(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_CONFIG_INVALID', { reason });
}

/**
 * Split one config line into arguments with Redis's quoting rules: "double
 * quotes" understand \n \r \t \b \a \\ \" and \xHH; 'single quotes' only \'.
 * A closing quote must be followed by a space or the end of the line.
 * Returns null on unbalanced quotes.
 */
export function splitArgs(line: string): string[] | null {
  const args: string[] = [];
  let i = 0;
  const n = line.length;
  const isSpace = (c: string | undefined): boolean =>
    c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';
  while (i < n) {
    while (i < n && isSpace(line[i])) i++;
    if (i >= n) break;
    let current = '';
    let inDouble = false;
    let inSingle = false;
    let done = false;
    while (!done) {
      const c = line[i];
      if (inDouble) {
        if (c === undefined) return null;
        if (c === '\\' && line[i + 1] === 'x' && isHex(line[i + 2]) && isHex(line[i + 3])) {
          current += String.fromCharCode(Number.parseInt(line.slice(i + 2, i + 4), 16));
          i += 3;
        } else if (c === '\\' && line[i + 1] !== undefined) {
          const next = line[i + 1] as string;
          const escapes: Record<string, string> = { n: '\n', r: '\r', t: '\t', b: '\b', a: '\x07' };
          current += escapes[next] ?? next;
          i += 1;
        } else if (c === '"') {
          if (i + 1 < n && !isSpace(line[i + 1])) return null;
          done = true;
        } else {
          current += c;
        }
      } else if (inSingle) {
        if (c === undefined) return null;
        if (c === '\\' && line[i + 1] === "'") {
          current += "'";
          i += 1;
        } else if (c === "'") {
          if (i + 1 < n && !isSpace(line[i + 1])) return null;
          done = true;
        } else {
          current += c;
        }
      } else if (c === undefined || isSpace(c)) {
        done = true;
      } else if (c === '"') {
        inDouble = true;
      } else if (c === "'") {
        inSingle = true;
      } else {
        current += c;
      }
      if (i < n) i++;
    }
    args.push(current);
  }
  return args;
}

function isHex(c: string | undefined): boolean {
  return c !== undefined && /^[0-9a-fA-F]$/.test(c);
}

/** Redis's memory units: 1k = 1000, 1kb = 1024, and so on for m/mb and g/gb; case-insensitive. */
export function parseMemory(text: string): number | null {
  const match = /^(\d+)([kmg]b?|b)?$/i.exec(text.trim());
  if (!match) return null;
  const units: Record<string, number> = {
    b: 1,
    k: 1000,
    kb: 1024,
    m: 1000 ** 2,
    mb: 1024 ** 2,
    g: 1000 ** 3,
    gb: 1024 ** 3,
  };
  const unit = (match[2] ?? 'b').toLowerCase();
  const value = Number(match[1]) * (units[unit] ?? 1);
  return Number.isSafeInteger(value) ? value : null;
}

export function parseTokens(text: string, where: string): TokenSpec[] {
  const tokens: TokenSpec[] = [];
  for (const part of text.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const first = item.indexOf(':');
    const second = first < 0 ? -1 : item.indexOf(':', first + 1);
    if (first <= 0 || second < 0) {
      throw configError(`${where}: a token is name:role:secret, got '${redactToken(item)}'`);
    }
    const name = item.slice(0, first);
    const role = item.slice(first + 1, second);
    const secret = item.slice(second + 1);
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
      throw configError(`${where}: token name '${name}' must match ^[A-Za-z0-9._-]{1,64}$`);
    }
    if (!(TOKEN_ROLES as readonly string[]).includes(role)) {
      throw configError(`${where}: token '${name}' has role '${role}'; roles are ${TOKEN_ROLES.join(', ')}`);
    }
    if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
      throw configError(`${where}: the secret of token '${name}' is shorter than ${MIN_SECRET_BYTES} bytes`);
    }
    tokens.push({ name, role: role as TokenRole, secret });
  }
  return tokens;
}

function redactToken(item: string): string {
  const parts = item.split(':');
  return parts.length >= 3 ? `${parts[0]}:${parts[1]}:***` : item.replace(/.{4}$/, '****');
}

/** Where a directive's text came from, for error messages. */
interface Setting {
  value: string;
  where: string;
}

function normalizeName(name: string): string {
  return name.toLowerCase();
}

function setDirective(settings: Map<string, Setting>, name: string, value: string, where: string): void {
  const key = normalizeName(name);
  if (!Object.hasOwn(DIRECTIVES, key)) {
    throw configError(`${where}: unknown directive '${name}'`);
  }
  const previous = settings.get(key);
  // Repeated `tokens` lines in one file accumulate; any other repetition overrides.
  if (key === 'tokens' && previous !== undefined && previous.where.split(':')[0] === where.split(':')[0]) {
    settings.set(key, { value: `${previous.value},${value}`, where });
  } else {
    settings.set(key, { value, where });
  }
}

export function parseConfigFile(text: string, fileName: string, settings: Map<string, Setting>): void {
  const lines = text.split(/\r?\n/);
  if (lines.length > MAX_CONFIG_LINES) {
    throw configError(`${fileName}: more than ${MAX_CONFIG_LINES} lines`);
  }
  lines.forEach((raw, index) => {
    const where = `${fileName}:${index + 1}`;
    if (raw.length > MAX_CONFIG_LINE_BYTES) throw configError(`${where}: line longer than 64 KiB`);
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const args = splitArgs(line);
    if (args === null) throw configError(`${where}: unbalanced quotes`);
    const [name, ...values] = args;
    if (name === undefined) return;
    if (values.length !== 1) {
      throw configError(`${where}: '${name}' takes exactly one argument, got ${values.length}`);
    }
    setDirective(settings, name, values[0] as string, where);
  });
}

export interface ConfigSources {
  /** Command-line arguments after `server`. */
  args: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  readFile: (path: string) => string;
}

/** The environment variable that sets a directive: AOFQ_ + upper case, dashes as underscores. */
export function envName(directive: string): string {
  return `AOFQ_${directive.toUpperCase().replace(/-/g, '_')}`;
}

/** Read the three sources into one map of directive text, in increasing precedence. */
function gatherSettings(sources: ConfigSources, warnings: string[]): Map<string, Setting> {
  const settings = new Map<string, Setting>();
  // Flags: `--config <file>` and `--<directive> <value>` (or `--<directive>=<value>`).
  const flags: Array<{ name: string; value: string }> = [];
  let configFile: string | null = sources.env.AOFQ_CONFIG ?? null;
  const args = sources.args;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('--') || arg.length <= 2) {
      throw configError(`argument '${arg}': expected --<directive> <value>`);
    }
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else {
      value = args[i + 1];
      if (value === undefined) throw configError(`flag --${name}: missing value`);
      i++;
    }
    if (name === 'config') configFile = value;
    else flags.push({ name, value });
  }
  if (configFile !== null) {
    let text: string;
    try {
      text = sources.readFile(configFile);
    } catch (err) {
      throw configError(`cannot read config file '${configFile}': ${(err as Error).message}`);
    }
    parseConfigFile(text, configFile, settings);
  }
  for (const directive of Object.keys(DIRECTIVES)) {
    const value = sources.env[envName(directive)];
    if (value !== undefined) settings.set(directive, { value, where: `env ${envName(directive)}` });
  }
  for (const key of Object.keys(sources.env)) {
    if (key.startsWith('AOFQ_') && key !== 'AOFQ_CONFIG') {
      const directive = key.slice(5).toLowerCase().replace(/_/g, '-');
      if (!Object.hasOwn(DIRECTIVES, directive))
        warnings.push(`environment variable ${key} is not a directive`);
    }
  }
  for (const flag of flags) setDirective(settings, flag.name, flag.value, `flag --${flag.name}`);
  return settings;
}

/** The typed configuration, checked by ajv against this schema after conversion. */
const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: [
    'aof',
    'host',
    'port',
    'respPort',
    'respHost',
    'maxClients',
    'clientQueryBufferLimit',
    'protoMaxBulkLen',
    'ws',
    'tokens',
    'tlsCertFile',
    'tlsKeyFile',
    'bodyLimit',
    'loglevel',
  ],
  properties: {
    aof: {
      type: 'object',
      additionalProperties: false,
      required: [
        'dir',
        'appendonly',
        'appendfilename',
        'appenddirname',
        'appendfsync',
        'aofLoadTruncated',
        'aofTimestampEnabled',
        'aofUseRdbPreamble',
        'autoAofRewritePercentage',
        'autoAofRewriteMinSize',
        'aofRewriteIncrementalFsync',
        'aofDisableAutoGc',
      ],
      properties: {
        dir: { type: 'string', minLength: 1, maxLength: 4096 },
        appendonly: { type: 'boolean' },
        appendfilename: { type: 'string', pattern: '^[^/\\\\]{1,255}$' },
        appenddirname: { type: 'string', pattern: '^[^/\\\\]{1,255}$' },
        appendfsync: { enum: ['always', 'everysec', 'no'] },
        aofLoadTruncated: { type: 'boolean' },
        aofTimestampEnabled: { type: 'boolean' },
        aofUseRdbPreamble: { type: 'boolean' },
        autoAofRewritePercentage: { type: 'integer', minimum: 0, maximum: 1_000_000 },
        autoAofRewriteMinSize: { type: 'integer', minimum: 0 },
        aofRewriteIncrementalFsync: { type: 'boolean' },
        aofDisableAutoGc: { type: 'boolean' },
      },
    },
    host: { type: 'string', minLength: 1, maxLength: 255 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    respPort: { type: 'integer', minimum: 0, maximum: 65535 },
    respHost: { type: 'string', minLength: 1, maxLength: 255 },
    maxClients: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    // Redis's floors: 1mb for both; the query buffer up to Redis's default 1gb.
    clientQueryBufferLimit: { type: 'integer', minimum: MIB, maximum: 1024 * MIB },
    protoMaxBulkLen: { type: 'integer', minimum: MIB, maximum: LIMITS.respMaxBulkBytes },
    ws: {
      type: 'object',
      additionalProperties: false,
      required: ['maxPayload', 'eventRingSize', 'releaseOnDisconnect', 'pingIntervalMs'],
      properties: {
        maxPayload: { type: 'integer', minimum: 1024, maximum: LIMITS.respMaxBulkBytes },
        eventRingSize: { type: 'integer', minimum: 1, maximum: 10_000_000 },
        releaseOnDisconnect: { type: 'boolean' },
        pingIntervalMs: { type: 'integer', minimum: 100, maximum: 24 * 60 * 60 * 1000 },
      },
    },
    tokens: {
      type: 'array',
      maxItems: MAX_TOKENS,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'role', 'secret'],
        properties: {
          name: { type: 'string' },
          role: { enum: [...TOKEN_ROLES] },
          secret: { type: 'string', minLength: MIN_SECRET_BYTES },
        },
      },
    },
    tlsCertFile: { type: ['string', 'null'] },
    tlsKeyFile: { type: ['string', 'null'] },
    bodyLimit: { type: 'integer', minimum: 1024, maximum: LIMITS.respMaxBulkBytes },
    loglevel: { enum: [...PINO_LEVELS] },
  },
} as const;

// The config schema lives in this file and is exercised by the config tests; no meta-schema compile at start.
const ajv = new Ajv({ strict: true, allErrors: true, validateSchema: false });
const validateConfig = ajv.compile(CONFIG_SCHEMA);

/** Convert one directive's text to its typed value; throws with `where` in the message. */
function convert(name: string, setting: Setting): string | number | boolean | TokenSpec[] {
  const spec = DIRECTIVES[name];
  if (spec === undefined) throw configError(`${setting.where}: unknown directive '${name}'`);
  const text = setting.value;
  switch (spec.kind) {
    case 'string':
      return text;
    case 'bool': {
      const lower = text.toLowerCase();
      if (lower !== 'yes' && lower !== 'no') {
        throw configError(`${setting.where}: '${name}' must be yes or no, got '${text}'`);
      }
      return lower === 'yes';
    }
    case 'int': {
      if (!/^-?\d{1,15}$/.test(text)) {
        throw configError(`${setting.where}: '${name}' must be an integer, got '${text}'`);
      }
      return Number(text);
    }
    case 'memory': {
      const bytes = parseMemory(text);
      if (bytes === null) {
        throw configError(`${setting.where}: '${name}' must be a size such as 64mb, got '${text}'`);
      }
      return bytes;
    }
    case 'enum': {
      const lower = text.toLowerCase();
      if (!spec.values?.includes(lower)) {
        throw configError(
          `${setting.where}: '${name}' must be one of ${spec.values?.join(', ')}, got '${text}'`,
        );
      }
      return lower;
    }
    case 'tokens':
      return parseTokens(text, setting.where);
  }
}

export function toLogLevel(text: string): LogLevel {
  const lower = text.toLowerCase();
  return REDIS_LOGLEVELS[lower] ?? (lower as LogLevel);
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const version = isIP(host);
  if (version === 4) return host.startsWith('127.');
  if (version === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1' || host.startsWith('::ffff:127.');
  return false;
}

/** Load, merge, convert and validate. Throws AofqError AOFQ_ERR_CONFIG_INVALID. */
export function loadConfig(sources: ConfigSources): LoadedConfig {
  const warnings: string[] = [];
  const settings = gatherSettings(sources, warnings);
  const value = (name: string) => {
    const spec = DIRECTIVES[name];
    if (spec === undefined) throw configError(`unknown directive '${name}'`);
    return convert(name, settings.get(name) ?? { value: spec.default, where: `default of ${name}` });
  };
  for (const [name, setting] of settings) {
    const ignored = DIRECTIVES[name]?.ignored;
    if (ignored !== undefined)
      warnings.push(`${setting.where}: '${name}' is accepted and ignored: ${ignored}`);
  }
  const tokens = [...(value('tokens') as TokenSpec[])];
  const requirepass = value('requirepass') as string;
  if (requirepass !== '') {
    if (Buffer.byteLength(requirepass) < MIN_SECRET_BYTES) {
      throw configError(`requirepass: the password is shorter than ${MIN_SECRET_BYTES} bytes`);
    }
    tokens.push({ name: 'default', role: 'admin', secret: requirepass });
  }
  const names = new Set<string>();
  for (const token of tokens) {
    if (names.has(token.name)) throw configError(`tokens: the name '${token.name}' is used twice`);
    names.add(token.name);
  }
  const tlsCert = value('tls-cert-file') as string;
  const tlsKey = value('tls-key-file') as string;
  const config: ServerConfig = {
    aof: {
      dir: value('dir') as string,
      appendonly: value('appendonly') as boolean,
      appendfilename: value('appendfilename') as string,
      appenddirname: value('appenddirname') as string,
      appendfsync: value('appendfsync') as AppendFsync,
      aofLoadTruncated: value('aof-load-truncated') as boolean,
      aofTimestampEnabled: value('aof-timestamp-enabled') as boolean,
      aofUseRdbPreamble: value('aof-use-rdb-preamble') as boolean,
      autoAofRewritePercentage: value('auto-aof-rewrite-percentage') as number,
      autoAofRewriteMinSize: value('auto-aof-rewrite-min-size') as number,
      aofRewriteIncrementalFsync: value('aof-rewrite-incremental-fsync') as boolean,
      aofDisableAutoGc: value('aof-disable-auto-gc') as boolean,
    },
    host: value('host') as string,
    port: value('port') as number,
    respPort: value('resp-port') as number,
    respHost: value('resp-host') as string,
    maxClients: value('maxclients') as number,
    clientQueryBufferLimit: value('client-query-buffer-limit') as number,
    protoMaxBulkLen: value('proto-max-bulk-len') as number,
    ws: {
      maxPayload: value('ws-max-payload') as number,
      eventRingSize: value('ws-event-ring-size') as number,
      releaseOnDisconnect: value('ws-release-on-disconnect') as boolean,
      pingIntervalMs: value('ws-ping-interval-ms') as number,
    },
    tokens,
    tlsCertFile: tlsCert === '' ? null : tlsCert,
    tlsKeyFile: tlsKey === '' ? null : tlsKey,
    bodyLimit: value('body-limit') as number,
    loglevel: toLogLevel(value('loglevel') as string),
  };
  if (!validateConfig(config)) {
    const reasons = (validateConfig.errors ?? []).map((e) => {
      const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
      return `${path || 'config'} ${e.message ?? 'is invalid'}`;
    });
    throw configError(reasons.join('; '));
  }
  if ((config.tlsCertFile === null) !== (config.tlsKeyFile === null)) {
    throw configError('tls-cert-file and tls-key-file must be given together');
  }
  if (!isLoopbackHost(config.host) && config.tokens.length === 0) {
    throw configError(
      `host '${config.host}' is not a loopback address and no token is configured: ` +
        'set tokens (name:role:secret) or requirepass, or bind 127.0.0.1',
    );
  }
  if (config.respPort !== 0 && !isLoopbackHost(config.respHost) && config.tokens.length === 0) {
    throw configError(
      `resp-host '${config.respHost}' is not a loopback address and no token is configured: ` +
        'set tokens (name:role:secret) or requirepass, bind resp-host 127.0.0.1, or disable the port (resp-port 0)',
    );
  }
  const directives: Record<string, string> = {};
  for (const [name, spec] of Object.entries(DIRECTIVES)) {
    directives[name] = settings.get(name)?.value ?? spec.default;
  }
  return { config, directives, warnings };
}

/** Directive values for display: secrets replaced by `***` (or empty when unset). */
export function redactedDirectives(directives: Readonly<Record<string, string>>): Record<string, string> {
  const shown: Record<string, string> = {};
  for (const [name, text] of Object.entries(directives)) {
    shown[name] = DIRECTIVES[name]?.secret && text !== '' ? '***' : text;
  }
  return shown;
}

export function isRuntimeDirective(name: string): boolean {
  return DIRECTIVES[name]?.runtime === true;
}

/** Validate a run-time change of one directive and return its normalized text. */
export function checkRuntimeDirective(name: string, text: string): string {
  if (!Object.hasOwn(DIRECTIVES, name)) throw configError(`unknown directive '${name}'`);
  if (!isRuntimeDirective(name)) throw new AofqError('AOFQ_ERR_CONFIG_READONLY', { directive: name });
  return String(convert(name, { value: text, where: `config set ${name}` }));
}
