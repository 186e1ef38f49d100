/**
 * The RESP port's server-level commands: what a Redis client or tool sends
 * besides the key-value commands, answered with Redis's replies and Redis's
 * error texts. Owned here: AUTH and HELLO (tokens, RESP2 only), CLIENT,
 * COMMAND (from the store's command table plus ours), INFO (Redis's sections
 * and field names), CONFIG GET/SET, WAITAOF, BGREWRITEAOF, PING, ECHO, SELECT.
 * Everything else goes to the node's one command path (`node.command`).
 *
 * The per-connection state (`ClientState`) and the port-wide state
 * (`RespServerState`) live here too; `resp-port.ts` owns the sockets.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import os from 'node:os';
import type { AofConfig, AppendFsync } from '../aof/config.js';
import { AofqError, isAofqError } from '../errors/index.js';
import type { AofqNode } from '../node/node.js';
import { ErrorReply, OK, type RespValue, SimpleString } from '../resp/types.js';
import { COMMANDS, type CommandSpec, globMatch } from '../store/index.js';
import { assert } from '../util/assert.js';
import type { Logger } from '../util/logger.js';

/** The Redis version aofq answers as: the commands and replies it follows are Redis 7.0's. */
export const REDIS_COMPAT_VERSION = '7.0.0';

/** A token that AUTH accepts. `name` is the user name of `AUTH <user> <token>`. */
export interface RespToken {
  readonly name?: string;
  readonly secret: string;
  /** `admin` (or no role) may run every command; other roles may not run CONFIG SET, FLUSHALL, BGREWRITEAOF. */
  readonly role?: string;
}

/** One connected client, as CLIENT, AUTH and WAITAOF see it. */
export interface ClientState {
  readonly id: number;
  readonly remoteAddress: string;
  readonly localAddress: string;
  readonly connectedAtMs: number;
  lastCommandAtMs: number;
  lastCommand: string;
  name: string;
  libName: string;
  libVersion: string;
  authenticated: boolean;
  user: string;
  /** The role of the token this client authenticated with; null: unrestricted. */
  role: string | null;
  /** LSN of the last record this client's commands appended (Redis's c->woff); 0 if none. */
  lastWriteLsn: number;
  /** Called once when the connection closes (unblocks WAITAOF). */
  readonly onClose: Set<() => void>;
  /** Bytes held unparsed, for CLIENT INFO's qbuf. */
  queryBufferBytes(): number;
  /** Bytes queued on the socket, for CLIENT INFO's omem. */
  outputBytes(): number;
}

export interface RespServerStats {
  totalConnections: number;
  rejectedConnections: number;
  totalCommands: number;
  netInputBytes: number;
  netOutputBytes: number;
  /** Commands processed during the last whole second. */
  opsPerSecond: number;
}

/** The port-wide state the commands read and change. */
export interface RespServerState {
  readonly node: AofqNode;
  readonly logger: Logger;
  readonly version: string;
  readonly runId: string;
  readonly host: string;
  /** The bound port (set once listening). */
  port: number;
  maxClients: number;
  queryBufferLimit: number;
  readonly maxBulkBytes: number;
  readonly clients: Map<number, ClientState>;
  readonly stats: RespServerStats;
  /** Clients waiting in WAITAOF. */
  blockedClients: number;
  readonly aofConfig: AofConfig | undefined;
  readonly getConfig: (() => Readonly<Record<string, string>>) | undefined;
  readonly setConfig: ((directive: string, value: string) => boolean) | undefined;
  /** Token secrets as SHA-256 digests, compared in constant time. */
  readonly tokens: readonly HashedToken[];
}

export interface HashedToken {
  readonly name: string | undefined;
  readonly digest: Buffer;
  readonly role: string | null;
}

export function hashTokens(tokens: readonly (string | RespToken)[]): HashedToken[] {
  return tokens.map((token) => {
    const spec = typeof token === 'string' ? { secret: token } : token;
    if (spec.secret.length === 0) {
      throw new AofqError('AOFQ_ERR_CONFIG_INVALID', { reason: 'a RESP token secret must not be empty' });
    }
    return { name: spec.name, digest: sha256(Buffer.from(spec.secret, 'utf8')), role: spec.role ?? null };
  });
}

function sha256(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** Returned by `execute` for a command that is not a server-level one. */
export const NOT_SERVER_COMMAND: unique symbol = Symbol('not a server command');

type Reply = RespValue | Promise<RespValue>;
type Handler = (state: RespServerState, client: ClientState, argv: readonly Buffer[]) => Reply;

interface ServerCommand {
  readonly spec: Omit<CommandSpec, 'flags'> & { readonly flags: readonly string[]; readonly group: string };
  /** Allowed before AUTH. */
  readonly noAuth: boolean;
  readonly handler: Handler;
}

/** Commands that a client may send before it has authenticated: AUTH, HELLO, QUIT. */
export function allowedBeforeAuth(name: string): boolean {
  return SERVER_COMMANDS.get(name)?.noAuth ?? false;
}

/**
 * Run a server-level command, or return NOT_SERVER_COMMAND. Throws AofqError
 * for a refused command (the caller turns it into the error reply).
 */
export function executeServerCommand(
  state: RespServerState,
  client: ClientState,
  name: string,
  argv: readonly Buffer[],
): Reply | typeof NOT_SERVER_COMMAND {
  const command = SERVER_COMMANDS.get(name);
  if (command === undefined) {
    if (name === 'flushall') requireAdmin(client, 'flushall');
    return NOT_SERVER_COMMAND;
  }
  checkArity(command.spec.arity, argv.length, name);
  return command.handler(state, client, argv);
}

function checkArity(arity: number, argc: number, name: string): void {
  if ((arity > 0 && argc !== arity) || (arity < 0 && argc < -arity)) {
    throw new AofqError('AOFQ_ERR_CMD_ARITY', { command: name });
  }
}

function requireAdmin(client: ClientState, action: string): void {
  if (client.role !== null && client.role !== 'admin') {
    throw new AofqError('AOFQ_ERR_AUTH_FORBIDDEN', { action });
  }
}

function text(arg: Buffer | undefined): string {
  return arg === undefined ? '' : arg.toString('utf8');
}

function lower(arg: Buffer | undefined): string {
  return arg === undefined ? '' : arg.toString('latin1').toLowerCase();
}

function bulk(value: string): Buffer {
  return Buffer.from(value, 'utf8');
}

/** Redis's string2ll: an optional '-', digits, no leading zeros or '+', within 64 bits (here: safe integers). */
function parseInteger(arg: Buffer | undefined): number | undefined {
  const value = text(arg);
  if (!/^-?(0|[1-9][0-9]{0,18})$/.test(value) || value === '-0') return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

function badArgument(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_RESP_BAD_ARGUMENT', { reason });
}

// --- AUTH and HELLO ---

/** Authenticate `client` with `secret` (and `user`, or any user when undefined). */
function authenticate(state: RespServerState, client: ClientState, user: string | undefined, secret: Buffer) {
  if (state.tokens.length === 0) {
    if (user === undefined) throw new AofqError('AOFQ_ERR_RESP_AUTH_NOT_CONFIGURED');
    // Redis's default user has no password: any password is accepted for it.
    if (user !== 'default') throw new AofqError('AOFQ_ERR_RESP_WRONGPASS');
    client.authenticated = true;
    client.user = 'default';
    return;
  }
  const digest = sha256(secret);
  let found: HashedToken | undefined;
  // Compare against every token, with no early exit, in constant time per token.
  for (const token of state.tokens) {
    const nameMatches = user === undefined || user === 'default' || user === token.name;
    if (timingSafeEqual(token.digest, digest) && nameMatches && found === undefined) found = token;
  }
  if (found === undefined) throw new AofqError('AOFQ_ERR_RESP_WRONGPASS');
  client.authenticated = true;
  client.user = user ?? found.name ?? 'default';
  client.role = found.role;
}

const auth: Handler = (state, client, argv) => {
  if (argv.length > 3) throw new AofqError('AOFQ_ERR_CMD_SYNTAX');
  if (argv.length === 2) authenticate(state, client, undefined, argv[1]!);
  else authenticate(state, client, text(argv[1]), argv[2]!);
  return OK;
};

const hello: Handler = (state, client, argv) => {
  if (argv.length >= 2) {
    const version = parseInteger(argv[1]);
    if (version === undefined) throw badArgument('Protocol version is not an integer or out of range');
    // Only RESP2: clients that ask for RESP3 fall back to RESP2 on NOPROTO.
    if (version !== 2) throw new AofqError('AOFQ_ERR_RESP_NOPROTO');
  }
  let authUser: string | undefined;
  let authSecret: Buffer | undefined;
  let setName: string | undefined;
  for (let i = 2; i < argv.length; i++) {
    const option = lower(argv[i]);
    const left = argv.length - i - 1;
    if (option === 'auth' && left >= 2) {
      authUser = text(argv[i + 1]);
      authSecret = argv[i + 2];
      i += 2;
    } else if (option === 'setname' && left >= 1) {
      setName = text(argv[i + 1]);
      i += 1;
    } else {
      throw badArgument(`Syntax error in HELLO option '${text(argv[i])}'`);
    }
  }
  if (authSecret !== undefined) authenticate(state, client, authUser, authSecret);
  if (!client.authenticated) throw new AofqError('AOFQ_ERR_RESP_HELLO_NOAUTH');
  if (setName !== undefined) client.name = validClientName(setName);
  return [
    bulk('server'),
    bulk('redis'),
    bulk('version'),
    bulk(REDIS_COMPAT_VERSION),
    bulk('proto'),
    2,
    bulk('id'),
    client.id,
    bulk('mode'),
    bulk('standalone'),
    bulk('role'),
    bulk('master'),
    bulk('modules'),
    [],
  ];
};

// --- PING, ECHO, SELECT ---

const PONG = new SimpleString('PONG');

const ping: Handler = (_state, _client, argv) => {
  if (argv.length > 2) throw new AofqError('AOFQ_ERR_CMD_ARITY', { command: 'ping' });
  return argv.length === 2 ? argv[1]! : PONG;
};

const echo: Handler = (_state, _client, argv) => argv[1]!;

const select: Handler = (_state, _client, argv) => {
  const index = parseInteger(argv[1]);
  if (index === undefined) throw new AofqError('AOFQ_ERR_CMD_NOT_INTEGER');
  if (index !== 0) throw new AofqError('AOFQ_ERR_CMD_DB_INDEX');
  return OK;
};

// --- CLIENT ---

function validClientName(name: string): string {
  // Redis: printable ASCII only, no spaces.
  if (!/^[!-~]*$/.test(name)) {
    throw badArgument('Client names cannot contain spaces, newlines or special characters.');
  }
  return name;
}

function clientInfoLine(state: RespServerState, client: ClientState, nowMs: number): string {
  const fields = [
    `id=${client.id}`,
    `addr=${client.remoteAddress}`,
    `laddr=${client.localAddress}`,
    `fd=-1`,
    `name=${client.name}`,
    `age=${Math.floor((nowMs - client.connectedAtMs) / 1000)}`,
    `idle=${Math.floor((nowMs - client.lastCommandAtMs) / 1000)}`,
    'flags=N',
    'db=0',
    'sub=0',
    'psub=0',
    'ssub=0',
    'multi=-1',
    `qbuf=${client.queryBufferBytes()}`,
    `qbuf-free=${Math.max(0, state.queryBufferLimit - client.queryBufferBytes())}`,
    `omem=${client.outputBytes()}`,
    `cmd=${client.lastCommand}`,
    `user=${client.user}`,
    'redir=-1',
    'resp=2',
    `lib-name=${client.libName}`,
    `lib-ver=${client.libVersion}`,
  ];
  return `${fields.join(' ')}\n`;
}

const CLIENT_HELP = [
  'CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'GETNAME',
  '    Return the name of the current connection.',
  'ID',
  '    Return the ID of the current connection.',
  'INFO',
  '    Return information about the current client connection.',
  'LIST',
  '    Return information about client connections.',
  'SETNAME <name>',
  '    Assign the name <name> to the current connection.',
  'SETINFO <option> <value>',
  '    Set client meta attr. Options are: LIB-NAME, LIB-VER.',
  'NO-EVICT (ON|OFF)',
  'NO-TOUCH (ON|OFF)',
  '    Accepted and ignored: aofq never evicts.',
  'HELP',
  '    Print this help.',
];

const client: Handler = (state, self, argv) => {
  const sub = lower(argv[1]);
  const arity = (n: number): void => {
    if (argv.length !== n) throw new AofqError('AOFQ_ERR_CMD_ARITY', { command: `client|${sub}` });
  };
  switch (sub) {
    case 'id':
      arity(2);
      return self.id;
    case 'getname':
      arity(2);
      return self.name === '' ? null : bulk(self.name);
    case 'setname':
      arity(3);
      self.name = validClientName(text(argv[2]));
      return OK;
    case 'info':
      arity(2);
      return bulk(clientInfoLine(state, self, Date.now()));
    case 'list': {
      const now = Date.now();
      let lines = '';
      for (const other of state.clients.values()) lines += clientInfoLine(state, other, now);
      return bulk(lines);
    }
    case 'setinfo': {
      arity(4);
      const attribute = lower(argv[2]);
      const value = text(argv[3]);
      if (attribute !== 'lib-name' && attribute !== 'lib-ver') {
        throw badArgument(`Unrecognized option '${text(argv[2])}'`);
      }
      if (!/^[!-~]*$/.test(value)) {
        throw badArgument(`${attribute} cannot contain spaces, newlines or special characters.`);
      }
      if (attribute === 'lib-name') self.libName = value;
      else self.libVersion = value;
      return OK;
    }
    case 'no-evict':
    case 'no-touch': {
      arity(3);
      const flag = lower(argv[2]);
      if (flag !== 'on' && flag !== 'off') throw new AofqError('AOFQ_ERR_CMD_SYNTAX');
      return OK;
    }
    case 'help':
      return CLIENT_HELP.map((line) => new SimpleString(line));
    default:
      throw new AofqError('AOFQ_ERR_RESP_UNKNOWN_SUBCOMMAND', {
        subcommand: text(argv[1]),
        command: 'CLIENT',
      });
  }
};

// --- COMMAND ---

interface CommandEntry {
  readonly name: string;
  readonly arity: number;
  readonly flags: readonly string[];
  readonly firstKey: number;
  readonly lastKey: number;
  readonly step: number;
  readonly summary: string;
  readonly group: string;
}

let commandTable: readonly CommandEntry[] | undefined;

/** The store's commands and ours; ours win for names in both (PING, ECHO, SELECT). */
function allCommands(): readonly CommandEntry[] {
  if (commandTable !== undefined) return commandTable;
  const byName = new Map<string, CommandEntry>();
  for (const spec of COMMANDS) byName.set(spec.name, { ...spec, group: storeGroup(spec.name) });
  for (const command of SERVER_COMMANDS.values()) byName.set(command.spec.name, command.spec);
  commandTable = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return commandTable;
}

function storeGroup(name: string): string {
  if (name.startsWith('h')) return 'hash';
  if (['get', 'set', 'incr', 'incrby', 'decr', 'decrby', 'append', 'strlen'].includes(name)) return 'string';
  if (['ping', 'echo', 'select'].includes(name)) return 'connection';
  if (['dbsize', 'flushall'].includes(name)) return 'server';
  return 'generic';
}

function aclCategories(entry: CommandEntry): SimpleString[] {
  const categories: string[] = [];
  if (entry.flags.includes('write')) categories.push('@write');
  if (entry.flags.includes('readonly')) categories.push('@read');
  if (entry.flags.includes('fast')) categories.push('@fast');
  else categories.push('@slow');
  categories.push(`@${entry.group === 'generic' ? 'keyspace' : entry.group}`);
  return categories.map((category) => new SimpleString(category));
}

/** One entry of COMMAND / COMMAND INFO, in Redis 7's ten-element form. */
function commandInfo(entry: CommandEntry): RespValue {
  return [
    bulk(entry.name),
    entry.arity,
    entry.flags.map((flag) => new SimpleString(flag)),
    entry.firstKey,
    entry.lastKey,
    entry.step,
    aclCategories(entry),
    [],
    [],
    [],
  ];
}

function commandDocs(entry: CommandEntry): RespValue {
  return [
    bulk('summary'),
    bulk(entry.summary),
    bulk('since'),
    bulk('1.0.0'),
    bulk('group'),
    bulk(entry.group),
  ];
}

const command: Handler = (_state, _client, argv) => {
  const table = allCommands();
  if (argv.length === 1) return table.map(commandInfo);
  const sub = lower(argv[1]);
  const named = (): (CommandEntry | undefined)[] =>
    argv.slice(2).map((arg) => table.find((entry) => entry.name === lower(arg)));
  switch (sub) {
    case 'count':
      if (argv.length !== 2) throw new AofqError('AOFQ_ERR_CMD_ARITY', { command: 'command|count' });
      return table.length;
    case 'list':
      return table.map((entry) => bulk(entry.name));
    case 'info':
      if (argv.length === 2) return table.map(commandInfo);
      return named().map((entry) => (entry === undefined ? null : commandInfo(entry)));
    case 'docs': {
      const entries = argv.length === 2 ? table : named().filter((entry) => entry !== undefined);
      const reply: RespValue[] = [];
      for (const entry of entries) reply.push(bulk(entry.name), commandDocs(entry));
      return reply;
    }
    case 'help':
      return [
        'COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
        '(no subcommand)',
        "    Return details about all aofq's commands.",
        'COUNT',
        'DOCS [<command-name> ...]',
        'INFO [<command-name> ...]',
        'LIST',
        'HELP',
      ].map((line) => new SimpleString(line));
    default:
      throw new AofqError('AOFQ_ERR_RESP_UNKNOWN_SUBCOMMAND', {
        subcommand: text(argv[1]),
        command: 'COMMAND',
      });
  }
};

// --- INFO ---

type Fields = Record<string, string | number>;

const SECTIONS: readonly (readonly [string, string])[] = [
  ['server', 'Server'],
  ['clients', 'Clients'],
  ['memory', 'Memory'],
  ['persistence', 'Persistence'],
  ['stats', 'Stats'],
  ['replication', 'Replication'],
  ['cpu', 'CPU'],
  ['keyspace', 'Keyspace'],
];

function humanBytes(n: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n}B` : `${value.toFixed(2)}${units[unit]}`;
}

function sectionFields(state: RespServerState, section: string): Fields {
  const node = state.node;
  switch (section) {
    case 'server': {
      const uptime = Math.floor(process.uptime());
      return {
        redis_version: REDIS_COMPAT_VERSION,
        aofq_version: state.version,
        redis_mode: 'standalone',
        os: `${os.type()} ${os.release()} ${os.arch()}`,
        arch_bits: process.arch.endsWith('64') ? 64 : 32,
        multiplexing_api: 'epoll',
        node_version: process.versions.node,
        process_id: process.pid,
        run_id: state.runId,
        tcp_port: state.port,
        uptime_in_seconds: uptime,
        uptime_in_days: Math.floor(uptime / 86400),
      };
    }
    case 'clients':
      return {
        connected_clients: state.clients.size,
        maxclients: state.maxClients,
        blocked_clients: state.blockedClients,
      };
    case 'memory': {
      const memory = process.memoryUsage();
      const used = memory.heapUsed + memory.external;
      return {
        used_memory: used,
        used_memory_human: humanBytes(used),
        used_memory_rss: memory.rss,
        used_memory_rss_human: humanBytes(memory.rss),
        maxmemory: 0,
        maxmemory_human: '0B',
        maxmemory_policy: 'noeviction',
      };
    }
    case 'persistence': {
      const fields: Fields = { ...node.aof.info() };
      if (!('loading' in fields)) return { loading: 0, ...fields };
      return fields;
    }
    case 'stats':
      return {
        total_connections_received: state.stats.totalConnections,
        total_commands_processed: state.stats.totalCommands,
        instantaneous_ops_per_sec: state.stats.opsPerSecond,
        total_net_input_bytes: state.stats.netInputBytes,
        total_net_output_bytes: state.stats.netOutputBytes,
        rejected_connections: state.stats.rejectedConnections,
      };
    case 'replication':
      return { role: 'master', connected_slaves: 0, master_failover_state: 'no-failover' };
    case 'cpu': {
      const cpu = process.cpuUsage();
      return {
        used_cpu_sys: (cpu.system / 1e6).toFixed(6),
        used_cpu_user: (cpu.user / 1e6).toFixed(6),
      };
    }
    case 'keyspace': {
      const { keys, expires } = node.store.keyspaceInfo();
      return keys > 0 ? { db0: `keys=${keys},expires=${expires},avg_ttl=0` } : {};
    }
    default:
      return {};
  }
}

/** INFO's text: `# Title\r\nfield:value\r\n` per section, sections separated by an empty line. */
export function infoText(state: RespServerState, requested: readonly string[]): string {
  const wanted = new Set(requested.map((name) => name.toLowerCase()));
  const everything =
    wanted.size === 0 || wanted.has('all') || wanted.has('everything') || wanted.has('default');
  const parts: string[] = [];
  for (const [name, title] of SECTIONS) {
    if (!everything && !wanted.has(name)) continue;
    let part = `# ${title}\r\n`;
    for (const [field, value] of Object.entries(sectionFields(state, name))) part += `${field}:${value}\r\n`;
    parts.push(part);
  }
  return parts.join('\r\n');
}

const info: Handler = (state, _client, argv) =>
  bulk(
    infoText(
      state,
      argv.slice(1).map((arg) => lower(arg)),
    ),
  );

// --- CONFIG ---

interface Directive {
  get(state: RespServerState): string;
  /** Read from the AofConfig given to the port; absent without it. */
  fromAofConfig?: boolean;
  /** Validate `value`; return the function that applies it. Absent: read-only at run time. */
  prepare?(state: RespServerState, value: string): () => void;
}

const APPENDFSYNC_VALUES: readonly AppendFsync[] = ['always', 'everysec', 'no'];

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

const MEMORY_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1000,
  kb: 1024,
  m: 1000 * 1000,
  mb: 1024 * 1024,
  g: 1000 * 1000 * 1000,
  gb: 1024 * 1024 * 1024,
};

/** Redis's memory notation: `64mb`, `1gb`, `1048576`. */
export function parseMemory(value: string): number | undefined {
  const match = /^([0-9]{1,15})([a-z]{0,2})$/i.exec(value);
  if (match === null) return undefined;
  const unit = MEMORY_UNITS[match[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Number(match[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

function configValueError(directive: string, reason: string): AofqError {
  return new AofqError('AOFQ_ERR_RESP_CONFIG_BAD_VALUE', { directive, reason });
}

function aofDirective(read: (cfg: AofConfig) => string): Directive {
  return {
    get: (state) => (state.aofConfig === undefined ? '' : read(state.aofConfig)),
    fromAofConfig: true,
  };
}

const DIRECTIVES: ReadonlyMap<string, Directive> = new Map<string, Directive>([
  [
    'appendfsync',
    {
      get: (state) => state.node.aof.appendFsync,
      prepare: (state, value) => {
        const policy = value.toLowerCase() as AppendFsync;
        if (!APPENDFSYNC_VALUES.includes(policy)) {
          throw configValueError(
            'appendfsync',
            'argument(s) must be one of the following: always, everysec, no',
          );
        }
        return () => state.node.aof.setAppendFsync(policy);
      },
    },
  ],
  ['appendonly', { get: (state) => yesNo(state.node.aof.info().aof_enabled !== 0) }],
  [
    'maxclients',
    {
      get: (state) => String(state.maxClients),
      prepare: (state, value) => {
        const n = Number(value);
        if (!/^[0-9]{1,9}$/.test(value) || n < 1) {
          throw configValueError('maxclients', 'argument must be between 1 and 1000000000 inclusive');
        }
        return () => {
          state.maxClients = n;
        };
      },
    },
  ],
  [
    'client-query-buffer-limit',
    {
      get: (state) => String(state.queryBufferLimit),
      prepare: (state, value) => {
        const bytes = parseMemory(value);
        // Redis's floor: 1mb; never above what one bulk plus its framing needs.
        if (bytes === undefined || bytes < 1024 * 1024) {
          throw configValueError(
            'client-query-buffer-limit',
            'argument must be a memory value of at least 1mb',
          );
        }
        return () => {
          state.queryBufferLimit = bytes;
        };
      },
    },
  ],
  ['proto-max-bulk-len', { get: (state) => String(state.maxBulkBytes) }],
  ['port', { get: (state) => String(state.port) }],
  ['bind', { get: (state) => state.host }],
  ['save', { get: () => '' }],
  ['databases', { get: () => '1' }],
  ['timeout', { get: () => '0' }],
  ['dir', aofDirective((cfg) => cfg.dir)],
  ['appendfilename', aofDirective((cfg) => cfg.appendfilename)],
  ['appenddirname', aofDirective((cfg) => cfg.appenddirname)],
  ['aof-load-truncated', aofDirective((cfg) => yesNo(cfg.aofLoadTruncated))],
  ['aof-timestamp-enabled', aofDirective((cfg) => yesNo(cfg.aofTimestampEnabled))],
  ['aof-use-rdb-preamble', aofDirective((cfg) => yesNo(cfg.aofUseRdbPreamble))],
  ['auto-aof-rewrite-percentage', aofDirective((cfg) => String(cfg.autoAofRewritePercentage))],
  ['auto-aof-rewrite-min-size', aofDirective((cfg) => String(cfg.autoAofRewriteMinSize))],
  ['aof-rewrite-incremental-fsync', aofDirective((cfg) => yesNo(cfg.aofRewriteIncrementalFsync))],
  ['aof-disable-auto-gc', aofDirective((cfg) => yesNo(cfg.aofDisableAutoGc))],
]);

/** Every directive CONFIG GET knows, with its current value: the server layer's, then the live ones. */
function configValues(state: RespServerState): Map<string, string> {
  const values = new Map<string, string>();
  const external = state.getConfig?.() ?? {};
  for (const [name, value] of Object.entries(external)) {
    // The server layer's secrets stay out of CONFIG GET.
    if (name === 'requirepass' || name === 'tokens') continue;
    values.set(name.toLowerCase(), value);
  }
  for (const [name, directive] of DIRECTIVES) {
    // Without the AOF configuration, the server layer's values (if any) stand.
    if (directive.fromAofConfig === true && state.aofConfig === undefined) continue;
    values.set(name, directive.get(state));
  }
  return values;
}

function configGet(state: RespServerState, patterns: readonly string[]): RespValue {
  const values = configValues(state);
  const names = [...values.keys()].sort();
  const reply: RespValue[] = [];
  const seen = new Set<string>();
  for (const pattern of patterns.map((p) => p.toLowerCase())) {
    for (const name of names) {
      if (seen.has(name) || !globMatch(pattern, name)) continue;
      seen.add(name);
      reply.push(bulk(name), bulk(values.get(name)!));
    }
  }
  return reply;
}

function configSet(state: RespServerState, client: ClientState, argv: readonly Buffer[]): RespValue {
  if (argv.length < 4 || argv.length % 2 !== 0) {
    throw new AofqError('AOFQ_ERR_CMD_ARITY', { command: 'config|set' });
  }
  requireAdmin(client, 'config set');
  const pairs: [string, string][] = [];
  const seen = new Set<string>();
  for (let i = 2; i < argv.length; i += 2) {
    const name = lower(argv[i]);
    if (seen.has(name)) throw configValueError(name, 'duplicate parameter');
    seen.add(name);
    pairs.push([name, text(argv[i + 1])]);
  }
  // All or nothing: validate every pair before applying any of ours.
  const apply: (() => void)[] = [];
  const external: [string, string][] = [];
  for (const [name, value] of pairs) {
    const directive = DIRECTIVES.get(name);
    if (directive?.prepare !== undefined) {
      apply.push(directive.prepare(state, value));
    } else if (directive !== undefined || configValues(state).has(name)) {
      if (state.setConfig === undefined) throw new AofqError('AOFQ_ERR_CONFIG_READONLY', { directive: name });
      external.push([name, value]);
    } else {
      throw new AofqError('AOFQ_ERR_RESP_CONFIG_UNKNOWN', { directive: name });
    }
  }
  for (const [name, value] of external) {
    if (!state.setConfig!(name, value)) throw new AofqError('AOFQ_ERR_CONFIG_READONLY', { directive: name });
  }
  for (const change of apply) change();
  state.logger.info({ changes: Object.fromEntries(pairs), client: client.id }, 'CONFIG SET');
  return OK;
}

const config: Handler = (state, client, argv) => {
  const sub = lower(argv[1]);
  switch (sub) {
    case 'get':
      if (argv.length < 3) throw new AofqError('AOFQ_ERR_CMD_ARITY', { command: 'config|get' });
      return configGet(
        state,
        argv.slice(2).map((arg) => text(arg)),
      );
    case 'set':
      return configSet(state, client, argv);
    case 'resetstat':
      state.stats.totalCommands = 0;
      state.stats.totalConnections = 0;
      state.stats.rejectedConnections = 0;
      state.stats.netInputBytes = 0;
      state.stats.netOutputBytes = 0;
      return OK;
    case 'rewrite':
      throw badArgument('The server is running without a config file');
    case 'help':
      return [
        'CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
        'GET <pattern>',
        'SET <directive> <value>',
        '    Run-time directives: appendfsync, maxclients, client-query-buffer-limit.',
        'RESETSTAT',
        'HELP',
      ].map((line) => new SimpleString(line));
    default:
      throw new AofqError('AOFQ_ERR_RESP_UNKNOWN_SUBCOMMAND', {
        subcommand: text(argv[1]),
        command: 'CONFIG',
      });
  }
};

// --- WAITAOF and BGREWRITEAOF ---

/** Node's setTimeout takes at most a signed 32-bit delay. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * WAITAOF numlocal numreplicas timeout, as Redis 7.2: wait until this client's
 * last write is fsynced locally (numlocal 1) and on numreplicas replicas (there
 * are none yet, so any numreplicas > 0 waits for the timeout; 0 = forever),
 * then reply [local acks, replica acks].
 */
const waitaof: Handler = (state, client, argv) => {
  const numLocal = parseInteger(argv[1]);
  if (numLocal === undefined) throw new AofqError('AOFQ_ERR_CMD_NOT_INTEGER');
  if (numLocal < 0 || numLocal > 1) throw badArgument('value is out of range, value must between 0 and 1');
  const numReplicas = parseInteger(argv[2]);
  if (numReplicas === undefined) throw new AofqError('AOFQ_ERR_CMD_NOT_INTEGER');
  if (numReplicas < 0) throw badArgument('value is out of range, must be positive');
  const timeoutMs = parseInteger(argv[3]);
  if (timeoutMs === undefined) throw badArgument('timeout is not an integer or out of range');
  if (timeoutMs < 0) throw badArgument('timeout is negative');
  const aof = state.node.aof;
  if (numLocal > 0 && aof.info().aof_enabled === 0) throw new AofqError('AOFQ_ERR_RESP_WAITAOF_NO_AOF');

  const target = client.lastWriteLsn;
  const localAcked = (): number => (aof.fsyncedLsn >= target ? 1 : 0);
  if (localAcked() >= numLocal && numReplicas === 0) return [localAcked(), 0];

  return new Promise<RespValue>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    state.blockedClients++;
    const finish = (durable: boolean): void => {
      if (finished) return;
      finished = true;
      state.blockedClients--;
      assert(state.blockedClients >= 0, 'blocked clients are counted once each');
      if (timer !== undefined) clearTimeout(timer);
      client.onClose.delete(onClose);
      resolve([durable ? 1 : localAcked(), 0]);
    };
    const onClose = (): void => finish(false);
    client.onClose.add(onClose);
    if (numReplicas === 0) {
      // fdatasync'ed, whatever the policy: under appendfsync no that is at rotation or close only.
      aof.waitFsynced(target).then(
        () => finish(true),
        () => finish(false),
      );
    }
    if (timeoutMs > 0) timer = setTimeout(() => finish(false), Math.min(timeoutMs, MAX_TIMER_MS));
  });
};

/**
 * BGREWRITEAOF: Redis's replies ("... started", "... scheduled"), or its
 * error while one runs; the rewrite itself goes on in the background.
 */
const bgrewriteaof: Handler = async (state, client) => {
  requireAdmin(client, 'bgrewriteaof');
  const { message } = await state.node.aof.rewrite();
  return new SimpleString(message);
};

// --- the table ---

function server(
  name: string,
  arity: number,
  flags: readonly string[],
  group: string,
  summary: string,
  handler: Handler,
  noAuth = false,
): [string, ServerCommand] {
  return [
    name,
    { spec: { name, arity, flags, firstKey: 0, lastKey: 0, step: 0, summary, group }, noAuth, handler },
  ];
}

/** The port answers QUIT itself, before this table: it closes the connection after the reply. */
const quit: Handler = () => OK;

const SERVER_COMMANDS: ReadonlyMap<string, ServerCommand> = new Map([
  server(
    'auth',
    -2,
    ['noscript', 'loading', 'stale', 'fast', 'no_auth'],
    'connection',
    'Authenticates the connection.',
    auth,
    true,
  ),
  server(
    'hello',
    -1,
    ['noscript', 'loading', 'stale', 'fast', 'no_auth'],
    'connection',
    'Handshakes with the server (RESP2 only).',
    hello,
    true,
  ),
  server(
    'quit',
    -1,
    ['noscript', 'loading', 'stale', 'fast', 'no_auth'],
    'connection',
    'Closes the connection.',
    quit,
    true,
  ),
  server('ping', -1, ['fast'], 'connection', 'Returns PONG, or the given message.', ping),
  server('echo', 2, ['fast'], 'connection', 'Returns the given message.', echo),
  server(
    'select',
    2,
    ['loading', 'stale', 'fast'],
    'connection',
    'Selects the database; only database 0 exists.',
    select,
  ),
  server(
    'client',
    -2,
    ['loading', 'stale'],
    'connection',
    'Manages the connection (ID, SETNAME, INFO, ...).',
    client,
  ),
  server('command', -1, ['loading', 'stale'], 'server', 'Returns details about the commands.', command),
  server(
    'info',
    -1,
    ['loading', 'stale'],
    'server',
    "Returns the server's information and statistics.",
    info,
  ),
  server(
    'config',
    -2,
    ['admin', 'noscript', 'loading', 'stale'],
    'server',
    'Gets or sets configuration directives.',
    config,
  ),
  server(
    'waitaof',
    4,
    ['noscript'],
    'generic',
    'Waits until the writes of this connection are fsynced.',
    waitaof,
  ),
  server(
    'bgrewriteaof',
    1,
    ['admin', 'noscript'],
    'server',
    'Rewrites the append-only file in the background.',
    bgrewriteaof,
  ),
]);

/** The reply for an error thrown by a command: Redis's error line for AofqError, a generic one otherwise. */
export function errorReply(error: unknown, logger: Logger): ErrorReply {
  if (isAofqError(error)) return new ErrorReply(error.toResp());
  logger.error(
    { err: error instanceof Error ? (error.stack ?? error.message) : String(error) },
    'RESP command failed',
  );
  return new ErrorReply(new AofqError('AOFQ_ERR_INTERNAL').toResp());
}
