/**
 * Debian's redis-cli and redis-benchmark against the RESP port: INFO
 * persistence, CONFIG SET/GET appendfsync (which reaches the AOF engine),
 * BGREWRITEAOF, AUTH from redis-cli, and a redis-benchmark run of SET and GET.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RespFixture, runTool, startRespFixture } from '../helpers/resp-server.js';

const REDIS_CLI = '/usr/bin/redis-cli';
const REDIS_BENCHMARK = '/usr/bin/redis-benchmark';

let fixture: RespFixture;

beforeAll(async () => {
  fixture = await startRespFixture();
});

afterAll(async () => {
  await fixture?.close();
});

async function cli(...args: string[]): Promise<string> {
  const result = await runTool(
    REDIS_CLI,
    ['-h', '127.0.0.1', '-p', String(fixture.port.port), ...args],
    10_000,
  );
  expect(result.code).toBe(0);
  return result.stdout;
}

describe('redis-cli', () => {
  it('gets INFO persistence with aof_enabled:1', async () => {
    const out = await cli('INFO', 'persistence');
    expect(out).toMatch(/^# Persistence\r?\n/);
    expect(out).toMatch(/\baof_enabled:1\r?\n/);
    expect(out).toMatch(/\bloading:0\r?\n/);
    expect(out).toMatch(/\baof_last_write_status:ok\r?\n/);
  });

  it('sets appendfsync to always and reads it back', async () => {
    expect((await cli('CONFIG', 'SET', 'appendfsync', 'always')).trim()).toBe('OK');
    expect((await cli('CONFIG', 'GET', 'appendfsync')).trim().split('\n')).toEqual(['appendfsync', 'always']);
    expect(fixture.node.aof.appendFsync).toBe('always');
    expect((await cli('SET', 'cli-key', 'cli value')).trim()).toBe('OK');
    expect((await cli('GET', 'cli-key')).trim()).toBe('cli value');
    expect((await cli('CONFIG', 'SET', 'appendfsync', 'everysec')).trim()).toBe('OK');
  });

  it('runs BGREWRITEAOF (started, or refused while the rewrite is not built)', async () => {
    const out = (await cli('BGREWRITEAOF')).trim();
    const aof = fixture.node.aof as unknown as { rewrite?: unknown };
    if (typeof aof.rewrite === 'function') {
      expect(out).toBe('Background append only file rewriting started');
    } else {
      expect(out).toBe('ERR AOF rewrite is not available in this version of aofq');
    }
  });

  it('authenticates with -a against a port with tokens', async () => {
    const secured = await startRespFixture({ port: { tokens: ['cli-token'] } });
    try {
      const base = ['-h', '127.0.0.1', '-p', String(secured.port.port)];
      const denied = await runTool(REDIS_CLI, [...base, 'DBSIZE'], 10_000);
      expect(denied.stdout.trim()).toBe('NOAUTH Authentication required.');
      const allowed = await runTool(
        REDIS_CLI,
        [...base, '-a', 'cli-token', '--no-auth-warning', 'DBSIZE'],
        10_000,
      );
      expect(allowed.stdout.trim()).toBe('0');
    } finally {
      await secured.close();
    }
  });
});

describe('redis-benchmark', () => {
  it('runs SET and GET with no errors', async () => {
    const result = await runTool(
      REDIS_BENCHMARK,
      ['-h', '127.0.0.1', '-p', String(fixture.port.port), '-t', 'set,get', '-n', '20000', '-q'],
      45_000,
    );
    expect(result.code).toBe(0);
    // -q rewrites a progress line with \r; the final figures end with a newline.
    const lines = result.stdout.split(/[\r\n]+/).map((line) => line.trim());
    const set = lines.find((line) => /^SET: [\d.]+ requests per second/.test(line));
    const get = lines.find((line) => /^GET: [\d.]+ requests per second/.test(line));
    expect(set).toBeDefined();
    expect(get).toBeDefined();
    expect(`${result.stdout}${result.stderr}`).not.toMatch(/error/i);
    console.log(`redis-benchmark -t set,get -n 20000 -q: ${set} | ${get}`);
    // The benchmark's SETs reached the store.
    expect(fixture.node.store.keyspaceInfo().keys).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
