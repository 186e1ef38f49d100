/**
 * The key-value store: Redis's strings, hashes and TTLs in one database, as a
 * deterministic state machine. It owns command semantics and replies (Redis's
 * own, error texts included), the effect records that the AOF logs, their
 * replay, active and lazy expiry, digests and snapshot records. It never
 * touches files, sockets or clocks: the leader's time arrives in ApplyContext.
 *
 * Effects. `execute` validates a command completely before it changes
 * anything, applies it, and returns the records to log, with every decision
 * made absolute: EXPIRE becomes PEXPIREAT (or DEL when the time is past), SET
 * EX/PX/EXAT becomes SET ... PXAT, INCR-family becomes SET ... KEEPTTL,
 * HINCRBY becomes HSET. A key found expired (expiry <= nowMs) is deleted first
 * and logged as DEL, so reads may log records too. `replay` applies records and
 * never expires anything: expiry reaches it as logged DELs.
 *
 * Records may share Buffers with the argv given to `execute`; the caller must
 * not reuse those Buffers before the records are written.
 */
import { createHash, type Hash } from 'node:crypto';
import { AofqError } from '../errors/index.js';
import { OK, type RespValue, SimpleString } from '../resp/types.js';
import { AssertionError, assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import type { ApplyContext, Snapshottable, StateMachine, Record as StoreRecord } from '../util/state.js';
import { commandSpec, RECORD_NAMES, isWriteCommand as tableIsWriteCommand } from './commands.js';
import { globMatch } from './glob.js';
import { INT64_MAX, INT64_MIN, integerReply, parseInt64, parseScanCursor } from './integers.js';
import {
  type HashValue,
  INLINE_STRING_MAX_BYTES,
  isHash,
  Keyspace,
  type StoredString,
  storedStringBytes,
  storedStringOf,
  storedStringText,
  type Value,
} from './keyspace.js';
import { encodeStoreChunks, loadStoreChunk } from './snapshot.js';

export interface ExecResult {
  reply: RespValue;
  /** Effect records to log, in order; empty for reads that expired nothing and for no-op writes. */
  records: Buffer[][];
}

export interface KeyspaceInfo {
  keys: number;
  expires: number;
}

/** Most field/value pairs in one HSET of a snapshot. */
export const SNAPSHOT_HSET_PAIRS = 64;
/** SCAN's default COUNT, as Redis's. */
const SCAN_DEFAULT_COUNT = 10;
/** SCAN visits at most COUNT * this many slots per call, as Redis bounds empty buckets. */
const SCAN_EMPTY_SLOTS_FACTOR = 10;

const NAME = {
  SET: Buffer.from('SET'),
  DEL: Buffer.from('DEL'),
  PEXPIREAT: Buffer.from('PEXPIREAT'),
  PERSIST: Buffer.from('PERSIST'),
  APPEND: Buffer.from('APPEND'),
  HSET: Buffer.from('HSET'),
  HDEL: Buffer.from('HDEL'),
  FLUSHALL: Buffer.from('FLUSHALL'),
  PXAT: Buffer.from('PXAT'),
  KEEPTTL: Buffer.from('KEEPTTL'),
};

const PONG = new SimpleString('PONG');
const TYPE_NONE = new SimpleString('none');
const TYPE_STRING = new SimpleString('string');
const TYPE_HASH = new SimpleString('hash');

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A key, field or short value as a latin1 string (one code unit per byte). */
function latin1(bytes: Buffer): string {
  if (bytes.length > MAX_LATIN1_STRING) throw new AofqError('AOFQ_ERR_CMD_STRING_TOO_LONG');
  return bytes.toString('latin1');
}
const MAX_LATIN1_STRING = 536_870_888; // V8's longest string (buffer.constants.MAX_STRING_LENGTH on 64-bit).

function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}

function upper(bytes: Buffer): string {
  return bytes.toString('latin1').toUpperCase();
}

function wrongType(): AofqError {
  return new AofqError('AOFQ_ERR_CMD_WRONGTYPE');
}

function notInteger(): AofqError {
  return new AofqError('AOFQ_ERR_CMD_NOT_INTEGER');
}

function syntaxError(): AofqError {
  return new AofqError('AOFQ_ERR_CMD_SYNTAX');
}

function badExpire(command: string): AofqError {
  return new AofqError('AOFQ_ERR_CMD_BAD_EXPIRE', { command });
}

/** An argument that must be a Redis integer. */
function integerArgument(bytes: Buffer): bigint {
  const value = bytes.length <= 20 ? parseInt64(bytes.toString('latin1')) : undefined;
  if (value === undefined) throw notInteger();
  return value;
}

/** A stored string's integer value, or undefined when it is not one. */
function storedInteger(value: StoredString): bigint | undefined {
  return value.length <= 20 ? parseInt64(storedStringText(value)) : undefined;
}

function argAt(argv: readonly Buffer[], index: number): Buffer {
  const arg = argv[index];
  assert(arg !== undefined, 'argument index past arity');
  return arg;
}

/** At most `limit` characters of an argument, for an error message; never decodes more than needed. */
function shown(arg: Buffer, limit: number): string {
  return arg.toString('utf8', 0, Math.min(arg.length, limit * 4)).slice(0, limit);
}

function unknownCommand(argv: readonly Buffer[]): AofqError {
  // Redis's format: the name (at most 128 bytes), then quoted arguments until 128 bytes are shown.
  let args = '';
  for (let i = 1; i < argv.length && args.length < 128; i++) {
    args += `'${shown(argAt(argv, i), 128 - args.length)}' `;
  }
  return new AofqError('AOFQ_ERR_CMD_UNKNOWN', { command: shown(argAt(argv, 0), 128), args });
}

function assertNever(name: string): never {
  throw new AssertionError(`command '${name}' is in the table but has no handler`);
}

function badRecord(command: string, reason: string): AofqError {
  return new AofqError('AOFQ_ERR_STORE_BAD_RECORD', { command, reason });
}

export class Store implements StateMachine, Snapshottable {
  private readonly keyspace = new Keyspace();
  /** The records of the command being executed. */
  private records: Buffer[][] = [];
  /** The leader's time for the command being executed. */
  private nowMs = 0;

  /** Number of keys, expired-but-not-yet-deleted ones included (as Redis's DBSIZE). */
  get size(): number {
    return this.keyspace.size;
  }

  keyspaceInfo(): KeyspaceInfo {
    return { keys: this.keyspace.size, expires: this.keyspace.expiresCount };
  }

  owns(name: string): boolean {
    return RECORD_NAMES.has(name.toUpperCase());
  }

  /** Does the command (any case) change the keyspace? */
  isWriteCommand(name: string): boolean {
    return tableIsWriteCommand(name);
  }

  // --- the leader's path ---

  execute(argv: readonly Buffer[], ctx: ApplyContext): ExecResult {
    assert(argv.length > 0, 'empty command');
    assert(Number.isSafeInteger(ctx.nowMs), 'nowMs must be a safe integer');
    const spec = commandSpec(argAt(argv, 0).toString('latin1'));
    if (spec === undefined) throw unknownCommand(argv);
    if ((spec.arity > 0 && argv.length !== spec.arity) || argv.length < -spec.arity) {
      throw new AofqError('AOFQ_ERR_CMD_ARITY', { command: spec.name });
    }
    this.nowMs = ctx.nowMs;
    this.records = [];
    try {
      const reply = this.dispatch(spec.name, argv);
      return { reply, records: this.records };
    } catch (err) {
      // Every command validates before it changes state, and a lazily expired key never fails a check.
      assert(this.records.length === 0, `${spec.name} failed after changing state`);
      throw err;
    } finally {
      this.records = [];
    }
  }

  private dispatch(name: string, argv: readonly Buffer[]): RespValue {
    switch (name) {
      case 'get':
        return this.get(argv);
      case 'set':
        return this.set(argv);
      case 'del':
        return this.del(argv);
      case 'exists':
        return this.exists(argv);
      case 'incr':
        return this.incrementBy(argv, 1n);
      case 'decr':
        return this.incrementBy(argv, -1n);
      case 'incrby':
        return this.incrementBy(argv, integerArgument(argAt(argv, 2)));
      case 'decrby': {
        const decrement = integerArgument(argAt(argv, 2));
        if (decrement === INT64_MIN) throw new AofqError('AOFQ_ERR_CMD_DECREMENT_OVERFLOW');
        return this.incrementBy(argv, -decrement);
      }
      case 'append':
        return this.append(argv);
      case 'strlen':
        return this.strlen(argv);
      case 'hset':
        return this.hset(argv);
      case 'hget':
        return this.hget(argv);
      case 'hdel':
        return this.hdel(argv);
      case 'hgetall':
        return this.hgetall(argv);
      case 'hlen':
        return this.hlen(argv);
      case 'hincrby':
        return this.hincrby(argv);
      case 'expire':
        return this.expire(argv, 'expire', 1000, false);
      case 'pexpire':
        return this.expire(argv, 'pexpire', 1, false);
      case 'pexpireat':
        return this.expire(argv, 'pexpireat', 1, true);
      case 'persist':
        return this.persist(argv);
      case 'ttl':
        return this.ttl(argv, 1000);
      case 'pttl':
        return this.ttl(argv, 1);
      case 'type':
        return this.type(argv);
      case 'dbsize':
        return this.keyspace.size;
      case 'flushall':
        return this.flushall(argv);
      case 'scan':
        return this.scan(argv);
      case 'select':
        return this.select(argv);
      case 'ping':
        return this.ping(argv);
      case 'echo':
        return argAt(argv, 1);
      default:
        return assertNever(name);
    }
  }

  /** Deletes up to `maxKeys` keys whose expiry is <= ctx.nowMs, earliest first; returns their DELs. */
  activeExpireCycle(ctx: ApplyContext, maxKeys: number): Buffer[][] {
    assert(Number.isSafeInteger(maxKeys) && maxKeys >= 0, 'maxKeys');
    const records: Buffer[][] = [];
    for (let i = 0; i < maxKeys; i++) {
      const key = this.keyspace.firstDue(ctx.nowMs);
      if (key === undefined) break;
      this.keyspace.delete(key);
      records.push([NAME.DEL, keyBytes(key)]);
    }
    return records;
  }

  /** The key's value, after deleting it (and logging DEL) if it is expired. */
  private lookup(key: string): Value | undefined {
    return this.present(key) ? this.keyspace.get(key) : undefined;
  }

  private lookupString(key: string): StoredString | undefined {
    const value = this.lookup(key);
    if (value !== undefined && isHash(value)) throw wrongType();
    return value;
  }

  private lookupHash(key: string): HashValue | undefined {
    const value = this.lookup(key);
    if (value !== undefined && !isHash(value)) throw wrongType();
    return value;
  }

  private log(record: Buffer[]): void {
    this.records.push(record);
  }

  // --- strings ---

  private get(argv: readonly Buffer[]): RespValue {
    const key = latin1(argAt(argv, 1));
    if (!this.present(key)) return null;
    const value = this.keyspace.getBytes(key);
    if (value === undefined) return null;
    if (isHash(value)) throw wrongType();
    return value;
  }

  /** Whether the key exists, after deleting it (and logging DEL) if it is expired. Makes no value. */
  private present(key: string): boolean {
    if (!this.keyspace.has(key)) return false;
    const expire = this.keyspace.getExpire(key);
    if (expire !== undefined && expire <= this.nowMs) {
      this.keyspace.delete(key);
      this.records.push([NAME.DEL, keyBytes(key)]);
      return false;
    }
    return true;
  }

  private set(argv: readonly Buffer[]): RespValue {
    let nx = false;
    let xx = false;
    let get = false;
    let keepTtl = false;
    let expireUnit: 'EX' | 'PX' | 'EXAT' | 'PXAT' | undefined;
    let expireArg: Buffer | undefined;
    for (let j = 3; j < argv.length; j++) {
      const option = upper(argAt(argv, j));
      const next = argv[j + 1];
      if (option === 'NX' && !xx) nx = true;
      else if (option === 'XX' && !nx) xx = true;
      else if (option === 'GET') get = true;
      else if (option === 'KEEPTTL' && expireUnit === undefined) keepTtl = true;
      else if (
        (option === 'EX' || option === 'PX' || option === 'EXAT' || option === 'PXAT') &&
        !keepTtl &&
        (expireUnit === undefined || expireUnit === option) &&
        next !== undefined
      ) {
        expireUnit = option;
        expireArg = next;
        j++;
      } else throw syntaxError();
    }
    let expireAt: number | undefined;
    if (expireArg !== undefined) {
      let when = integerArgument(expireArg);
      const seconds = expireUnit === 'EX' || expireUnit === 'EXAT';
      if (when <= 0n || (seconds && when > INT64_MAX / 1000n)) throw badExpire('set');
      if (seconds) when *= 1000n;
      if (expireUnit === 'EX' || expireUnit === 'PX') when += BigInt(this.nowMs);
      // Redis allows up to 2^63-1; aofq keeps expiry times exact, so it stops at 2^53-1.
      if (when > MAX_SAFE) throw badExpire('set');
      expireAt = Number(when);
    }

    const keyArg = argAt(argv, 1);
    const key = latin1(keyArg);
    const valueArg = argAt(argv, 2);
    let reply: RespValue = OK;
    let found: boolean;
    if (get) {
      const old = this.lookupString(key);
      reply = old === undefined ? null : storedStringBytes(old);
      found = old !== undefined;
    } else {
      found = this.present(key);
    }
    if ((nx && found) || (xx && !found)) return get ? reply : null;

    this.keyspace.setBytes(key, valueArg);
    if (expireAt !== undefined) {
      this.keyspace.setExpire(key, expireAt);
      this.log([NAME.SET, keyArg, valueArg, NAME.PXAT, Buffer.from(String(expireAt))]);
    } else if (keepTtl) {
      this.log([NAME.SET, keyArg, valueArg, NAME.KEEPTTL]);
    } else {
      this.keyspace.removeExpire(key);
      this.log([NAME.SET, keyArg, valueArg]);
    }
    return reply;
  }

  private del(argv: readonly Buffer[]): RespValue {
    const deleted: Buffer[] = [];
    // Convert every key before the first lazy expiry, so that nothing can fail after a change.
    const keys = argv.slice(1).map(latin1);
    for (let i = 1; i < argv.length; i++) {
      const keyArg = argAt(argv, i);
      const key = keys[i - 1] as string;
      if (this.present(key)) {
        this.keyspace.delete(key);
        deleted.push(keyArg);
      }
    }
    if (deleted.length > 0) this.log([NAME.DEL, ...deleted]);
    return deleted.length;
  }

  private exists(argv: readonly Buffer[]): RespValue {
    let count = 0;
    for (const key of argv.slice(1).map(latin1)) {
      if (this.present(key)) count++;
    }
    return count;
  }

  /** INCR, INCRBY, DECR, DECRBY: logged as SET key <new value> KEEPTTL. */
  private incrementBy(argv: readonly Buffer[], increment: bigint): RespValue {
    const keyArg = argAt(argv, 1);
    const key = latin1(keyArg);
    const old = this.lookupString(key);
    const oldValue = old === undefined ? 0n : storedInteger(old);
    if (oldValue === undefined) throw notInteger();
    const result = oldValue + increment;
    if (result > INT64_MAX || result < INT64_MIN) {
      throw new AofqError('AOFQ_ERR_CMD_OVERFLOW');
    }
    const text = result.toString();
    this.keyspace.set(key, text);
    this.log([NAME.SET, keyArg, Buffer.from(text), NAME.KEEPTTL]);
    return integerReply(result);
  }

  private append(argv: readonly Buffer[]): RespValue {
    const keyArg = argAt(argv, 1);
    const key = latin1(keyArg);
    const suffix = argAt(argv, 2);
    const old = this.lookupString(key);
    let length: number;
    if (old === undefined) {
      this.keyspace.setBytes(key, suffix);
      length = suffix.length;
    } else {
      length = old.length + suffix.length;
      if (length > LIMITS.respMaxBulkBytes) throw new AofqError('AOFQ_ERR_CMD_STRING_TOO_LONG');
      this.keyspace.set(key, appendStored(old, suffix));
    }
    this.log([NAME.APPEND, keyArg, suffix]);
    return length;
  }

  private strlen(argv: readonly Buffer[]): RespValue {
    const value = this.lookupString(latin1(argAt(argv, 1)));
    return value === undefined ? 0 : value.length;
  }

  // --- hashes ---

  private hset(argv: readonly Buffer[]): RespValue {
    if (argv.length % 2 === 1) throw new AofqError('AOFQ_ERR_CMD_ARITY', { command: 'hset' });
    const keyArg = argAt(argv, 1);
    const key = latin1(keyArg);
    const fields: string[] = [];
    for (let i = 2; i < argv.length; i += 2) fields.push(latin1(argAt(argv, i)));
    let hash = this.lookupHash(key);
    if (hash === undefined) {
      hash = new Map();
      this.keyspace.set(key, hash);
    }
    let added = 0;
    for (let i = 0; i < fields.length; i++) {
      const field = fields[i] as string;
      if (!hash.has(field)) added++;
      hash.set(field, storedStringOf(argAt(argv, 3 + 2 * i)));
    }
    this.log([NAME.HSET, ...argv.slice(1)]);
    return added;
  }

  private hget(argv: readonly Buffer[]): RespValue {
    const hash = this.lookupHash(latin1(argAt(argv, 1)));
    const value = hash?.get(latin1(argAt(argv, 2)));
    return value === undefined ? null : storedStringBytes(value);
  }

  private hdel(argv: readonly Buffer[]): RespValue {
    const keyArg = argAt(argv, 1);
    const key = latin1(keyArg);
    const hash = this.lookupHash(key);
    if (hash === undefined) return 0;
    let deleted = 0;
    for (let i = 2; i < argv.length; i++) {
      if (hash.delete(latin1(argAt(argv, i)))) deleted++;
    }
    if (hash.size === 0) this.keyspace.delete(key);
    if (deleted > 0) this.log([NAME.HDEL, ...argv.slice(1)]);
    return deleted;
  }

  private hgetall(argv: readonly Buffer[]): RespValue {
    const hash = this.lookupHash(latin1(argAt(argv, 1)));
    const reply: Buffer[] = [];
    if (hash === undefined) return reply;
    for (const [field, value] of hash) reply.push(keyBytes(field), storedStringBytes(value));
    return reply;
  }

  private hlen(argv: readonly Buffer[]): RespValue {
    return this.lookupHash(latin1(argAt(argv, 1)))?.size ?? 0;
  }

  private hincrby(argv: readonly Buffer[]): RespValue {
    const increment = integerArgument(argAt(argv, 3));
    const keyArg = argAt(argv, 1);
    const key = latin1(keyArg);
    const fieldArg = argAt(argv, 2);
    const field = latin1(fieldArg);
    const hash = this.lookupHash(key);
    const old = hash?.get(field);
    const oldValue = old === undefined ? 0n : storedInteger(old);
    if (oldValue === undefined) throw new AofqError('AOFQ_ERR_CMD_HASH_NOT_INTEGER');
    const result = oldValue + increment;
    if (result > INT64_MAX || result < INT64_MIN) throw new AofqError('AOFQ_ERR_CMD_OVERFLOW');
    const text = result.toString();
    if (hash === undefined) this.keyspace.set(key, new Map([[field, text]]));
    else hash.set(field, text);
    this.log([NAME.HSET, keyArg, fieldArg, Buffer.from(text)]);
    return integerReply(result);
  }

  // --- time to live ---

  /** EXPIRE, PEXPIRE, PEXPIREAT with Redis 7's NX/XX/GT/LT. */
  private expire(argv: readonly Buffer[], command: string, unitMs: 1 | 1000, absolute: boolean): RespValue {
    let nx = false;
    let xx = false;
    let gt = false;
    let lt = false;
    for (let j = 3; j < argv.length; j++) {
      const option = upper(argAt(argv, j));
      if (option === 'NX') nx = true;
      else if (option === 'XX') xx = true;
      else if (option === 'GT') gt = true;
      else if (option === 'LT') lt = true;
      else throw new AofqError('AOFQ_ERR_CMD_UNSUPPORTED_OPTION', { option: argAt(argv, j).toString() });
    }
    if (nx && (xx || gt || lt)) {
      throw new AofqError('AOFQ_ERR_CMD_INCOMPATIBLE_OPTIONS', { options: 'NX and XX, GT or LT' });
    }
    if (gt && lt) throw new AofqError('AOFQ_ERR_CMD_INCOMPATIBLE_OPTIONS', { options: 'GT and LT' });

    let when = integerArgument(argAt(argv, 2));
    if (unitMs === 1000) {
      if (when > INT64_MAX / 1000n || when < INT64_MIN / 1000n) throw badExpire(command);
      when *= 1000n;
    }
    const base = absolute ? 0n : BigInt(this.nowMs);
    if (when > INT64_MAX - base) throw badExpire(command);
    when += base;
    const alreadyExpired = when <= BigInt(this.nowMs);
    // Redis allows up to 2^63-1; aofq keeps expiry times exact, so it stops at 2^53-1.
    if (!alreadyExpired && when > MAX_SAFE) throw badExpire(command);

    const keyArg = argAt(argv, 1);
    const key = latin1(keyArg);
    if (this.lookup(key) === undefined) return 0;
    const current = this.keyspace.getExpire(key);
    if (nx && current !== undefined) return 0;
    if (xx && current === undefined) return 0;
    if (gt && (current === undefined || when <= BigInt(current))) return 0;
    if (lt && current !== undefined && when >= BigInt(current)) return 0;

    if (alreadyExpired) {
      this.keyspace.delete(key);
      this.log([NAME.DEL, keyArg]);
      return 1;
    }
    const expireAt = Number(when);
    this.keyspace.setExpire(key, expireAt);
    this.log([NAME.PEXPIREAT, keyArg, Buffer.from(String(expireAt))]);
    return 1;
  }

  private persist(argv: readonly Buffer[]): RespValue {
    const keyArg = argAt(argv, 1);
    const key = latin1(keyArg);
    if (this.lookup(key) === undefined) return 0;
    if (!this.keyspace.removeExpire(key)) return 0;
    this.log([NAME.PERSIST, keyArg]);
    return 1;
  }

  private ttl(argv: readonly Buffer[], unitMs: 1 | 1000): RespValue {
    const key = latin1(argAt(argv, 1));
    if (this.lookup(key) === undefined) return -2;
    const expire = this.keyspace.getExpire(key);
    if (expire === undefined) return -1;
    const remaining = Math.max(0, expire - this.nowMs);
    return unitMs === 1 ? remaining : Math.floor((remaining + 500) / 1000);
  }

  // --- keyspace and connection ---

  private type(argv: readonly Buffer[]): RespValue {
    const value = this.lookup(latin1(argAt(argv, 1)));
    if (value === undefined) return TYPE_NONE;
    return isHash(value) ? TYPE_HASH : TYPE_STRING;
  }

  private flushall(argv: readonly Buffer[]): RespValue {
    if (argv.length > 2) throw syntaxError();
    if (argv.length === 2) {
      const mode = upper(argAt(argv, 1));
      if (mode !== 'SYNC' && mode !== 'ASYNC') throw syntaxError();
    }
    if (this.keyspace.size > 0) {
      this.keyspace.clear();
      this.log([NAME.FLUSHALL]);
    }
    return OK;
  }

  private scan(argv: readonly Buffer[]): RespValue {
    const cursorArg = argAt(argv, 1);
    const cursor = cursorArg.length <= 24 ? parseScanCursor(cursorArg.toString('latin1')) : undefined;
    if (cursor === undefined) throw new AofqError('AOFQ_ERR_CMD_BAD_CURSOR');
    let count = SCAN_DEFAULT_COUNT;
    let pattern: string | undefined;
    let typeName: string | undefined;
    for (let i = 2; i < argv.length; ) {
      const option = upper(argAt(argv, i));
      const hasValue = i + 1 < argv.length;
      if (option === 'COUNT' && hasValue) {
        const value = integerArgument(argAt(argv, i + 1));
        if (value < 1n) throw syntaxError();
        count = value > BigInt(LIMITS.respMaxArrayLength) ? LIMITS.respMaxArrayLength : Number(value);
      } else if (option === 'MATCH' && hasValue) {
        const text = latin1(argAt(argv, i + 1));
        pattern = text === '*' ? undefined : text;
      } else if (option === 'TYPE' && hasValue) {
        typeName = argAt(argv, i + 1)
          .toString('latin1')
          .toLowerCase();
      } else {
        throw syntaxError();
      }
      i += 2;
    }

    const keys: Buffer[] = [];
    const slotCount = this.keyspace.slotCount;
    let slot = cursor < BigInt(slotCount) ? Number(cursor) : slotCount;
    let collected = 0;
    let visited = 0;
    const maxVisited = count * SCAN_EMPTY_SLOTS_FACTOR;
    while (slot < slotCount && collected < count && visited < maxVisited) {
      const key = this.keyspace.keyAt(slot);
      slot++;
      visited++;
      if (key === undefined) continue;
      collected++;
      if (pattern !== undefined && !globMatch(pattern, key)) continue;
      const value = this.lookup(key);
      if (value === undefined) continue;
      if (typeName !== undefined && typeName !== (isHash(value) ? 'hash' : 'string')) continue;
      keys.push(keyBytes(key));
    }
    const next = slot >= this.keyspace.slotCount ? 0 : slot;
    return [Buffer.from(String(next)), keys];
  }

  private select(argv: readonly Buffer[]): RespValue {
    const index = integerArgument(argAt(argv, 1));
    if (index > 2147483647n || index < -2147483648n) {
      throw new AofqError('AOFQ_ERR_CMD_OUT_OF_RANGE', { min: -2147483648, max: 2147483647 });
    }
    if (index !== 0n) throw new AofqError('AOFQ_ERR_CMD_DB_INDEX');
    return OK;
  }

  private ping(argv: readonly Buffer[]): RespValue {
    if (argv.length > 2) throw new AofqError('AOFQ_ERR_CMD_ARITY', { command: 'ping' });
    return argv.length === 2 ? argAt(argv, 1) : PONG;
  }

  // --- replay ---

  replay(record: StoreRecord): void {
    const first = record[0];
    if (first === undefined) throw badRecord('', 'empty record');
    const name = upper(first);
    const need = (ok: boolean, reason: string): void => {
      if (!ok) throw badRecord(name, reason);
    };
    switch (name) {
      case 'SET': {
        need(record.length === 3 || record.length === 4 || record.length === 5, 'arity');
        const key = latin1(argAt(record, 1));
        let expireAt: number | undefined;
        let keepTtl = false;
        if (record.length === 5) {
          need(upper(argAt(record, 3)) === 'PXAT', 'expected PXAT');
          expireAt = replayTime(name, argAt(record, 4));
        } else if (record.length === 4) {
          need(upper(argAt(record, 3)) === 'KEEPTTL', 'expected KEEPTTL');
          keepTtl = true;
        }
        this.keyspace.setBytes(key, argAt(record, 2));
        if (expireAt !== undefined) this.keyspace.setExpire(key, expireAt);
        else if (!keepTtl) this.keyspace.removeExpire(key);
        return;
      }
      case 'DEL': {
        need(record.length >= 2, 'arity');
        for (let i = 1; i < record.length; i++) this.keyspace.delete(latin1(argAt(record, i)));
        return;
      }
      case 'PEXPIREAT': {
        need(record.length === 3, 'arity');
        const key = latin1(argAt(record, 1));
        const expireAt = replayTime(name, argAt(record, 2));
        if (this.keyspace.has(key)) this.keyspace.setExpire(key, expireAt);
        return;
      }
      case 'PERSIST': {
        need(record.length === 2, 'arity');
        const key = latin1(argAt(record, 1));
        if (this.keyspace.has(key)) this.keyspace.removeExpire(key);
        return;
      }
      case 'APPEND': {
        need(record.length === 3, 'arity');
        const key = latin1(argAt(record, 1));
        const old = this.keyspace.get(key);
        need(old === undefined || !isHash(old), 'APPEND to a hash');
        const suffix = argAt(record, 2);
        if (old === undefined) this.keyspace.setBytes(key, suffix);
        else this.keyspace.set(key, appendStored(old as StoredString, suffix));
        return;
      }
      case 'HSET': {
        need(record.length >= 4 && record.length % 2 === 0, 'arity');
        const key = latin1(argAt(record, 1));
        let hash = this.keyspace.get(key);
        need(hash === undefined || isHash(hash), 'HSET on a string');
        if (hash === undefined) {
          hash = new Map();
          this.keyspace.set(key, hash);
        }
        for (let i = 2; i < record.length; i += 2) {
          (hash as HashValue).set(latin1(argAt(record, i)), storedStringOf(argAt(record, i + 1)));
        }
        return;
      }
      case 'HDEL': {
        need(record.length >= 3, 'arity');
        const key = latin1(argAt(record, 1));
        const hash = this.keyspace.get(key);
        if (hash === undefined) return;
        need(isHash(hash), 'HDEL on a string');
        for (let i = 2; i < record.length; i++) (hash as HashValue).delete(latin1(argAt(record, i)));
        if ((hash as HashValue).size === 0) this.keyspace.delete(key);
        return;
      }
      case 'FLUSHALL': {
        need(record.length <= 2, 'arity');
        this.keyspace.clear();
        return;
      }
      default:
        throw badRecord(name, 'not a store record');
    }
  }

  // --- digests and snapshots ---

  /** Keys in byte order, each with its type, value (hash fields in byte order) and expiry. */
  digest(hash: Hash): void {
    const keys = [...this.keyspace.keys()].sort();
    const header = Buffer.alloc(4);
    const lengthPrefixed = (text: string | Buffer): void => {
      header.writeUInt32BE(text.length, 0);
      hash.update(header);
      if (typeof text === 'string') hash.update(text, 'latin1');
      else hash.update(text);
    };
    hash.update(`store:${keys.length}:`);
    for (const key of keys) {
      const value = this.keyspace.get(key);
      assert(value !== undefined, 'listed key is missing');
      lengthPrefixed(key);
      if (isHash(value)) {
        const fields = [...value.keys()].sort();
        hash.update(`h${fields.length}:`);
        for (const field of fields) {
          lengthPrefixed(field);
          lengthPrefixed(value.get(field) as StoredString);
        }
      } else {
        hash.update('s');
        lengthPrefixed(value);
      }
      const expire = this.keyspace.getExpire(key);
      hash.update(expire === undefined ? 'e-;' : `e${expire};`);
    }
  }

  digestHex(): string {
    const hash = createHash('sha256');
    this.digest(hash);
    return hash.digest('hex');
  }

  /**
   * Records that rebuild every key not expired at `nowMs`: SET, or HSETs of at
   * most SNAPSHOT_HSET_PAIRS pairs, then PEXPIREAT for a key with a TTL. Lazy:
   * keys are visited by slot, so if the store changes during the iteration,
   * every key present throughout is emitted once, with its value at that time.
   */
  *snapshotRecords(nowMs: number): IterableIterator<Buffer[]> {
    for (const key of this.keyspace.keys()) {
      const value = this.keyspace.get(key);
      if (value === undefined) continue;
      const expire = this.keyspace.getExpire(key);
      if (expire !== undefined && expire <= nowMs) continue;
      const keyArg = keyBytes(key);
      if (isHash(value)) {
        let record: Buffer[] = [NAME.HSET, keyArg];
        for (const [field, fieldValue] of value) {
          record.push(keyBytes(field), storedStringBytes(fieldValue));
          if (record.length === 2 + 2 * SNAPSHOT_HSET_PAIRS) {
            yield record;
            record = [NAME.HSET, keyArg];
          }
        }
        if (record.length > 2) yield record;
      } else {
        yield [NAME.SET, keyArg, storedStringBytes(value)];
      }
      if (expire !== undefined) yield [NAME.PEXPIREAT, keyArg, Buffer.from(String(expire))];
    }
  }

  /** The compact snapshot (snapshot.ts): every key not expired at `nowMs`, in chunks of about `maxBytes`. */
  snapshotChunks(nowMs: number, maxBytes: number): IterableIterator<Buffer> {
    return encodeStoreChunks(this.keyspace, nowMs, maxBytes);
  }

  /** Apply one chunk of the compact snapshot straight into the keyspace. */
  loadSnapshotChunk(chunk: Buffer): void {
    loadStoreChunk(this.keyspace, chunk);
  }
}

function appendStored(old: StoredString, suffix: Buffer): StoredString {
  const length = old.length + suffix.length;
  if (typeof old === 'string' && length <= INLINE_STRING_MAX_BYTES) return old + suffix.toString('latin1');
  return Buffer.concat([storedStringBytes(old), suffix], length);
}

/** An absolute time in a record: an integer that is a safe JavaScript number. */
function replayTime(command: string, bytes: Buffer): number {
  const value = bytes.length <= 20 ? parseInt64(bytes.toString('latin1')) : undefined;
  if (value === undefined || value > MAX_SAFE || value < -MAX_SAFE) {
    throw badRecord(command, `bad time '${bytes.toString('latin1')}'`);
  }
  return Number(value);
}
