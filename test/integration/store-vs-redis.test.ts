/**
 * Semantic drift check: the same commands, error cases included, run against
 * Debian's redis-server and against the Store; the replies must be equal (error
 * replies by their full text). The store's clock is the wall clock here, so
 * TTL replies in seconds agree; millisecond TTLs are not compared.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isAofqError } from '../../src/errors/index.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { ErrorReply, type RespValue, SimpleString } from '../../src/resp/types.js';
import { Store } from '../../src/store/index.js';

const REDIS = '/usr/bin/redis-server';
const STARTUP_DEADLINE_MS = 10_000;
const REPLY_DEADLINE_MS = 5_000;

/** Replies in one comparable form. */
type Plain = null | string | number | { error: string } | { simple: string } | Plain[];

function plain(value: RespValue): Plain {
  if (value === null) return null;
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint')
    return Number(value) === Number.parseInt(value.toString(), 10) ? value.toString() : '';
  if (Buffer.isBuffer(value)) return value.toString('latin1');
  if (value instanceof SimpleString) return { simple: value.value };
  if (value instanceof ErrorReply) return { error: value.message };
  return value.map(plain);
}

/** A minimal RESP2 reply reader: returns [reply, bytes used] or undefined when incomplete. */
function parseReply(buf: Buffer, at: number): [Plain, number] | undefined {
  const lineEnd = buf.indexOf('\r\n', at);
  if (lineEnd < 0) return undefined;
  const line = buf.toString('latin1', at + 1, lineEnd);
  const next = lineEnd + 2;
  switch (buf[at]) {
    case 0x2b:
      return [{ simple: line }, next];
    case 0x2d:
      return [{ error: line }, next];
    case 0x3a: {
      const n = BigInt(line);
      return [Number.isSafeInteger(Number(n)) ? Number(n) : n.toString(), next];
    }
    case 0x24: {
      const length = Number(line);
      if (length < 0) return [null, next];
      if (buf.length < next + length + 2) return undefined;
      return [buf.toString('latin1', next, next + length), next + length + 2];
    }
    case 0x2a: {
      const count = Number(line);
      if (count < 0) return [null, next];
      const items: Plain[] = [];
      let position = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, position);
        if (item === undefined) return undefined;
        items.push(item[0]);
        position = item[1];
      }
      return [items, position];
    }
    default:
      throw new Error(`bad RESP type byte ${buf[at]}`);
  }
}

class RedisConnection {
  private buffered = Buffer.alloc(0);
  private waiter: (() => void) | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.waiter?.();
    });
  }

  static connect(port: number): Promise<RedisConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new RedisConnection(socket)));
      socket.once('error', reject);
    });
  }

  async call(args: readonly string[]): Promise<Plain> {
    this.socket.write(encodeCommand(args.map((arg) => Buffer.from(arg, 'latin1'))));
    const deadline = Date.now() + REPLY_DEADLINE_MS;
    for (;;) {
      const parsed = this.buffered.length > 0 ? parseReply(this.buffered, 0) : undefined;
      if (parsed !== undefined) {
        this.buffered = this.buffered.subarray(parsed[1]);
        return parsed[0];
      }
      if (Date.now() > deadline) throw new Error(`no reply to ${args.join(' ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

let redis: ChildProcess | undefined;
let connection: RedisConnection | undefined;

beforeAll(async () => {
  if (!existsSync(REDIS)) return;
  const port = await freePort();
  const child = spawn(
    REDIS,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      // One database, as aofq: SELECT 1 then fails on both sides.
      '--databases',
      '1',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  redis = child;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start')), STARTUP_DEADLINE_MS);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}: ${output}`));
    });
  });
  connection = await RedisConnection.connect(port);
});

afterAll(async () => {
  connection?.close();
  const child = redis;
  if (child?.pid !== undefined && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid, 'SIGKILL');
    await exited;
  }
});

function storeCall(store: Store, args: readonly string[]): Plain {
  try {
    const { reply } = store.execute(
      args.map((arg) => Buffer.from(arg, 'latin1')),
      { nowMs: Date.now() },
    );
    return plain(reply);
  } catch (err) {
    if (isAofqError(err)) return { error: err.toResp() };
    throw err;
  }
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Each entry is one command; a function builds it at run time (absolute times). */
const SCRIPT: (string[] | (() => string[]))[] = [
  ['PING'],
  ['PING', 'hello'],
  ['PING', 'a', 'b'],
  ['ECHO', 'hi'],
  ['SELECT', '0'],
  ['SELECT', '1'],
  ['SELECT', 'x'],
  ['SELECT', '-1'],
  ['SELECT', '99999999999'],
  ['NOSUCHCMD', 'a', 'b'],
  ['nosuch'],
  ['GET'],
  ['GET', 'k', 'extra'],
  // strings
  ['SET', 'k', 'v'],
  ['GET', 'k'],
  ['SET', 'k', 'v2', 'NX'],
  ['SET', 'k', 'w', 'XX', 'GET'],
  ['SET', 'k', 'z', 'NX', 'GET'],
  ['SET', 'fresh', 'v', 'GET'],
  ['SET', 'k', 'v', 'NX', 'XX'],
  ['SET', 'k', 'v', 'EX', '0'],
  ['SET', 'k', 'v', 'EX', '-1'],
  ['SET', 'k', 'v', 'PX', '0'],
  ['SET', 'k', 'v', 'EX', 'abc'],
  ['SET', 'k', 'v', 'EX'],
  ['SET', 'k', 'v', 'EX', '10', 'PX', '100'],
  ['SET', 'k', 'v', 'PX', '100000', 'KEEPTTL'],
  ['SET', 'k', 'v', 'KEEPTTL', 'EX', '5'],
  ['SET', 'k', 'v', 'BOGUS'],
  ['SET', 'k'],
  ['SET', 'k', 'v', 'EX', '100'],
  ['TTL', 'k'],
  ['SET', 'k', 'w', 'KEEPTTL'],
  ['TTL', 'k'],
  ['SET', 'k', 'x'],
  ['TTL', 'k'],
  ['SET', 'e', 'v', 'EX', '10', 'EX', '20'],
  ['TTL', 'e'],
  () => ['SET', 'at', 'v', 'EXAT', String(nowSeconds() + 50)],
  ['EXISTS', 'at'],
  ['SET', 'k', 'v', 'EX', '9223372036854775807'],
  ['DEL', 'k', 'missing', 'k', 'fresh'],
  ['DEL', 'missing'],
  ['DEL'],
  ['SET', 'a', '1'],
  ['EXISTS', 'a', 'a', 'b', 'missing'],
  ['INCR', 'n'],
  ['INCRBY', 'n', '10'],
  ['DECR', 'n'],
  ['DECRBY', 'n', '5'],
  ['DECRBY', 'n', '-9223372036854775808'],
  ['INCRBY', 'n', 'abc'],
  ['INCRBY', 'n', '1.5'],
  ['INCRBY', 'n', '+1'],
  ['INCRBY', 'n', '9223372036854775808'],
  ['SET', 'max', '9223372036854775807'],
  ['INCR', 'max'],
  ['INCRBY', 'max', '1'],
  ['INCRBY', 'max', '0'],
  ['SET', 'min', '-9223372036854775808'],
  ['DECR', 'min'],
  ['SET', 's', 'abc'],
  ['INCR', 's'],
  ['SET', 'z', '007'],
  ['INCR', 'z'],
  ['APPEND', 's', 'def'],
  ['APPEND', 'newstr', 'xy'],
  ['GET', 's'],
  ['STRLEN', 's'],
  ['STRLEN', 'nope'],
  // hashes
  ['HSET', 'h', 'f', '1', 'g', '2'],
  ['HSET', 'h', 'f', '3'],
  ['HSET', 'h', 'f'],
  ['HSET', 'h', 'f', '1', 'g'],
  ['HGET', 'h', 'f'],
  ['HGET', 'h', 'nope'],
  ['HGET', 'nope', 'f'],
  ['HGETALL', 'h'],
  ['HGETALL', 'nope'],
  ['HLEN', 'h'],
  ['HDEL', 'h', 'g', 'nope'],
  ['HDEL', 'h', 'nope'],
  ['HINCRBY', 'h', 'f', '5'],
  ['HINCRBY', 'h', 'new', '-3'],
  ['HSET', 'h', 't', 'abc', 'm', '9223372036854775807'],
  ['HINCRBY', 'h', 't', '1'],
  ['HINCRBY', 'h', 'm', '1'],
  ['HINCRBY', 'h', 'f', 'x'],
  ['HGETALL', 'h'],
  ['GET', 'h'],
  ['INCR', 'h'],
  ['APPEND', 'h', 'x'],
  ['STRLEN', 'h'],
  ['SET', 'h', 'x', 'GET'],
  ['HGET', 's', 'f'],
  ['HSET', 's', 'f', 'v'],
  ['HLEN', 's'],
  ['HDEL', 'hh', 'f'],
  ['HSET', 'hh', 'f', 'v'],
  ['HDEL', 'hh', 'f'],
  ['EXISTS', 'hh'],
  // time to live
  ['SET', 'k', 'v'],
  ['TTL', 'k'],
  ['TTL', 'nope'],
  ['PTTL', 'nope'],
  ['PTTL', 'k'],
  ['EXPIRE', 'k', '100'],
  ['TTL', 'k'],
  ['EXPIRE', 'k', 'notanumber'],
  ['EXPIRE', 'k', '100', 'NX'],
  ['EXPIRE', 'k', '200', 'GT'],
  ['TTL', 'k'],
  ['EXPIRE', 'k', '50', 'GT'],
  ['EXPIRE', 'k', '300', 'LT'],
  ['EXPIRE', 'k', '60', 'LT', 'XX'],
  ['TTL', 'k'],
  ['EXPIRE', 'k', '1', 'NX', 'XX'],
  ['EXPIRE', 'k', '1', 'GT', 'LT'],
  ['EXPIRE', 'k', '1', 'FOO'],
  ['EXPIRE', 'k', '9223372036854775807'],
  ['EXPIRE', 'k', '-9223372036854775807'],
  ['PEXPIRE', 'k', '9223372036854775807'],
  ['PEXPIRE', 'k', '30000'],
  ['TTL', 'k'],
  () => ['PEXPIREAT', 'k', String(Date.now() + 40_000)],
  ['TTL', 'k'],
  ['PERSIST', 'k'],
  ['PERSIST', 'k'],
  ['PERSIST', 'nope'],
  ['TTL', 'k'],
  ['EXPIRE', 'nope', '10'],
  ['EXPIRE', 'k', '10', 'XX'],
  ['EXPIRE', 'k', '10', 'GT'],
  ['EXPIRE', 'k', '10', 'LT'],
  ['TTL', 'k'],
  ['EXPIRE', 'k', '-1'],
  ['EXISTS', 'k'],
  ['SET', 'k', 'v'],
  ['PEXPIREAT', 'k', '1000'],
  ['EXISTS', 'k'],
  ['EXPIRE', 'k'],
  ['SET', 'k', 'v'],
  ['EXPIRE', 'k', '-1', 'GT'],
  ['EXPIRE', 'k', '-1', 'LT'],
  ['EXISTS', 'k'],
  ['SET', 'k', 'v'],
  ['EXPIRE', 'k', '0'],
  ['EXISTS', 'k'],
  ['SET', 'past', 'v', 'PXAT', '1'],
  ['GET', 'past'],
  ['SET', 'past', 'v', 'EXAT', '1'],
  ['EXISTS', 'past'],
  // odd inputs
  ['SET', 'bin\u0000\u00ff\r\n', '\u0000\u0001'],
  ['GET', 'bin\u0000\u00ff\r\n'],
  ['HSET', 'dup', 'f', '1', 'f', '2'],
  ['HGETALL', 'dup'],
  ['ECHO', ''],
  ['SET', 'sp', '  1'],
  ['INCR', 'sp'],
  ['gEt', 'a', 'b'],
  ['FooBar', 'x'.repeat(200), 'y'],
  // keyspace
  ['TYPE', 's'],
  ['TYPE', 'h'],
  ['TYPE', 'nope'],
  ['DBSIZE'],
  ['DBSIZE', 'x'],
  ['SCAN', 'abc'],
  ['SCAN', '0', 'COUNT', '0'],
  ['SCAN', '0', 'COUNT', 'x'],
  ['SCAN', '0', 'MATCH'],
  ['SCAN', '0', 'BOGUS', 'x'],
  ['FLUSHALL', 'BAD'],
  ['FLUSHALL', 'SYNC', 'ASYNC'],
  ['FLUSHALL', 'ASYNC'],
  ['DBSIZE'],
  ['GET', 's'],
];

describe.skipIf(!existsSync(REDIS))('the store answers as redis-server does', () => {
  test('a fixed script of commands, error cases included', async () => {
    const store = new Store();
    const mismatches: string[] = [];
    for (const entry of SCRIPT) {
      const args = typeof entry === 'function' ? entry() : entry;
      const expected = await connection!.call(args);
      const actual = storeCall(store, args);
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        mismatches.push(
          `${args.join(' ')}\n  redis: ${JSON.stringify(expected)}\n  store: ${JSON.stringify(actual)}`,
        );
      }
    }
    expect(mismatches).toEqual([]);
  });

  test('SCAN with MATCH and TYPE returns the same key sets', async () => {
    const store = new Store();
    const setup: string[][] = [['FLUSHALL']];
    for (let i = 0; i < 60; i++) setup.push(['SET', `user:${i}`, 'v']);
    for (let i = 0; i < 5; i++) setup.push(['HSET', `user:h${i}`, 'f', 'v']);
    setup.push(['SET', 'ot[h]er', 'v'], ['SET', 'a*b', 'v'], ['SET', 'a\\b', 'v']);
    for (const args of setup) {
      await connection!.call(args);
      storeCall(store, args);
    }
    const scanAll = async (call: (args: string[]) => Promise<Plain> | Plain, options: string[]) => {
      const keys: string[] = [];
      let cursor = '0';
      for (let calls = 0; calls < 1000; calls++) {
        const [next, page] = (await call(['SCAN', cursor, ...options])) as [string, string[]];
        keys.push(...page);
        cursor = next;
        if (cursor === '0') return [...new Set(keys)].sort();
      }
      throw new Error('SCAN did not finish');
    };
    for (const options of [
      [],
      ['MATCH', 'user:?'],
      ['MATCH', 'user:[1-3]*', 'COUNT', '3'],
      ['MATCH', 'user:[^1-3]?'],
      ['TYPE', 'hash'],
      ['TYPE', 'STRING', 'MATCH', '*h*'],
      ['TYPE', 'list'],
      ['MATCH', 'ot\\[h]er'],
      ['MATCH', 'a\\*b'],
      ['MATCH', 'a\\\\b'],
      ['MATCH', '*[h'],
    ]) {
      const expected = await scanAll((args) => connection!.call(args), options);
      const actual = await scanAll((args) => storeCall(store, args), options);
      expect(actual, options.join(' ')).toEqual(expected);
    }
  });
});
