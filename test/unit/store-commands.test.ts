/** The store's commands one by one: replies (Redis's texts for errors) and the exact effect records. */
import { describe, expect, test } from 'vitest';
import { isAofqError } from '../../src/errors/index.js';
import { ErrorReply, type RespValue, SimpleString } from '../../src/resp/types.js';
import { COMMANDS, commandSpec, isWriteCommand, Store } from '../../src/store/index.js';

const T0 = 1_700_000_000_000;

function plain(value: RespValue): unknown {
  if (value === null || typeof value === 'number' || typeof value === 'bigint') return value;
  if (Buffer.isBuffer(value)) return value.toString('latin1');
  if (value instanceof SimpleString) return `+${value.value}`;
  if (value instanceof ErrorReply) return `-${value.message}`;
  return value.map(plain);
}

/** Runs one command; an AofqError becomes '-<resp line>' with no records, after checking nothing changed. */
function run(
  store: Store,
  nowMs: number,
  checkErrors: boolean,
  ...args: (string | Buffer)[]
): { reply: unknown; records: string[] } {
  const before = checkErrors ? store.digestHex() : '';
  try {
    const result = store.execute(
      args.map((arg) => (typeof arg === 'string' ? Buffer.from(arg, 'latin1') : arg)),
      { nowMs },
    );
    return {
      reply: plain(result.reply),
      records: result.records.map((record) => record.map((arg) => arg.toString('latin1')).join(' ')),
    };
  } catch (err) {
    if (!isAofqError(err)) throw err;
    if (checkErrors) expect(store.digestHex()).toBe(before);
    return { reply: `-${err.toResp()}`, records: [] };
  }
}

/** A store and a `cmd` that runs at the current `now`. */
function fixture(checkErrors = true) {
  const store = new Store();
  const clock = { now: T0 };
  const cmd = (...args: (string | Buffer)[]) => run(store, clock.now, checkErrors, ...args);
  const reply = (...args: (string | Buffer)[]) => cmd(...args).reply;
  return { store, clock, cmd, reply };
}

describe('strings', () => {
  test('SET and GET, binary-safe keys and values', () => {
    const { cmd, reply } = fixture();
    expect(cmd('SET', 'k', 'v')).toEqual({ reply: '+OK', records: ['SET k v'] });
    expect(reply('GET', 'k')).toBe('v');
    expect(reply('GET', 'missing')).toBeNull();
    const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(reply('SET', allBytes, allBytes)).toBe('+OK');
    expect(reply('GET', allBytes)).toBe(allBytes.toString('latin1'));
    expect(reply('STRLEN', allBytes)).toBe(256);
    const big = Buffer.alloc(10_000, 0xfe);
    expect(reply('SET', 'big', big)).toBe('+OK');
    expect(reply('GET', 'big')).toBe(big.toString('latin1'));
  });

  test('SET NX, XX, GET', () => {
    const { cmd, reply } = fixture();
    expect(cmd('SET', 'k', '1', 'NX')).toEqual({ reply: '+OK', records: ['SET k 1'] });
    expect(cmd('SET', 'k', '2', 'NX')).toEqual({ reply: null, records: [] });
    expect(cmd('SET', 'other', '2', 'XX')).toEqual({ reply: null, records: [] });
    expect(cmd('SET', 'k', '3', 'XX', 'GET')).toEqual({ reply: '1', records: ['SET k 3'] });
    expect(cmd('SET', 'k', '4', 'NX', 'GET')).toEqual({ reply: '3', records: [] });
    expect(cmd('SET', 'new', '5', 'GET')).toEqual({ reply: null, records: ['SET new 5'] });
    expect(reply('SET', 'k', 'x', 'nx', 'xx')).toBe('-ERR syntax error');
    expect(reply('SET', 'k', 'x', 'XX', 'NX')).toBe('-ERR syntax error');
    expect(reply('SET', 'k', 'x', 'BOGUS')).toBe('-ERR syntax error');
    expect(reply('HSET', 'h', 'f', 'v')).toBe(1);
    expect(reply('SET', 'h', 'x', 'GET')).toBe(
      '-WRONGTYPE Operation against a key holding the wrong kind of value',
    );
    expect(cmd('SET', 'h', 'x')).toEqual({ reply: '+OK', records: ['SET h x'] });
  });

  test('SET expiry options become SET ... PXAT', () => {
    const { cmd, reply, clock } = fixture();
    expect(cmd('SET', 'a', 'v', 'EX', '10')).toEqual({
      reply: '+OK',
      records: [`SET a v PXAT ${T0 + 10_000}`],
    });
    expect(cmd('SET', 'b', 'v', 'PX', '1500', 'NX')).toEqual({
      reply: '+OK',
      records: [`SET b v PXAT ${T0 + 1500}`],
    });
    expect(cmd('SET', 'c', 'v', 'EXAT', String(T0 / 1000 + 5))).toEqual({
      reply: '+OK',
      records: [`SET c v PXAT ${T0 + 5000}`],
    });
    expect(cmd('SET', 'd', 'v', 'PXAT', String(T0 + 7))).toEqual({
      reply: '+OK',
      records: [`SET d v PXAT ${T0 + 7}`],
    });
    // Redis lets a repeated option win.
    expect(cmd('SET', 'e', 'v', 'EX', '1', 'EX', '2')).toEqual({
      reply: '+OK',
      records: [`SET e v PXAT ${T0 + 2000}`],
    });
    expect(reply('PTTL', 'b')).toBe(1500);
    expect(cmd('SET', 'a', 'w', 'KEEPTTL')).toEqual({ reply: '+OK', records: ['SET a w KEEPTTL'] });
    expect(reply('TTL', 'a')).toBe(10);
    expect(cmd('SET', 'a', 'x')).toEqual({ reply: '+OK', records: ['SET a x'] });
    expect(reply('TTL', 'a')).toBe(-1);
    clock.now += 1500;
    expect(cmd('GET', 'b')).toEqual({ reply: null, records: ['DEL b'] });
  });

  test('SET expiry errors', () => {
    const { reply } = fixture();
    expect(reply('SET', 'k', 'v', 'EX', '0')).toBe("-ERR invalid expire time in 'set' command");
    expect(reply('SET', 'k', 'v', 'EX', '-5')).toBe("-ERR invalid expire time in 'set' command");
    expect(reply('SET', 'k', 'v', 'PX', '0')).toBe("-ERR invalid expire time in 'set' command");
    expect(reply('SET', 'k', 'v', 'EX', '9223372036854775')).toBe(
      "-ERR invalid expire time in 'set' command",
    );
    expect(reply('SET', 'k', 'v', 'PX', '9223372036854775807')).toBe(
      "-ERR invalid expire time in 'set' command",
    );
    expect(reply('SET', 'k', 'v', 'EX', 'ten')).toBe('-ERR value is not an integer or out of range');
    expect(reply('SET', 'k', 'v', 'EX', '+10')).toBe('-ERR value is not an integer or out of range');
    expect(reply('SET', 'k', 'v', 'EX')).toBe('-ERR syntax error');
    expect(reply('SET', 'k', 'v', 'EX', '1', 'PX', '1')).toBe('-ERR syntax error');
    expect(reply('SET', 'k', 'v', 'KEEPTTL', 'EX', '1')).toBe('-ERR syntax error');
    expect(reply('SET', 'k', 'v', 'PXAT', '5', 'KEEPTTL')).toBe('-ERR syntax error');
    expect(reply('SET', 'k')).toBe("-ERR wrong number of arguments for 'set' command");
    expect(reply('DBSIZE')).toBe(0);
  });

  test('DEL and EXISTS are variadic; EXISTS counts duplicates', () => {
    const { cmd, reply } = fixture();
    reply('SET', 'a', '1');
    reply('SET', 'b', '2');
    expect(reply('EXISTS', 'a', 'a', 'b', 'c')).toBe(3);
    expect(cmd('DEL', 'a', 'c', 'b', 'a')).toEqual({ reply: 2, records: ['DEL a b'] });
    expect(cmd('DEL', 'a')).toEqual({ reply: 0, records: [] });
    expect(reply('EXISTS', 'a')).toBe(0);
    expect(reply('DEL')).toBe("-ERR wrong number of arguments for 'del' command");
  });

  test('INCR, INCRBY, DECR, DECRBY', () => {
    const { cmd, reply } = fixture();
    expect(cmd('INCR', 'n')).toEqual({ reply: 1, records: ['SET n 1 KEEPTTL'] });
    expect(cmd('INCRBY', 'n', '41')).toEqual({ reply: 42, records: ['SET n 42 KEEPTTL'] });
    expect(cmd('DECR', 'n')).toEqual({ reply: 41, records: ['SET n 41 KEEPTTL'] });
    expect(cmd('DECRBY', 'n', '-9')).toEqual({ reply: 50, records: ['SET n 50 KEEPTTL'] });
    expect(reply('DECRBY', 'n', '100')).toBe(-50);
    reply('SET', 'max', '9223372036854775807');
    expect(reply('INCR', 'max')).toBe('-ERR increment or decrement would overflow');
    expect(reply('INCRBY', 'max', '1')).toBe('-ERR increment or decrement would overflow');
    expect(reply('INCRBY', 'max', '0')).toBe(9223372036854775807n);
    reply('SET', 'min', '-9223372036854775808');
    expect(reply('DECR', 'min')).toBe('-ERR increment or decrement would overflow');
    expect(reply('DECRBY', 'n', '-9223372036854775808')).toBe('-ERR decrement would overflow');
    expect(reply('INCRBY', 'n', '9223372036854775808')).toBe('-ERR value is not an integer or out of range');
    expect(reply('INCRBY', 'n', '1.5')).toBe('-ERR value is not an integer or out of range');
    expect(reply('INCRBY', 'n', ' 1')).toBe('-ERR value is not an integer or out of range');
    for (const bad of ['abc', '007', '-0', '+1', '1 ', '', '12345678901234567890123']) {
      reply('SET', 'bad', bad);
      expect(reply('INCR', 'bad')).toBe('-ERR value is not an integer or out of range');
    }
    reply('HSET', 'h', 'f', '1');
    expect(reply('INCR', 'h')).toBe('-WRONGTYPE Operation against a key holding the wrong kind of value');
    // INCR keeps the TTL.
    reply('SET', 't', '5', 'EX', '100');
    expect(cmd('INCR', 't')).toEqual({ reply: 6, records: ['SET t 6 KEEPTTL'] });
    expect(reply('TTL', 't')).toBe(100);
  });

  test('APPEND and STRLEN', () => {
    const { cmd, reply } = fixture();
    expect(cmd('APPEND', 's', 'ab')).toEqual({ reply: 2, records: ['APPEND s ab'] });
    expect(cmd('APPEND', 's', 'cd')).toEqual({ reply: 4, records: ['APPEND s cd'] });
    expect(reply('GET', 's')).toBe('abcd');
    expect(reply('STRLEN', 's')).toBe(4);
    expect(reply('STRLEN', 'missing')).toBe(0);
    // Crossing the inline-string threshold keeps the bytes.
    const chunk = Buffer.alloc(3000, 0x80);
    reply('APPEND', 's', chunk);
    reply('APPEND', 's', chunk);
    expect(reply('STRLEN', 's')).toBe(6004);
    expect(reply('GET', 's')).toBe(`abcd${chunk.toString('latin1').repeat(2)}`);
    reply('HSET', 'h', 'f', '1');
    expect(reply('APPEND', 'h', 'x')).toBe(
      '-WRONGTYPE Operation against a key holding the wrong kind of value',
    );
    expect(reply('STRLEN', 'h')).toBe('-WRONGTYPE Operation against a key holding the wrong kind of value');
    expect(reply('GET', 'h')).toBe('-WRONGTYPE Operation against a key holding the wrong kind of value');
  });
});

describe('hashes', () => {
  test('HSET, HGET, HGETALL, HLEN, HDEL', () => {
    const { cmd, reply } = fixture();
    expect(cmd('HSET', 'h', 'a', '1', 'b', '2')).toEqual({ reply: 2, records: ['HSET h a 1 b 2'] });
    expect(cmd('HSET', 'h', 'b', '3', 'c', '4')).toEqual({ reply: 1, records: ['HSET h b 3 c 4'] });
    expect(reply('HGET', 'h', 'b')).toBe('3');
    expect(reply('HGET', 'h', 'zz')).toBeNull();
    expect(reply('HGET', 'nope', 'a')).toBeNull();
    expect(reply('HGETALL', 'h')).toEqual(['a', '1', 'b', '3', 'c', '4']);
    expect(reply('HGETALL', 'nope')).toEqual([]);
    expect(reply('HLEN', 'h')).toBe(3);
    expect(cmd('HDEL', 'h', 'a', 'zz')).toEqual({ reply: 1, records: ['HDEL h a zz'] });
    expect(cmd('HDEL', 'h', 'zz')).toEqual({ reply: 0, records: [] });
    expect(cmd('HDEL', 'h', 'b', 'c')).toEqual({ reply: 2, records: ['HDEL h b c'] });
    expect(reply('EXISTS', 'h')).toBe(0);
    expect(reply('HSET', 'h', 'a')).toBe("-ERR wrong number of arguments for 'hset' command");
    expect(reply('HSET', 'h', 'a', '1', 'b')).toBe("-ERR wrong number of arguments for 'hset' command");
    reply('SET', 's', 'x');
    for (const command of [
      ['HSET', 's', 'a', '1'],
      ['HGET', 's', 'a'],
      ['HDEL', 's', 'a'],
      ['HGETALL', 's'],
      ['HLEN', 's'],
      ['HINCRBY', 's', 'a', '1'],
    ]) {
      expect(reply(...command)).toBe('-WRONGTYPE Operation against a key holding the wrong kind of value');
    }
  });

  test('HINCRBY', () => {
    const { cmd, reply } = fixture();
    expect(cmd('HINCRBY', 'h', 'n', '5')).toEqual({ reply: 5, records: ['HSET h n 5'] });
    expect(cmd('HINCRBY', 'h', 'n', '-7')).toEqual({ reply: -2, records: ['HSET h n -2'] });
    reply('HSET', 'h', 'text', 'abc', 'max', '9223372036854775807');
    expect(reply('HINCRBY', 'h', 'text', '1')).toBe('-ERR hash value is not an integer');
    expect(reply('HINCRBY', 'h', 'max', '1')).toBe('-ERR increment or decrement would overflow');
    expect(reply('HINCRBY', 'h', 'n', 'x')).toBe('-ERR value is not an integer or out of range');
    expect(reply('HINCRBY', 'h', 'n')).toBe("-ERR wrong number of arguments for 'hincrby' command");
  });
});

describe('time to live', () => {
  test('EXPIRE and PEXPIRE become PEXPIREAT; TTL and PTTL', () => {
    const { cmd, reply, clock } = fixture();
    reply('SET', 'k', 'v');
    expect(reply('TTL', 'k')).toBe(-1);
    expect(reply('TTL', 'missing')).toBe(-2);
    expect(reply('PTTL', 'missing')).toBe(-2);
    expect(cmd('EXPIRE', 'k', '100')).toEqual({ reply: 1, records: [`PEXPIREAT k ${T0 + 100_000}`] });
    expect(reply('TTL', 'k')).toBe(100);
    expect(cmd('PEXPIRE', 'k', '2500')).toEqual({ reply: 1, records: [`PEXPIREAT k ${T0 + 2500}`] });
    expect(reply('PTTL', 'k')).toBe(2500);
    expect(reply('TTL', 'k')).toBe(3); // rounded as Redis: (2500 + 500) / 1000
    clock.now += 1000;
    expect(reply('TTL', 'k')).toBe(2);
    expect(cmd('PEXPIREAT', 'k', String(T0 + 60_000))).toEqual({
      reply: 1,
      records: [`PEXPIREAT k ${T0 + 60_000}`],
    });
    expect(cmd('EXPIRE', 'missing', '10')).toEqual({ reply: 0, records: [] });
    expect(cmd('PERSIST', 'k')).toEqual({ reply: 1, records: ['PERSIST k'] });
    expect(cmd('PERSIST', 'k')).toEqual({ reply: 0, records: [] });
    expect(cmd('PERSIST', 'missing')).toEqual({ reply: 0, records: [] });
  });

  test('an expiry in the past deletes the key and logs DEL', () => {
    const { cmd, reply } = fixture();
    reply('SET', 'a', 'v');
    reply('SET', 'b', 'v');
    reply('SET', 'c', 'v');
    expect(cmd('EXPIRE', 'a', '-1')).toEqual({ reply: 1, records: ['DEL a'] });
    expect(cmd('PEXPIRE', 'b', '0')).toEqual({ reply: 1, records: ['DEL b'] });
    expect(cmd('PEXPIREAT', 'c', '1000')).toEqual({ reply: 1, records: ['DEL c'] });
    expect(reply('DBSIZE')).toBe(0);
  });

  test('bad expire times', () => {
    const { reply } = fixture();
    reply('SET', 'k', 'v');
    expect(reply('EXPIRE', 'k', 'notanumber')).toBe('-ERR value is not an integer or out of range');
    expect(reply('EXPIRE', 'k', '9223372036854775807')).toBe("-ERR invalid expire time in 'expire' command");
    expect(reply('EXPIRE', 'k', '-9223372036854775807')).toBe("-ERR invalid expire time in 'expire' command");
    expect(reply('PEXPIRE', 'k', '9223372036854775807')).toBe(
      "-ERR invalid expire time in 'pexpire' command",
    );
    expect(reply('EXPIRE', 'k')).toBe("-ERR wrong number of arguments for 'expire' command");
    expect(reply('TTL', 'k')).toBe(-1);
  });

  test('EXPIRE NX, XX, GT, LT', () => {
    const { cmd, reply } = fixture();
    reply('SET', 'k', 'v');
    expect(cmd('EXPIRE', 'k', '100', 'XX')).toEqual({ reply: 0, records: [] });
    expect(cmd('EXPIRE', 'k', '100', 'GT')).toEqual({ reply: 0, records: [] });
    expect(cmd('EXPIRE', 'k', '100', 'NX')).toEqual({ reply: 1, records: [`PEXPIREAT k ${T0 + 100_000}`] });
    expect(cmd('EXPIRE', 'k', '50', 'NX')).toEqual({ reply: 0, records: [] });
    expect(cmd('EXPIRE', 'k', '50', 'GT')).toEqual({ reply: 0, records: [] });
    expect(cmd('EXPIRE', 'k', '200', 'gt')).toEqual({ reply: 1, records: [`PEXPIREAT k ${T0 + 200_000}`] });
    expect(cmd('EXPIRE', 'k', '300', 'LT')).toEqual({ reply: 0, records: [] });
    expect(cmd('EXPIRE', 'k', '150', 'LT', 'XX')).toEqual({
      reply: 1,
      records: [`PEXPIREAT k ${T0 + 150_000}`],
    });
    expect(reply('EXPIRE', 'k', '1', 'NX', 'XX')).toBe(
      '-ERR NX and XX, GT or LT options at the same time are not compatible',
    );
    expect(reply('EXPIRE', 'k', '1', 'GT', 'LT')).toBe(
      '-ERR GT and LT options at the same time are not compatible',
    );
    expect(reply('EXPIRE', 'k', '1', 'SOON')).toBe('-ERR Unsupported option SOON');
    reply('SET', 'p', 'v');
    expect(cmd('EXPIRE', 'p', '10', 'LT')).toEqual({ reply: 1, records: [`PEXPIREAT p ${T0 + 10_000}`] });
  });

  test('lazy expiry: a read of an expired key logs DEL first', () => {
    const { cmd, reply, clock } = fixture();
    reply('SET', 'k', 'v', 'PX', '100');
    reply('HSET', 'h', 'f', 'v');
    reply('PEXPIRE', 'h', '100');
    clock.now += 99;
    expect(cmd('GET', 'k')).toEqual({ reply: 'v', records: [] });
    clock.now += 1; // expiry <= now: gone
    expect(cmd('EXISTS', 'k', 'h')).toEqual({ reply: 0, records: ['DEL k', 'DEL h'] });
    expect(cmd('EXISTS', 'k')).toEqual({ reply: 0, records: [] });
    reply('SET', 'k', '5', 'PX', '10');
    clock.now += 10;
    expect(cmd('INCR', 'k')).toEqual({ reply: 1, records: ['DEL k', 'SET k 1 KEEPTTL'] });
    expect(reply('TTL', 'k')).toBe(-1);
    reply('SET', 's', 'x', 'PX', '10');
    clock.now += 10;
    // An expired string does not make HSET fail with WRONGTYPE.
    expect(cmd('HSET', 's', 'f', 'v')).toEqual({ reply: 1, records: ['DEL s', 'HSET s f v'] });
  });

  test('activeExpireCycle deletes due keys, earliest first, at most maxKeys', () => {
    const { store, reply } = fixture();
    for (let i = 0; i < 10; i++) reply('SET', `k${i}`, 'v', 'PX', String(100 - i));
    reply('SET', 'late', 'v', 'PX', '1000');
    reply('SET', 'forever', 'v');
    expect(store.keyspaceInfo()).toEqual({ keys: 12, expires: 11 });
    expect(store.activeExpireCycle({ nowMs: T0 + 50 }, 100)).toEqual([]);
    const first = store.activeExpireCycle({ nowMs: T0 + 100 }, 4);
    expect(first.map((record) => record.map(String).join(' '))).toEqual([
      'DEL k9',
      'DEL k8',
      'DEL k7',
      'DEL k6',
    ]);
    const rest = store.activeExpireCycle({ nowMs: T0 + 100 }, 100);
    expect(rest).toHaveLength(6);
    expect(store.keyspaceInfo()).toEqual({ keys: 2, expires: 1 });
  });
});

describe('keyspace and connection', () => {
  test('TYPE, DBSIZE, FLUSHALL', () => {
    const { cmd, reply } = fixture();
    reply('SET', 's', 'v');
    reply('HSET', 'h', 'f', 'v');
    expect(reply('TYPE', 's')).toBe('+string');
    expect(reply('TYPE', 'h')).toBe('+hash');
    expect(reply('TYPE', 'x')).toBe('+none');
    expect(reply('DBSIZE')).toBe(2);
    expect(reply('FLUSHALL', 'NOW')).toBe('-ERR syntax error');
    expect(reply('FLUSHALL', 'SYNC', 'ASYNC')).toBe('-ERR syntax error');
    expect(cmd('FLUSHALL', 'async')).toEqual({ reply: '+OK', records: ['FLUSHALL'] });
    expect(reply('DBSIZE')).toBe(0);
    expect(cmd('FLUSHALL')).toEqual({ reply: '+OK', records: [] });
  });

  test('SELECT, PING, ECHO, unknown commands, arity', () => {
    const { cmd, reply } = fixture();
    expect(cmd('SELECT', '0')).toEqual({ reply: '+OK', records: [] });
    expect(reply('SELECT', '1')).toBe('-ERR DB index is out of range');
    expect(reply('SELECT', '-1')).toBe('-ERR DB index is out of range');
    expect(reply('SELECT', 'x')).toBe('-ERR value is not an integer or out of range');
    expect(reply('SELECT', '99999999999')).toBe(
      '-ERR value is out of range, value must between -2147483648 and 2147483647',
    );
    expect(reply('PING')).toBe('+PONG');
    expect(reply('ping', 'hello')).toBe('hello');
    expect(reply('PING', 'a', 'b')).toBe("-ERR wrong number of arguments for 'ping' command");
    expect(reply('ECHO', 'hi')).toBe('hi');
    expect(reply('ECHO')).toBe("-ERR wrong number of arguments for 'echo' command");
    expect(reply('GET')).toBe("-ERR wrong number of arguments for 'get' command");
    expect(reply('gEt', 'a', 'b')).toBe("-ERR wrong number of arguments for 'get' command");
    expect(reply('DBSIZE', 'x')).toBe("-ERR wrong number of arguments for 'dbsize' command");
    expect(reply('Frob', 'a', 'b')).toBe("-ERR unknown command 'Frob', with args beginning with: 'a' 'b' ");
    expect(reply('FROB')).toBe("-ERR unknown command 'FROB', with args beginning with: ");
    const long = 'x'.repeat(200);
    expect(reply('FROB', long, 'y')).toBe(
      `-ERR unknown command 'FROB', with args beginning with: '${'x'.repeat(128)}' `,
    );
  });

  test('the command table', () => {
    expect(COMMANDS.length).toBe(29);
    expect(commandSpec('SET')).toMatchObject({
      name: 'set',
      arity: -3,
      flags: ['write'],
      firstKey: 1,
      lastKey: 1,
      step: 1,
    });
    expect(commandSpec('del')).toMatchObject({ arity: -2, firstKey: 1, lastKey: -1, step: 1 });
    expect(isWriteCommand('hset')).toBe(true);
    expect(isWriteCommand('FLUSHALL')).toBe(true);
    expect(isWriteCommand('get')).toBe(false);
    expect(isWriteCommand('nosuch')).toBe(false);
    const store = new Store();
    expect(store.isWriteCommand('Expire')).toBe(true);
    expect(store.owns('SET')).toBe(true);
    expect(store.owns('pexpireat')).toBe(true);
    expect(store.owns('EXPIRE')).toBe(false);
    expect(store.owns('QADD')).toBe(false);
  });
});

describe('SCAN', () => {
  test('MATCH, TYPE, COUNT and errors', () => {
    const { reply } = fixture();
    for (let i = 0; i < 30; i++) reply('SET', `user:${i}`, 'v');
    reply('HSET', 'user:h', 'f', 'v');
    reply('SET', 'other', 'v');
    const scanAll = (...options: string[]): string[] => {
      const keys: string[] = [];
      let cursor = '0';
      for (let calls = 0; calls < 1000; calls++) {
        const [next, page] = reply('SCAN', cursor, ...options) as [string, string[]];
        keys.push(...page);
        cursor = next;
        if (cursor === '0') return keys.sort();
      }
      throw new Error('SCAN did not finish');
    };
    expect(scanAll()).toHaveLength(32);
    expect(scanAll('MATCH', 'user:?')).toHaveLength(11); // user:0-9 and user:h
    expect(scanAll('MATCH', 'user:[12]?', 'COUNT', '3')).toHaveLength(20);
    expect(scanAll('TYPE', 'hash')).toEqual(['user:h']);
    expect(scanAll('type', 'STRING', 'MATCH', 'o*')).toEqual(['other']);
    expect(scanAll('TYPE', 'list')).toEqual([]);
    const [cursor, page] = reply('SCAN', '0', 'COUNT', '1000') as [string, string[]];
    expect(cursor).toBe('0');
    expect(page).toHaveLength(32);
    expect(reply('SCAN', 'abc')).toBe('-ERR invalid cursor');
    expect(reply('SCAN', '99999999999999999999999')).toBe('-ERR invalid cursor');
    expect(reply('SCAN', '123456789')).toEqual(['0', []]);
    expect(reply('SCAN', '0', 'COUNT', '0')).toBe('-ERR syntax error');
    expect(reply('SCAN', '0', 'COUNT', 'x')).toBe('-ERR value is not an integer or out of range');
    expect(reply('SCAN', '0', 'MATCH')).toBe('-ERR syntax error');
    expect(reply('SCAN', '0', 'FOO', 'bar')).toBe('-ERR syntax error');
  });

  test('a full scan returns every key that existed throughout, despite inserts and deletes', () => {
    const { reply } = fixture(false);
    const stable = new Set<string>();
    for (let i = 0; i < 500; i++) {
      reply('SET', `stable:${i}`, 'v');
      stable.add(`stable:${i}`);
      reply('SET', `churn:${i}`, 'v');
    }
    const seen = new Set<string>();
    let cursor = '0';
    let step = 0;
    for (let calls = 0; calls < 10_000; calls++) {
      const [next, page] = reply('SCAN', cursor, 'COUNT', '7') as [string, string[]];
      for (const key of page) seen.add(key);
      // Churn between calls: delete old keys and insert new ones (which reuse freed slots).
      for (let j = 0; j < 5; j++, step++) {
        reply('DEL', `churn:${step}`);
        reply('SET', `fresh:${step}`, 'v');
      }
      cursor = next;
      if (cursor === '0') break;
    }
    expect(cursor).toBe('0');
    for (const key of stable) expect(seen.has(key)).toBe(true);
  });

  test('SCAN deletes expired keys it meets and does not return them', () => {
    const { cmd, reply, clock } = fixture();
    reply('SET', 'a', 'v', 'PX', '5');
    reply('SET', 'b', 'v');
    clock.now += 5;
    expect(cmd('SCAN', '0')).toEqual({ reply: ['0', ['b']], records: ['DEL a'] });
  });
});
