/**
 * `aofq server` assembled, against real server processes on loopback: the
 * WebSocket API on the HTTP port (subscribe, push, ack), the RESP port with
 * Debian's redis-cli (INFO persistence, CONFIG SET appendfsync, BGREWRITEAOF),
 * HTTP and RESP sharing one node and one AOF, the same tokens on HTTP, RESP
 * and WebSocket, /metrics after a workload, /docs, retryJob, a SIGTERM that
 * closes WebSocket clients with a close frame and loses no acknowledged job,
 * and /readyz reporting the real load progress of a large AOF.
 */
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimpleString } from '../../src/resp/types.js';
import { RawClient, runTool } from '../helpers/resp-server.js';
import { runServerToExit, type ServerProcess, startServer } from '../helpers/server-process.js';
import { type Msg, WsTestClient } from '../helpers/ws-client.js';

const REDIS_CLI = '/usr/bin/redis-cli';

const SECRETS = {
  admin: 'admin-secret-0123456789abcdef',
  producer: 'producer-secret-0123456789ab',
  consumer: 'consumer-secret-0123456789ab',
} as const;
type Who = keyof typeof SECRETS | 'none';
const TOKENS = Object.entries(SECRETS)
  .map(([role, secret]) => `${role}1:${role}:${secret}`)
  .join(',');

interface Answer {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: bodies are checked field by field
  body: any;
}

async function call(
  server: ServerProcess,
  method: string,
  path: string,
  who: Who = 'admin',
  body?: unknown,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (who !== 'none') headers.authorization = `Bearer ${SECRETS[who]}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const response = await fetch(`${server.url}${path}`, init);
  const text = await response.text();
  const type = response.headers.get('content-type') ?? '';
  return {
    status: response.status,
    headers: response.headers,
    body: type.includes('json') ? JSON.parse(text) : text,
  };
}

/** The value of one sample of the exposition text, e.g. `aofq_jobs{queue="m",state="completed"}`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (match[2] ?? '').slice(1, -1).matchAll(/(\w+)="([^"]*)"/g))
      found[pair[1] as string] = pair[2] as string;
    const keys = Object.keys(labels);
    if (keys.length !== Object.keys(found).length) continue;
    if (keys.every((key) => found[key] === labels[key])) return Number(match[3]);
  }
  return undefined;
}

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-assembly-'));
  dirs.push(dir);
  return dir;
}
const servers: ServerProcess[] = [];
const clients: WsTestClient[] = [];

afterAll(async () => {
  for (const client of clients) client.socket.terminate();
  for (const server of servers) await server.stop('SIGKILL').catch(() => undefined);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function connectWs(server: ServerProcess, who: Who): Promise<WsTestClient> {
  const client = await WsTestClient.connect(server.wsUrl, who === 'none' ? {} : { token: SECRETS[who] });
  clients.push(client);
  return client;
}

describe('one server with tokens: WebSocket, RESP, metrics, docs, retryJob', () => {
  let server: ServerProcess;
  let dir: string;
  async function cli(who: Who, ...args: string[]): Promise<string> {
    const auth = who === 'none' ? [] : ['-a', SECRETS[who], '--no-auth-warning'];
    const result = await runTool(
      REDIS_CLI,
      ['-h', '127.0.0.1', '-p', String(server.respPort), ...auth, ...args],
      10_000,
    );
    expect(result.code, result.stderr).toBe(0);
    return result.stdout.trim();
  }

  beforeAll(async () => {
    dir = await tempDir();
    server = await startServer({
      resp: true,
      args: [
        '--dir',
        dir,
        '--loglevel',
        'warning',
        '--appendfsync',
        'everysec',
        '--ws-ping-interval-ms',
        '5000',
      ],
      env: { AOFQ_TOKENS: TOKENS },
    });
    servers.push(server);
  });

  it('serves WebSocket subscribe → push → ack through the real server, with the same tokens', async () => {
    const consumer = await connectWs(server, 'consumer');
    const subscribed = await consumer.request({
      type: 'subscribe',
      queue: 'ws',
      prefetch: 2,
      leaseMs: 60_000,
    });
    expect(subscribed).toMatchObject({ type: 'ok', queue: 'ws', prefetch: 2 });

    const added = await call(server, 'POST', '/v1/queues/ws/jobs', 'producer', {
      name: 'hello',
      data: { n: 1 },
    });
    expect(added.status).toBe(201);
    const push = await consumer.take((m: Msg) => m.type === 'job');
    expect(push).toMatchObject({ queue: 'ws', job: { id: added.body.id, name: 'hello', data: '{"n":1}' } });
    expect(push.token).toBeGreaterThan(0);
    const acked = await consumer.request({
      type: 'ack',
      queue: 'ws',
      id: push.job.id,
      token: push.token,
      returnvalue: 7,
    });
    expect(acked).toMatchObject({ type: 'ok', id: push.job.id });
    const job = await call(server, 'GET', `/v1/queues/ws/jobs/${push.job.id}`, 'consumer');
    expect(job.body).toMatchObject({ state: 'completed', returnvalue: '7' });

    // Producers enqueue over WebSocket too; a producer may not subscribe.
    const producer = await connectWs(server, 'producer');
    expect(await producer.request({ type: 'enqueue', queue: 'ws', name: 'second' })).toMatchObject({
      type: 'ok',
      duplicate: false,
    });
    expect(await producer.request({ type: 'subscribe', queue: 'ws', prefetch: 1 })).toMatchObject({
      type: 'error',
      code: 'AOFQ_ERR_AUTH_FORBIDDEN',
    });
    const second = await consumer.take((m: Msg) => m.type === 'job');
    expect(second.job.name).toBe('second');
    await consumer.request({ type: 'ack', queue: 'ws', id: second.job.id, token: second.token });

    // Without a token: the auth message with a good token works; a bad token closes with 1008.
    const browser = await connectWs(server, 'none');
    expect(await browser.request({ type: 'auth', token: SECRETS.consumer })).toMatchObject({
      role: 'consumer',
    });
    const intruder = await connectWs(server, 'none');
    intruder.send({ type: 'auth', rid: 1, token: 'not-a-token-at-all-0000' });
    expect((await intruder.closed).code).toBe(1008);
    expect(intruder.received[0]).toMatchObject({ type: 'error', code: 'AOFQ_ERR_AUTH_INVALID' });
    browser.close();
    producer.close();
    consumer.close();
  });

  it('answers redis-cli on the RESP port: INFO persistence, CONFIG SET appendfsync, BGREWRITEAOF', async () => {
    expect(server.respPort).toBeGreaterThan(0);
    const denied = await runTool(
      REDIS_CLI,
      ['-h', '127.0.0.1', '-p', String(server.respPort), 'DBSIZE'],
      10_000,
    );
    expect(denied.stdout.trim()).toBe('NOAUTH Authentication required.');

    const info = await cli('admin', 'INFO', 'persistence');
    expect(info).toMatch(/^# Persistence\r?\n/);
    expect(info).toMatch(/\baof_enabled:1\r?\n/);
    expect(info).toMatch(/\bloading:0\r?\n/);

    expect(await cli('admin', 'CONFIG', 'SET', 'appendfsync', 'always')).toBe('OK');
    expect((await cli('admin', 'CONFIG', 'GET', 'appendfsync')).split('\n')).toEqual([
      'appendfsync',
      'always',
    ]);
    // The same node: the HTTP API sees the change.
    expect((await call(server, 'GET', '/v1/admin/config')).body.appendfsync).toBe('always');
    // A token of another role may read and write keys but not reconfigure.
    expect(await cli('consumer', 'SET', 'by-consumer', 'yes')).toBe('OK');
    expect(await cli('consumer', 'CONFIG', 'SET', 'appendfsync', 'no')).toMatch(/may not config set/i);
    expect(await cli('admin', 'CONFIG', 'SET', 'appendfsync', 'everysec')).toBe('OK');

    const before = Number(/aof_rewrites:(\d+)/.exec(info)?.[1]);
    expect(await cli('admin', 'BGREWRITEAOF')).toBe('Background append only file rewriting started');
    // The rewrite runs in the background: poll INFO until it has finished.
    let after = '';
    const deadline = Date.now() + 15_000;
    for (;;) {
      after = await cli('admin', 'INFO', 'persistence');
      if (
        /aof_rewrite_in_progress:0/.test(after) &&
        Number(/aof_rewrites:(\d+)/.exec(after)?.[1]) === before + 1
      )
        break;
      if (Date.now() > deadline) throw new Error(`the rewrite did not finish:\n${after}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(after).toMatch(/aof_last_bgrewrite_status:ok/);
    expect(await cli('consumer', 'BGREWRITEAOF')).toMatch(/may not bgrewriteaof/i);
  });

  it('shares one node and one AOF between RESP and HTTP, across a restart', async () => {
    const lsn = async (): Promise<number> =>
      Number((await call(server, 'GET', '/v1/admin/info?section=persistence')).body.persistence.aof_last_lsn);
    const raw = await RawClient.connect(server.respPort as number);
    try {
      expect(await raw.call('AUTH', SECRETS.producer)).toEqual(new SimpleString('OK'));
      const start = await lsn();
      expect(await raw.call('SET', 'shared', 'from-resp')).toEqual(new SimpleString('OK'));
      // The RESP write is one record of the AOF that HTTP reports on.
      expect(await lsn()).toBe(start + 1);
      const added = await call(server, 'POST', '/v1/queues/shared/jobs', 'producer', { name: 'from-http' });
      expect(added.status).toBe(201);
      const info = String(await raw.call('INFO', 'persistence'));
      expect(Number(/aof_last_lsn:(\d+)/.exec(info)?.[1])).toBe(start + 2);
    } finally {
      raw.close();
    }
    // HTTP 401 without a token, 403 for a role that may not.
    expect((await call(server, 'GET', '/v1/queues', 'none')).status).toBe(401);
    expect((await call(server, 'POST', '/v1/queues/shared/jobs', 'consumer', { name: 'x' })).status).toBe(
      403,
    );

    // Restart on the same directory: both writes are there, each read through its own protocol.
    expect(await server.stop('SIGTERM')).toBe(0);
    const restarted = await startServer({ resp: true, args: ['--dir', dir], env: { AOFQ_TOKENS: TOKENS } });
    servers.push(restarted);
    server = restarted;
    expect(await cli('admin', 'GET', 'shared')).toBe('from-resp');
    const jobs = await call(server, 'GET', '/v1/queues/shared/jobs?state=waiting', 'consumer');
    expect(jobs.body.jobs.map((j: { name: string }) => j.name)).toEqual(['from-http']);
  });

  it('logs the RESP address; a second server on that RESP port exits 1 with a clear message', async () => {
    const listening = server
      .stdout()
      .split('\n')
      .filter((line) => line.includes('"event":"listening"'))
      .map((line) => JSON.parse(line));
    expect(listening).toHaveLength(1);
    expect(listening[0]).toMatchObject({
      port: server.port,
      resp: { host: '127.0.0.1', port: server.respPort },
      open: false,
    });
    // Refused before it loads the AOF: it never gets ready.
    const busy = await runServerToExit([
      '--dir',
      await tempDir(),
      '--port',
      '0',
      '--resp-port',
      String(server.respPort),
    ]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(
      new RegExp(`cannot listen on the RESP port 127\\.0\\.0\\.1:${server.respPort}: .*EADDRINUSE`),
    );
    expect(busy.stdout).not.toMatch(/"event":"ready"/);
  });

  it('retries one failed (or completed) job over HTTP: POST .../retry', async () => {
    const added = await call(server, 'POST', '/v1/queues/retry/jobs', 'producer', {
      name: 'r',
      opts: { attempts: 1 },
    });
    const id = added.body.id as string;
    const leased = await call(server, 'POST', '/v1/queues/retry/leases', 'consumer', { count: 1 });
    const token = leased.body.jobs[0].token as number;
    const nacked = await call(server, 'POST', `/v1/queues/retry/jobs/${id}/nack`, 'consumer', {
      token,
      failedReason: 'smtp down',
    });
    expect(nacked.body).toMatchObject({ id, state: 'failed' });

    expect((await call(server, 'POST', `/v1/queues/retry/jobs/${id}/retry`, 'consumer')).status).toBe(403);
    const retried = await call(server, 'POST', `/v1/queues/retry/jobs/${id}/retry?resetAttemptsMade=true`);
    expect(retried.status).toBe(200);
    expect(retried.body).toEqual({ id, state: 'waiting' });
    const job = await call(server, 'GET', `/v1/queues/retry/jobs/${id}`);
    expect(job.body).toMatchObject({ state: 'waiting', attemptsMade: 0, failedReason: '' });
    expect(job.body.finishedOn).toBeUndefined();

    const again = await call(server, 'POST', `/v1/queues/retry/jobs/${id}/retry`);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('AOFQ_ERR_JOB_STATE');
    const missing = await call(server, 'POST', '/v1/queues/retry/jobs/nope/retry');
    expect(missing.body.code).toBe('AOFQ_ERR_JOB_NOT_FOUND');
    const badState = await call(server, 'POST', `/v1/queues/retry/jobs/${id}/retry?state=active`);
    expect(badState.status).toBe(400);

    // A completed job, with state=completed.
    const second = await call(server, 'POST', '/v1/queues/retry/leases', 'consumer', { count: 1 });
    await call(server, 'POST', `/v1/queues/retry/jobs/${id}/ack`, 'consumer', {
      token: second.body.jobs[0].token,
    });
    expect((await call(server, 'POST', `/v1/queues/retry/jobs/${id}/retry`)).status).toBe(409);
    const completed = await call(server, 'POST', `/v1/queues/retry/jobs/${id}/retry?state=completed`);
    expect(completed.body).toEqual({ id, state: 'waiting' });
  });

  it('serves /metrics to admin tokens, with the counts of a workload', async () => {
    const baseline = (await call(server, 'GET', '/metrics')).body as string;
    const http = (text: string, operation: string, statusClass: string): number =>
      sample(text, 'aofq_http_request_duration_seconds_count', { operation, status_class: statusClass }) ?? 0;
    const fsyncs = (text: string): number => sample(text, 'aofq_aof_fsync_duration_seconds_count') ?? 0;
    expect((await call(server, 'GET', '/metrics', 'none')).status).toBe(401);
    expect((await call(server, 'GET', '/metrics', 'consumer')).status).toBe(403);

    // A workload on its own queue: 5 enqueued (one a duplicate jobId, not counted), 2 acked,
    // 1 nacked (retried), 1 lease left to expire.
    await call(server, 'PUT', '/v1/queues/m', 'admin', { durability: 'fsync', leaseMs: 30_000 });
    for (let i = 0; i < 4; i++) {
      expect(
        (
          await call(server, 'POST', '/v1/queues/m/jobs', 'producer', {
            name: `j${i}`,
            opts: { attempts: 3 },
          })
        ).status,
      ).toBe(201);
    }
    const bulk = await call(server, 'POST', '/v1/queues/m/jobs/bulk', 'producer', {
      jobs: [
        { name: 'custom', opts: { jobId: 'c1' } },
        { name: 'dup', opts: { jobId: 'c1' } },
      ],
    });
    expect(bulk.status).toBe(201);
    const leased = await call(server, 'POST', '/v1/queues/m/leases', 'consumer', { count: 3 });
    const [a, b, c] = leased.body.jobs as Array<{ id: string; token: number }>;
    await call(server, 'POST', `/v1/queues/m/jobs/${a?.id}/ack`, 'consumer', { token: a?.token });
    await call(server, 'POST', `/v1/queues/m/jobs/${b?.id}/ack`, 'consumer', { token: b?.token });
    await call(server, 'POST', `/v1/queues/m/jobs/${c?.id}/nack`, 'consumer', {
      token: c?.token,
      failedReason: 'x',
    });
    const short = await call(server, 'POST', '/v1/queues/m/leases', 'consumer', { count: 1, leaseMs: 100 });
    const expiring = short.body.jobs[0] as { id: string };
    // The lease expires on the leader's timer; wait for the job to be waiting again.
    const deadline = Date.now() + 5000;
    while ((await call(server, 'GET', `/v1/queues/m/jobs/${expiring.id}`)).body.state === 'active') {
      if (Date.now() > deadline) throw new Error('the lease did not expire');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    const scraped = await call(server, 'GET', '/metrics');
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = scraped.body as string;
    const q = { queue: 'm' };
    expect(sample(text, 'aofq_jobs_enqueued_total', q)).toBe(5);
    expect(sample(text, 'aofq_jobs_acked_total', q)).toBe(2);
    expect(sample(text, 'aofq_jobs_nacked_total', q)).toBe(1);
    expect(sample(text, 'aofq_lease_expiries_total', q)).toBe(1);
    expect(sample(text, 'aofq_jobs', { queue: 'm', state: 'completed' })).toBe(2);
    expect(sample(text, 'aofq_jobs', { queue: 'm', state: 'active' })).toBe(0);
    expect(sample(text, 'aofq_jobs', { queue: 'm', state: 'waiting' })).toBe(3);
    expect(sample(text, 'aofq_jobs', { queue: 'm', state: 'failed' })).toBe(0);
    expect(sample(text, 'aofq_queue_paused', q)).toBe(0);
    // HTTP latency by operationId and status class: the 4 single enqueues above (201), the 2 refused scrapes.
    expect(http(text, 'enqueueJob', '2xx') - http(baseline, 'enqueueJob', '2xx')).toBe(4);
    expect(http(text, 'getMetrics', '4xx') - http(baseline, 'getMetrics', '4xx')).toBe(2);
    expect(http(text, 'ackJob', '2xx') - http(baseline, 'ackJob', '2xx')).toBe(2);
    // Each of the 8 writes to the fsync queue, one after the other, waited for an fdatasync of its own.
    expect(fsyncs(text) - fsyncs(baseline)).toBeGreaterThanOrEqual(8);
    expect(sample(text, 'aofq_aof_fsync_duration_seconds_bucket', { le: '+Inf' })).toBe(fsyncs(text));
    const info = (await call(server, 'GET', '/v1/admin/info?section=persistence')).body.persistence;
    expect(sample(text, 'aofq_aof_size_bytes')).toBeGreaterThan(0);
    expect(sample(text, 'aofq_aof_size_bytes')).toBeLessThanOrEqual(info.aof_current_size);
    expect(sample(text, 'aofq_aof_write_ok')).toBe(1);
    expect(sample(text, 'aofq_aof_loading')).toBe(0);
    expect(sample(text, 'aofq_aof_rewrite_in_progress')).toBe(0);
    expect(sample(text, 'aofq_aof_rewrites_total')).toBe(info.aof_rewrites);
    expect(sample(text, 'aofq_aof_delayed_fsyncs_total')).toBe(info.aof_delayed_fsync);
    expect(sample(text, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    // No label carries a job id.
    expect(text).not.toMatch(/\b(jobId|id)="/);
  });

  it('serves the browsable docs at /docs, public, with its assets and an inlined document', async () => {
    const page = await call(server, 'GET', '/docs', 'none');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const assets = [...(page.body as string).matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    expect(assets).toEqual(
      expect.arrayContaining(['/docs/static/swagger-ui-bundle.js', '/docs/static/swagger-ui.css']),
    );
    for (const asset of assets) {
      const response = await fetch(`${server.url}${asset}`);
      expect(response.status, asset).toBe(200);
      expect(response.headers.get('content-type'), asset).toMatch(/javascript|css|image/);
      expect((await response.arrayBuffer()).byteLength, asset).toBeGreaterThan(100);
    }
    const document = (await call(server, 'GET', '/docs/json', 'none')).body;
    expect(document.openapi).toBe('3.1.0');
    expect(document.paths['/v1/queues/{queue}/jobs/{id}/retry'].post.operationId).toBe('retryJob');
    expect(document.components.schemas.JobJson.properties.id).toBeDefined();
    // Every $ref points inside the document: the browser needs no file of the package.
    const refs = [...JSON.stringify(document).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1] as string);
    expect(refs.length).toBeGreaterThan(30);
    for (const ref of refs) expect(ref).toMatch(/^#\/components\//);
    // Nothing else of the package is served under /docs.
    expect((await fetch(`${server.url}/docs/package.json`)).status).toBe(404);
  });
});

describe('shutdown', () => {
  it('SIGTERM closes WebSocket clients with a close frame, releases their leases, loses no acknowledged job', async () => {
    const dir = await tempDir();
    const server = await startServer({ args: ['--dir', dir, '--loglevel', 'warning'] });
    servers.push(server);
    const consumer = await connectWs(server, 'none');
    await consumer.request({ type: 'subscribe', queue: 'sig', prefetch: 5, leaseMs: 60_000 });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const added = await call(server, 'POST', '/v1/queues/sig/jobs', 'none', { name: `s${i}` });
      expect(added.status).toBe(201);
      ids.push(added.body.id);
    }
    const pushes: Msg[] = [];
    for (let i = 0; i < 5; i++) pushes.push(await consumer.take((m: Msg) => m.type === 'job'));
    const acked: string[] = [];
    for (const push of pushes.slice(0, 3)) {
      const ok = await consumer.request({ type: 'ack', queue: 'sig', id: push.job.id, token: push.token });
      expect(ok.type).toBe('ok');
      acked.push(push.job.id);
    }

    const exit = server.stop('SIGTERM');
    const closed = await consumer.closed;
    expect(closed).toEqual({ code: 1001, reason: 'server shutting down' });
    expect(await exit).toBe(0);

    const restarted = await startServer({ args: ['--dir', dir, '--loglevel', 'warning'] });
    servers.push(restarted);
    const counts = (await call(restarted, 'GET', '/v1/queues/sig', 'none')).body.counts;
    // The 2 pushed but unacked jobs were released before the node closed: none is left active.
    expect(counts).toMatchObject({ completed: 3, waiting: 7, active: 0 });
    for (const id of ids) {
      const job = await call(restarted, 'GET', `/v1/queues/sig/jobs/${id}`, 'none');
      expect(job.body.state, id).toBe(acked.includes(id) ? 'completed' : 'waiting');
    }
    await restarted.stop('SIGTERM');
  });
});

describe('startup', () => {
  it('reports the real load progress of a large AOF on /readyz (and /metrics), then becomes ready', async () => {
    // A Redis-style AOF of small SETs over 1024 keys: cheap to write, about 1.5 s to load here.
    const dir = await tempDir();
    const aofDir = join(dir, 'appendonlydir');
    await mkdir(aofDir);
    await writeFile(join(aofDir, 'appendonly.aof.1.base.aof'), '');
    const value = 'v'.repeat(100);
    const parts: string[] = [];
    for (let i = 0; i < 1024; i++) {
      const key = `key:${i}`;
      parts.push(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n${value}\r\n`);
    }
    const chunk = Buffer.from(parts.join(''));
    const file = await open(join(aofDir, 'appendonly.aof.1.incr.aof'), 'w');
    let totalBytes = 0;
    try {
      while (totalBytes < 48 * 1024 * 1024) {
        await file.write(chunk);
        totalBytes += chunk.length;
      }
    } finally {
      await file.close();
    }
    await writeFile(
      join(aofDir, 'appendonly.aof.manifest'),
      'file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n',
    );

    const server = await startServer({ waitReady: false, args: ['--dir', dir, '--loglevel', 'warning'] });
    servers.push(server);
    const seen: Array<{ status: number; doneBytes: number; totalBytes: number; loading: boolean }> = [];
    let loadingMetrics = '';
    let wsWhileLoading = '';
    const deadline = Date.now() + 60_000;
    for (;;) {
      let response: Response;
      try {
        response = await fetch(`${server.url}/readyz`);
      } catch {
        if (server.child.exitCode !== null) throw new Error(`server exited: ${server.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      const body = (await response.json()) as { doneBytes: number; totalBytes: number; loading: boolean };
      seen.push({ status: response.status, ...body });
      if (response.status === 200) break;
      if (loadingMetrics === '' && body.doneBytes > 0) {
        const metrics = await fetch(`${server.url}/metrics`);
        if (metrics.status === 200) loadingMetrics = await metrics.text();
        // A WebSocket upgrade while loading is refused like any API call: 503.
        wsWhileLoading = await WsTestClient.connect(server.wsUrl).then(
          (client) => {
            client.socket.terminate();
            return 'connected';
          },
          (err: Error) => err.message,
        );
      }
      if (Date.now() > deadline) throw new Error(`never ready: ${JSON.stringify(seen.slice(-3))}`);
    }
    const partial = seen.filter((s) => s.status === 503 && s.doneBytes > 0 && s.doneBytes < s.totalBytes);
    expect(partial.length, JSON.stringify(seen.slice(0, 5))).toBeGreaterThan(0);
    for (const s of partial) {
      expect(s.totalBytes).toBe(totalBytes);
      expect(s.loading).toBe(true);
    }
    // Progress only moves forward.
    const done = seen.filter((s) => s.status === 503).map((s) => s.doneBytes);
    expect([...done].sort((x, y) => x - y)).toEqual(done);
    expect(seen.at(-1)).toMatchObject({ status: 200, loading: false });
    // /metrics is served while loading (no tokens here), with the load's progress.
    expect(sample(loadingMetrics, 'aofq_aof_loading')).toBe(1);
    expect(sample(loadingMetrics, 'aofq_aof_load_total_bytes')).toBe(totalBytes);
    expect(sample(loadingMetrics, 'aofq_aof_load_done_bytes')).toBeGreaterThan(0);
    expect(wsWhileLoading).toMatch(/Unexpected server response: 503/);
    await server.stop('SIGTERM');
  });
});
