/**
 * The store's command table, in Redis's manner: arity (negative: at least that
 * many arguments, the name included), flags, and the key positions
 * (firstKey, lastKey, step; lastKey -1 means the last argument). The RESP port
 * answers COMMAND, COMMAND COUNT and COMMAND DOCS from it.
 */
export type CommandFlag = 'write' | 'readonly' | 'fast';

export interface CommandSpec {
  /** Lower case, as Redis reports it. */
  readonly name: string;
  readonly arity: number;
  readonly flags: readonly CommandFlag[];
  readonly firstKey: number;
  readonly lastKey: number;
  readonly step: number;
  /** One line for COMMAND DOCS. */
  readonly summary: string;
}

function spec(
  name: string,
  arity: number,
  flags: readonly CommandFlag[],
  keys: readonly [number, number, number],
  summary: string,
): CommandSpec {
  return Object.freeze({ name, arity, flags, firstKey: keys[0], lastKey: keys[1], step: keys[2], summary });
}

const ONE_KEY = [1, 1, 1] as const;
const ALL_KEYS = [1, -1, 1] as const;
const NO_KEYS = [0, 0, 0] as const;

export const COMMANDS: readonly CommandSpec[] = Object.freeze([
  // strings
  spec('get', 2, ['readonly', 'fast'], ONE_KEY, 'Returns the string value of a key.'),
  spec('set', -3, ['write'], ONE_KEY, 'Sets the string value of a key, with optional expiry and conditions.'),
  spec('del', -2, ['write'], ALL_KEYS, 'Deletes one or more keys.'),
  spec('exists', -2, ['readonly', 'fast'], ALL_KEYS, 'Counts how many of the given keys exist.'),
  spec('incr', 2, ['write', 'fast'], ONE_KEY, 'Increments the integer value of a key by one.'),
  spec('incrby', 3, ['write', 'fast'], ONE_KEY, 'Increments the integer value of a key by a number.'),
  spec('decr', 2, ['write', 'fast'], ONE_KEY, 'Decrements the integer value of a key by one.'),
  spec('decrby', 3, ['write', 'fast'], ONE_KEY, 'Decrements the integer value of a key by a number.'),
  spec('append', 3, ['write'], ONE_KEY, 'Appends a string to the value of a key.'),
  spec('strlen', 2, ['readonly', 'fast'], ONE_KEY, 'Returns the length of a string value.'),
  // hashes
  spec('hset', -4, ['write', 'fast'], ONE_KEY, 'Sets fields of a hash.'),
  spec('hget', 3, ['readonly', 'fast'], ONE_KEY, 'Returns the value of a field of a hash.'),
  spec('hdel', -3, ['write', 'fast'], ONE_KEY, 'Deletes fields of a hash.'),
  spec('hgetall', 2, ['readonly'], ONE_KEY, 'Returns all fields and values of a hash.'),
  spec('hlen', 2, ['readonly', 'fast'], ONE_KEY, 'Returns the number of fields of a hash.'),
  spec('hincrby', 4, ['write', 'fast'], ONE_KEY, 'Increments the integer value of a field of a hash.'),
  // time to live
  spec('expire', -3, ['write', 'fast'], ONE_KEY, 'Sets the time to live of a key, in seconds.'),
  spec('pexpire', -3, ['write', 'fast'], ONE_KEY, 'Sets the time to live of a key, in milliseconds.'),
  spec(
    'pexpireat',
    -3,
    ['write', 'fast'],
    ONE_KEY,
    'Sets the expiry of a key as a Unix time in milliseconds.',
  ),
  spec('persist', 2, ['write', 'fast'], ONE_KEY, 'Removes the time to live of a key.'),
  spec('ttl', 2, ['readonly', 'fast'], ONE_KEY, 'Returns the time to live of a key, in seconds.'),
  spec('pttl', 2, ['readonly', 'fast'], ONE_KEY, 'Returns the time to live of a key, in milliseconds.'),
  // keyspace and connection
  spec('type', 2, ['readonly', 'fast'], ONE_KEY, 'Returns the type of the value of a key.'),
  spec('dbsize', 1, ['readonly', 'fast'], NO_KEYS, 'Returns the number of keys.'),
  spec('flushall', -1, ['write'], NO_KEYS, 'Deletes every key.'),
  spec('scan', -2, ['readonly'], NO_KEYS, 'Iterates over the keys.'),
  spec('select', 2, ['fast'], NO_KEYS, 'Selects the database; only database 0 exists.'),
  spec('ping', -1, ['fast'], NO_KEYS, 'Returns PONG, or the given message.'),
  spec('echo', 2, ['fast'], NO_KEYS, 'Returns the given message.'),
]);

const BY_NAME: ReadonlyMap<string, CommandSpec> = new Map(COMMANDS.map((command) => [command.name, command]));

/** The command named `name` (any case), or undefined. */
export function commandSpec(name: string): CommandSpec | undefined {
  return BY_NAME.get(name.toLowerCase());
}

/** Does the command named `name` (any case) change the keyspace? Unknown commands are not writes. */
export function isWriteCommand(name: string): boolean {
  return commandSpec(name)?.flags.includes('write') ?? false;
}

/** Names of the records the store logs and replays (upper case). */
export const RECORD_NAMES: ReadonlySet<string> = new Set([
  'SET',
  'DEL',
  'PEXPIREAT',
  'PERSIST',
  'APPEND',
  'HSET',
  'HDEL',
  'FLUSHALL',
]);
