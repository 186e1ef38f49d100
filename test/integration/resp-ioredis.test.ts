/**
 * The RESP port driven by the real ioredis client: handshake (HELLO 3 falls
 * back to RESP2, CLIENT SETINFO, INFO ready check), the store's commands,
 * a pipeline of 1,000 mixed commands with every reply checked, error replies,
 * and AUTH through ioredis.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RespFixture, startRespFixture } from '../helpers/resp-server.js';

let fixture: RespFixture;
let redis: Redis;

beforeAll(async () => {
  fixture = await startRespFixture();
  redis = new Redis({
    host: '127.0.0.1',
    port: fixture.port.port,
    lazyConnect: true,
    connectionName: 'itest',
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  await redis.connect();
});

afterAll(async () => {
  redis?.disconnect();
  await fixture?.close();
});

describe('RESP port with ioredis', () => {
  it('connects (RESP3 refused, RESP2 used) and names the connection', async () => {
    expect(redis.status).toBe('ready');
    expect(await redis.client('GETNAME')).toBe('itest');
    const info = (await redis.client('INFO')) as string;
    expect(info).toMatch(/ name=itest /);
    expect(info).toMatch(/ lib-name=ioredis /);
    expect(info).toMatch(/ resp=2 /);
    await expect(redis.call('HELLO', '3')).rejects.toThrow(
      'NOPROTO sorry, this protocol version is not supported',
    );
    const hello = (await redis.call('HELLO', '2')) as unknown[];
    expect(hello.slice(0, 6)).toEqual(['server', 'redis', 'version', '7.0.0', 'proto', 2]);
  }, 10_000);

  it('runs the store commands', async () => {
    expect(await redis.ping()).toBe('PONG');
    expect(await redis.echo('hi')).toBe('hi');
    expect(await redis.select(0)).toBe('OK');
    expect(await redis.set('greeting', 'hello')).toBe('OK');
    expect(await redis.get('greeting')).toBe('hello');
    expect(await redis.append('greeting', ' world')).toBe(11);
    expect(await redis.strlen('greeting')).toBe(11);
    expect(await redis.incrby('n', 5)).toBe(5);
    expect(await redis.decr('n')).toBe(4);
    expect(await redis.hset('h', 'a', '1', 'b', '2')).toBe(2);
    expect(await redis.hgetall('h')).toEqual({ a: '1', b: '2' });
    expect(await redis.hincrby('h', 'a', 10)).toBe(11);
    expect(await redis.expire('greeting', 100)).toBe(1);
    const ttl = await redis.ttl('greeting');
    expect(ttl).toBeGreaterThan(90);
    expect(ttl).toBeLessThanOrEqual(100);
    expect(await redis.type('h')).toBe('hash');
    expect(await redis.exists('greeting', 'h', 'missing')).toBe(2);
    expect(await redis.del('greeting', 'missing')).toBe(1);
    expect(await redis.get('greeting')).toBeNull();
    expect(await redis.dbsize()).toBe(2);
  });

  it('answers INFO with Redis sections and field names', async () => {
    const info = await redis.info();
    for (const title of ['Server', 'Clients', 'Persistence', 'Stats', 'Replication', 'Keyspace']) {
      expect(info).toContain(`# ${title}\r\n`);
    }
    expect(info).toMatch(/\r\nredis_version:7\.0\.0\r\n/);
    expect(info).toMatch(/\r\naofq_version:\d+\.\d+\.\d+/);
    expect(info).toContain(`\r\nprocess_id:${process.pid}\r\n`);
    expect(info).toContain(`\r\ntcp_port:${fixture.port.port}\r\n`);
    expect(info).toMatch(/\r\nconnected_clients:1\r\n/);
    expect(info).toMatch(/\r\naof_enabled:1\r\n/);
    expect(info).toMatch(/\r\nrole:master\r\n/);
    expect(info).toMatch(/\r\nconnected_slaves:0\r\n/);
    expect(info).toMatch(/\r\ndb0:keys=\d+,expires=\d+,avg_ttl=0\r\n/);
    const stats = await redis.info('stats');
    expect(stats.startsWith('# Stats\r\n')).toBe(true);
    expect(stats).not.toContain('# Server');
    const processed = Number(/total_commands_processed:(\d+)/.exec(stats)?.[1]);
    expect(processed).toBeGreaterThan(10);
  });

  it('runs a pipeline of 1,000 mixed commands and checks every reply', async () => {
    await redis.del('counter');
    const pipeline = redis.pipeline();
    const expected: ((result: [Error | null, unknown]) => void)[] = [];
    let counter = 0;
    for (let i = 0; i < 1000; i++) {
      switch (i % 6) {
        case 0:
          pipeline.set(`p:${i}`, `value-${i}`);
          expected.push(([error, value]) => {
            expect(error).toBeNull();
            expect(value).toBe('OK');
          });
          break;
        case 1: {
          const key = `p:${i - 1}`;
          pipeline.get(key);
          expected.push(([error, value]) => {
            expect(error).toBeNull();
            expect(value).toBe(`value-${i - 1}`);
          });
          break;
        }
        case 2: {
          counter++;
          const want = counter;
          pipeline.incr('counter');
          expected.push(([error, value]) => {
            expect(error).toBeNull();
            expect(value).toBe(want);
          });
          break;
        }
        case 3:
          pipeline.hset(`ph:${i % 7}`, `f${i}`, String(i));
          expected.push(([error, value]) => {
            expect(error).toBeNull();
            expect(value).toBe(1);
          });
          break;
        case 4:
          // A hash command on a string: the error comes back in place, the pipeline goes on.
          pipeline.hget(`p:${i - 4}`, 'f');
          expected.push(([error]) => {
            expect(error?.message).toBe('WRONGTYPE Operation against a key holding the wrong kind of value');
          });
          break;
        default:
          pipeline.exists(`p:${i - 5}`, `p:missing:${i}`);
          expected.push(([error, value]) => {
            expect(error).toBeNull();
            expect(value).toBe(1);
          });
      }
    }
    const results = await pipeline.exec();
    expect(results).toHaveLength(1000);
    results!.forEach((result, index) => {
      expected[index]!(result as [Error | null, unknown]);
    });
    expect(await redis.get('counter')).toBe(String(counter));
  });

  it('replies with Redis error lines', async () => {
    await expect(redis.call('NOSUCHCOMMAND', 'a', 'b')).rejects.toThrow(
      "ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'a' 'b' ",
    );
    await expect(redis.call('GET')).rejects.toThrow("ERR wrong number of arguments for 'get' command");
    await redis.set('text', 'abc');
    await expect(redis.incr('text')).rejects.toThrow('ERR value is not an integer or out of range');
    await expect(redis.select(1)).rejects.toThrow('ERR DB index is out of range');
    await expect(redis.call('CLIENT', 'NOPE')).rejects.toThrow(
      "ERR unknown subcommand 'NOPE'. Try CLIENT HELP.",
    );
    await expect(redis.call('CONFIG', 'SET', 'nosuch', 'x')).rejects.toThrow(
      "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'",
    );
    await expect(redis.call('CONFIG', 'SET', 'appendfsync', 'sometimes')).rejects.toThrow(
      "ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: always, everysec, no",
    );
    await expect(redis.call('WAITAOF', '2', '0', '0')).rejects.toThrow(
      'ERR value is out of range, value must between 0 and 1',
    );
    await expect(redis.call('WAITAOF', '1', '0', '-1')).rejects.toThrow('ERR timeout is negative');
    // The connection is still fine.
    expect(await redis.ping()).toBe('PONG');
  });

  it('answers COMMAND, COMMAND COUNT, COMMAND INFO and COMMAND DOCS', async () => {
    const count = (await redis.call('COMMAND', 'COUNT')) as number;
    const all = (await redis.call('COMMAND')) as unknown[][];
    expect(all).toHaveLength(count);
    const names = all.map((entry) => entry[0]);
    for (const name of ['get', 'set', 'hset', 'info', 'config', 'waitaof', 'auth', 'client']) {
      expect(names).toContain(name);
    }
    const [set] = (await redis.call('COMMAND', 'INFO', 'set')) as unknown[][];
    expect(set!.slice(0, 6)).toEqual(['set', -3, ['write'], 1, 1, 1]);
    const docs = (await redis.call('COMMAND', 'DOCS', 'get')) as unknown[];
    expect(docs[0]).toBe('get');
    expect(docs[1]).toContain('summary');
  });

  it('answers CONFIG GET with patterns and CONFIG SET appendfsync changes the engine', async () => {
    expect(await redis.config('GET', 'appendfsync')).toEqual(['appendfsync', 'everysec']);
    expect(await redis.config('SET', 'appendfsync', 'no')).toBe('OK');
    expect(fixture.node.aof.appendFsync).toBe('no');
    expect(await redis.config('SET', 'appendfsync', 'everysec')).toBe('OK');
    const pairs = (await redis.config('GET', 'append*')) as string[];
    expect(pairs).toContain('appendonly');
    expect(pairs[pairs.indexOf('appendonly') + 1]).toBe('yes');
    await expect(redis.config('SET', 'proto-max-bulk-len', '1000')).rejects.toThrow(
      "ERR CONFIG SET failed: 'proto-max-bulk-len' cannot be changed at run time",
    );
  });
});

describe('RESP port AUTH with ioredis', () => {
  it('connects with a token and is refused without one', async () => {
    const secured = await startRespFixture({ port: { tokens: [{ name: 'app', secret: 'open-sesame' }] } });
    const good = new Redis({
      host: '127.0.0.1',
      port: secured.port.port,
      password: 'open-sesame',
      lazyConnect: true,
      retryStrategy: () => null,
    });
    const bad = new Redis({
      host: '127.0.0.1',
      port: secured.port.port,
      enableReadyCheck: false,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    try {
      await good.connect();
      expect(await good.set('k', 'v')).toBe('OK');
      expect(await good.get('k')).toBe('v');
      await bad.connect();
      await expect(bad.get('k')).rejects.toThrow('NOAUTH Authentication required.');
      await expect(bad.auth('wrong')).rejects.toThrow(
        'WRONGPASS invalid username-password pair or user is disabled.',
      );
      expect(await bad.auth('app', 'open-sesame')).toBe('OK');
      expect(await bad.get('k')).toBe('v');
    } finally {
      good.disconnect();
      bad.disconnect();
      await secured.close();
    }
  }, 15_000);
});
