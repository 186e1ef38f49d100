/**
 * Import from Redis: the REAL /usr/bin/redis-server (7.0) writes an AOF
 * (appendonly yes, aof-use-rdb-preamble no), and loadAof reads its multi-part
 * directory, and a plain single-file appendonly.aof, into records. And the
 * other way round: redis-server loads a directory that aofq wrote.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { realFs } from '../../src/aof/fs.js';
import { loadAof } from '../../src/aof/loader.js';
import { persistManifest } from '../../src/aof/manifest.js';
import { silentLogger } from '../../src/util/logger.js';
import { buildAofqFile, CollectingSink, testConfig } from '../helpers/aof-fixtures.js';
import { freePort } from '../helpers/server-process.js';

const REDIS_SERVER = '/usr/bin/redis-server';
const DEADLINE_MS = 15_000;
const POLL_MS = 20;

interface RedisProcess {
  child: ChildProcess;
  port: number;
  client: Redis;
  log: () => string;
}

let root: string;
let running: RedisProcess | null = null;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'aofq-redis-'));
});
afterEach(async () => {
  if (running !== null) {
    running.client.disconnect();
    const pid = running.child.pid;
    if (pid !== undefined && running.child.exitCode === null && running.child.signalCode === null) {
      process.kill(pid, 'SIGKILL');
    }
    running = null;
  }
  await fsp.rm(root, { recursive: true, force: true });
});

async function startRedis(dir: string, extra: string[] = []): Promise<RedisProcess> {
  const port = await freePort();
  const child = spawn(
    REDIS_SERVER,
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--dir',
      dir,
      '--save',
      '',
      '--daemonize',
      'no',
      '--appendonly',
      'yes',
      '--aof-use-rdb-preamble',
      'no',
      '--appendfsync',
      'always',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {
    // Connection refused while the server starts: the loop below retries.
  });
  running = { child, port, client, log: () => log };
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${log}`);
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') break;
    } catch {
      client.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server did not start: ${log}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  // The AOF is on and the initial rewrite is done once aof_rewrite_in_progress is 0 and aof_enabled 1.
  for (;;) {
    const info = await client.info('persistence');
    if (
      /aof_enabled:1/.test(info) &&
      /aof_rewrite_in_progress:0/.test(info) &&
      /aof_rewrite_scheduled:0/.test(info)
    )
      break;
    if (Date.now() > deadline) throw new Error(`AOF not ready: ${info}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return running;
}

async function stopRedis(r: RedisProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => r.child.once('exit', () => resolve()));
  try {
    await r.client.shutdown();
  } catch {
    // The connection closes as the server exits.
  }
  r.client.disconnect();
  await exited;
  running = null;
}

async function waitRewriteDone(client: Redis): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const info = await client.info('persistence');
    if (
      /aof_rewrite_in_progress:0/.test(info) &&
      /aof_rewrite_scheduled:0/.test(info) &&
      /aof_last_bgrewrite_status:ok/.test(info)
    ) {
      return;
    }
    if (Date.now() > deadline) throw new Error(`rewrite did not finish: ${info}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function writeSome(client: Redis): Promise<void> {
  await client.set('s', 'hello');
  await client.hset('h', 'f1', 'v1', 'f2', 'v2');
  await client.expire('s', 1000);
  await client.incr('n');
  await client.incr('n');
  await client.multi().set('m1', 'a').incr('n').exec();
}

describe('import from redis-server 7', () => {
  it('loads a multi-part dir written by Redis (incr file with SELECT, MULTI/EXEC, PEXPIREAT)', async () => {
    const r = await startRedis(root);
    await writeSome(r.client);
    await stopRedis(r);
    const manifest = await fsp.readFile(path.join(root, 'appendonlydir', 'appendonly.aof.manifest'), 'utf8');
    expect(manifest).toContain('type b');
    const sink = new CollectingSink();
    const result = await loadAof(testConfig(root), realFs, sink, silentLogger);
    const commands = sink.commands().map((c) => c.toUpperCase());
    expect(commands[0]).toBe('SELECT 0');
    const rest = commands.slice(1);
    expect(rest[0]).toBe('SET S HELLO');
    expect(rest[1]).toBe('HSET H F1 V1 F2 V2');
    expect(rest[2]).toMatch(/^PEXPIREAT S \d{13}$/);
    // MULTI/EXEC dropped: their records come in order.
    expect(rest.slice(3)).toEqual(['INCR N', 'INCR N', 'SET M1 A', 'INCR N']);
    expect(sink.lsns()).toEqual(sink.records.map((_r, i) => i + 1));
    expect(result.lastFile?.header).toBeNull();
    expect(result.truncated).toBeNull();
  });

  it('loads the base of a BGREWRITEAOF, and a plain single-file appendonly.aof made from it', async () => {
    const r = await startRedis(root);
    await writeSome(r.client);
    await r.client.bgrewriteaof();
    await waitRewriteDone(r.client);
    await r.client.set('after', 'rewrite');
    await stopRedis(r);
    const sink = new CollectingSink();
    await loadAof(testConfig(root), realFs, sink, silentLogger);
    const commands = sink.commands().map((c) => c.toUpperCase());
    // The base holds the state (SELECT, SET, HSET/HMSET, PEXPIREAT, ...); the new incr the last SET.
    expect(commands).toContain('SET S HELLO');
    expect(commands).toContain('SET M1 A');
    expect(commands).toContain('SET N 3');
    expect(commands.some((c) => /^(HSET|HMSET) H /.test(c))).toBe(true);
    expect(commands.at(-1)).toBe('SET AFTER REWRITE');

    // A plain single file: Redis's base (RESP, no preamble) placed where Redis 6 kept appendonly.aof.
    const dir = path.join(root, 'appendonlydir');
    const base = (await fsp.readdir(dir)).find((f) => f.endsWith('.base.aof'));
    expect(base).toBeDefined();
    const legacyRoot = path.join(root, 'legacy');
    await fsp.mkdir(legacyRoot);
    await fsp.copyFile(path.join(dir, base as string), path.join(legacyRoot, 'appendonly.aof'));
    const legacySink = new CollectingSink();
    const legacy = await loadAof(testConfig(legacyRoot), realFs, legacySink, silentLogger);
    expect(legacy.imported).toBe(true);
    expect(legacySink.commands().map((c) => c.toUpperCase())).toEqual(
      commands.slice(0, legacySink.records.length),
    );
    expect(legacySink.commands().map((c) => c.toUpperCase())).toContain('SET S HELLO');
  });

  it('redis-server loads a directory written by aofq (header, batches, #TS, our manifest fields)', async () => {
    const dir = path.join(root, 'appendonlydir');
    await fsp.mkdir(dir);
    await fsp.writeFile(
      path.join(dir, 'appendonly.aof.1.base.aof'),
      buildAofqFile({ kind: 'base', lsn: 0, timestamps: true, batches: [[['SET', 'k1', 'v1']]] }),
    );
    await fsp.writeFile(
      path.join(dir, 'appendonly.aof.2.incr.aof'),
      buildAofqFile({
        kind: 'incr',
        lsn: 0,
        timestamps: true,
        batches: [
          [
            ['SET', 'k2', 'v2'],
            ['INCR', 'n'],
          ],
          [['INCR', 'n']],
        ],
      }),
    );
    await persistManifest(realFs, dir, 'appendonly.aof', {
      entries: [
        { name: 'appendonly.aof.1.base.aof', seq: 1, type: 'b', startLsn: 0 },
        { name: 'appendonly.aof.2.incr.aof', seq: 2, type: 'i', startLsn: 0 },
      ],
      nextSeq: 3,
      replId: 'abc123',
      baseSize: 100,
    });
    const r = await startRedis(root);
    expect(await r.client.get('k1')).toBe('v1');
    expect(await r.client.get('k2')).toBe('v2');
    expect(await r.client.get('n')).toBe('2');
    await stopRedis(r);
  });
});
