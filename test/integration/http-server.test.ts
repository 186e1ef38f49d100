/**
 * The HTTP API against real `aofq server` processes on loopback: the job
 * lifecycle, long-poll wake-up latency, error paths as problem+json, the auth
 * matrix, restarts (SIGTERM) and crashes (SIGKILL) keeping acknowledged
 * writes, and the configuration's precedence and refusals.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runServerToExit, type ServerProcess, startServer } from '../helpers/server-process.js';

interface Answer {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
  body: any;
}

async function call(
  server: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
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

function expectProblem(answer: Answer, status: number, code: string): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(answer.body).toMatchObject({ status, code });
  expect(typeof answer.body.message).toBe('string');
}

/** Wait until the server has `count` long polls parked (INFO clients blocked_clients), polling briefly. */
async function waitBlocked(server: ServerProcess, count: number): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const info = await call(server, 'GET', '/v1/admin/info?section=clients');
    if (info.body.clients.blocked_clients === count) return;
    if (Date.now() > deadline) throw new Error(`blocked_clients stayed ${info.body.clients.blocked_clients}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-http-'));
  dirs.push(dir);
  return dir;
}
const servers: ServerProcess[] = [];
async function start(...args: Parameters<typeof startServer>): Promise<ServerProcess> {
  const server = await startServer(...args);
  servers.push(server);
  return server;
}

afterAll(async () => {
  for (const server of servers) await server.stop('SIGKILL').catch(() => undefined);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('one server: lifecycle, long polls, errors', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await start({
      args: ['--dir', await tempDir(), '--body-limit', '4kb', '--loglevel', 'warning'],
    });
  });

  it('answers health and serves the contract', async () => {
    expect((await call(server, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await call(server, 'GET', '/readyz')).body).toMatchObject({ ready: true, loading: false });
    const json = await call(server, 'GET', '/openapi.json');
    expect(json.body.openapi).toBe('3.1.0');
    expect(json.body.paths['/v1/queues/{queue}/leases'].post.operationId).toBe('leaseJobs');
    const yaml = await call(server, 'GET', '/openapi.yaml');
    expect(yaml.headers.get('content-type')).toMatch(/yaml/);
    expect(yaml.body).toContain('operationId: enqueueJob');
  });

  it('runs enqueue → lease → ack, and nack → retry → fail', async () => {
    const added = await call(server, 'POST', '/v1/queues/life/jobs', {
      name: 'email',
      data: { to: 'a@b.c' },
    });
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({ name: 'email', state: 'waiting', data: '{"to":"a@b.c"}' });
    const id = added.body.id as string;

    const leased = await call(server, 'POST', '/v1/queues/life/leases', { count: 5, leaseMs: 10_000 });
    expect(leased.status).toBe(200);
    expect(leased.body.jobs).toHaveLength(1);
    const job = leased.body.jobs[0];
    expect(job).toMatchObject({ id, state: 'active' });
    expect(job.token).toBeGreaterThan(0);
    expect(job.leaseUntil).toBeGreaterThan(Date.now());

    const acked = await call(server, 'POST', `/v1/queues/life/jobs/${id}/ack`, {
      token: job.token,
      returnvalue: 42,
    });
    expect(acked.body).toEqual({ id, state: 'completed' });
    const done = await call(server, 'GET', `/v1/queues/life/jobs/${id}`);
    expect(done.body).toMatchObject({ id, state: 'completed', returnvalue: '42' });
    // Acking again with the same token: the lease is gone.
    expectProblem(
      await call(server, 'POST', `/v1/queues/life/jobs/${id}/ack`, { token: job.token }),
      409,
      'AOFQ_ERR_LEASE_LOST',
    );

    const retried = await call(server, 'POST', '/v1/queues/life/jobs', {
      name: 'flaky',
      opts: { attempts: 2 },
    });
    const rid = retried.body.id as string;
    const first = (await call(server, 'POST', '/v1/queues/life/leases', {})).body.jobs[0];
    expect(first.id).toBe(rid);
    const nack1 = await call(server, 'POST', `/v1/queues/life/jobs/${rid}/nack`, {
      token: first.token,
      failedReason: 'boom',
    });
    expect(nack1.status).toBe(200);
    expect(nack1.body.state).toBe('waiting');
    expect((await call(server, 'GET', `/v1/queues/life/jobs/${rid}`)).body).toMatchObject({
      state: 'waiting',
      attemptsMade: 1,
    });
    const second = (await call(server, 'POST', '/v1/queues/life/leases', {})).body.jobs[0];
    expect(second.token).toBeGreaterThan(first.token);
    const nack2 = await call(server, 'POST', `/v1/queues/life/jobs/${rid}/nack`, {
      token: second.token,
      failedReason: 'boom again',
    });
    expect(nack2.body.state).toBe('failed');
    expect((await call(server, 'GET', `/v1/queues/life/jobs/${rid}`)).body).toMatchObject({
      state: 'failed',
      failedReason: 'boom again',
      attemptsMade: 2,
    });
    const failed = await call(server, 'GET', '/v1/queues/life/jobs?state=failed&limit=10');
    expect(failed.body.jobs.map((j: { id: string }) => j.id)).toEqual([rid]);
    const info = await call(server, 'GET', '/v1/queues/life');
    expect(info.body.counts).toMatchObject({ completed: 1, failed: 1, waiting: 0, active: 0 });
  });

  it('returns 200 with the existing job for a repeated opts.jobId, and enqueues bulk atomically', async () => {
    const first = await call(server, 'POST', '/v1/queues/idem/jobs', {
      name: 'a',
      opts: { jobId: 'order-1' },
    });
    expect(first.status).toBe(201);
    const again = await call(server, 'POST', '/v1/queues/idem/jobs', {
      name: 'b',
      opts: { jobId: 'order-1' },
    });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: 'order-1', name: 'a' });
    const bulk = await call(server, 'POST', '/v1/queues/idem/jobs/bulk', {
      jobs: [{ name: 'x' }, { name: 'y' }],
    });
    expect(bulk.status).toBe(201);
    expect(bulk.body.jobs.map((j: { name: string }) => j.name)).toEqual(['x', 'y']);
    const bad = await call(server, 'POST', '/v1/queues/idem/jobs/bulk', {
      jobs: [{ name: 'ok' }, { name: 'bad', opts: { delay: -1 } }],
    });
    expectProblem(bad, 400, 'AOFQ_ERR_HTTP_VALIDATION');
    expect((await call(server, 'GET', '/v1/queues/idem')).body.counts.waiting).toBe(3);
  });

  it('wakes a long poll within 200 ms of an enqueue', async () => {
    const polling = call(server, 'POST', '/v1/queues/wake/leases', { waitMs: 10_000 });
    await waitBlocked(server, 1);
    const sentAt = performance.now();
    const added = await call(server, 'POST', '/v1/queues/wake/jobs', { name: 'ping' });
    const answer = await polling;
    const wakeMs = performance.now() - sentAt;
    expect(answer.body.jobs.map((j: { id: string }) => j.id)).toEqual([added.body.id]);
    expect(wakeMs).toBeLessThan(200);
    process.stdout.write(`long-poll wake-up: ${wakeMs.toFixed(1)} ms after the enqueue was sent\n`);
  });

  it('ends an empty long poll at waitMs', async () => {
    const started = performance.now();
    const answer = await call(server, 'POST', '/v1/queues/quiet/leases', { waitMs: 300 });
    const elapsed = performance.now() - started;
    expect(answer.body.jobs).toEqual([]);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2000);
  });

  it('answers every error as problem+json with its code', async () => {
    expectProblem(await call(server, 'GET', '/v1/nothing-here'), 404, 'AOFQ_ERR_HTTP_NOT_FOUND');
    expectProblem(
      await call(server, 'POST', '/v1/queues/e/jobs', { name: 'a', extra: 1 }),
      400,
      'AOFQ_ERR_HTTP_VALIDATION',
    );
    expectProblem(await call(server, 'POST', '/v1/queues/e/jobs', '{"name":'), 400, 'AOFQ_ERR_HTTP_BAD_JSON');
    expectProblem(
      await call(server, 'POST', '/v1/queues/e/jobs', { name: 'a', data: 'x'.repeat(5000) }),
      413,
      'AOFQ_ERR_HTTP_BODY_TOO_LARGE',
    );
    expectProblem(
      await call(server, 'POST', '/v1/queues/e/jobs', 'name=a', { 'content-type': 'text/plain' }),
      415,
      'AOFQ_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE',
    );
    expectProblem(
      await call(server, 'POST', '/v1/queues/bad%20name/jobs', { name: 'a' }),
      400,
      'AOFQ_ERR_HTTP_VALIDATION',
    );
    expectProblem(await call(server, 'GET', '/v1/queues/e/jobs/404'), 404, 'AOFQ_ERR_QUEUE_NOT_FOUND');
    expect((await call(server, 'POST', '/v1/queues/e/jobs', { name: 'exists' })).status).toBe(201);
    expectProblem(await call(server, 'GET', '/v1/queues/e/jobs/404'), 404, 'AOFQ_ERR_JOB_NOT_FOUND');
    expectProblem(await call(server, 'GET', '/v1/queues/e/jobs?state=nope'), 400, 'AOFQ_ERR_HTTP_VALIDATION');
    expectProblem(
      await call(server, 'PUT', '/v1/admin/config', { dir: '/tmp' }),
      400,
      'AOFQ_ERR_HTTP_VALIDATION',
    );

    // Backpressure: a full queue answers 429 with Retry-After.
    const limited = await call(server, 'PUT', '/v1/queues/full', { maxJobs: 1 });
    expect(limited.status).toBe(200);
    expect(limited.body.config.maxJobs).toBe(1);
    expect((await call(server, 'POST', '/v1/queues/full/jobs', { name: 'a' })).status).toBe(201);
    const full = await call(server, 'POST', '/v1/queues/full/jobs', { name: 'b' });
    expectProblem(full, 429, 'AOFQ_ERR_QUEUE_FULL');
    expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('starts an AOF rewrite (BGREWRITEAOF) and the state survives it', async () => {
    const added = await call(server, 'POST', '/v1/queues/rw/jobs', { name: 'before-rewrite' });
    const started = await call(server, 'POST', '/v1/admin/rewrite');
    expect(started.status).toBe(202);
    expect(started.body).toEqual({
      status: 'started',
      message: 'Background append only file rewriting started',
    });
    const deadline = Date.now() + 10_000;
    let rewrites = 0;
    while (rewrites < 1 && Date.now() < deadline) {
      const info = await call(server, 'GET', '/v1/admin/info?section=persistence');
      rewrites = Number(info.body.persistence.aof_rewrites);
      if (rewrites < 1) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(rewrites).toBe(1);
    expect((await call(server, 'GET', `/v1/queues/rw/jobs/${added.body.id}`)).body.name).toBe(
      'before-rewrite',
    );
  });

  it('reads INFO as JSON and as text, and changes appendfsync at run time', async () => {
    const clients = await call(server, 'GET', '/v1/admin/info?section=clients');
    expect(clients.body.clients.blocked_clients).toBe(0);
    expect(clients.body.clients.connected_clients).toBeGreaterThan(0);
    const json = await call(server, 'GET', '/v1/admin/info?section=persistence');
    expect(Object.keys(json.body)).toEqual(['persistence']);
    expect(json.body.persistence.aof_enabled).toBe(1);
    const text = await call(server, 'GET', '/v1/admin/info', undefined, { accept: 'text/plain' });
    expect(text.body).toMatch(/^# Server\r\n/);
    expect(text.body).toContain('\r\n# Persistence\r\n');
    expect(text.body).toContain('\r\naof_enabled:1\r\n');
    const set = await call(server, 'PUT', '/v1/admin/config', { appendfsync: 'always' });
    expect(set.body.appendfsync).toBe('always');
    expect((await call(server, 'GET', '/v1/admin/config')).body.appendfsync).toBe('always');
  });
});

describe('auth', () => {
  const secrets = {
    producer: 'producer-secret-0123456789',
    consumer: 'consumer-secret-0123456789',
    admin: 'admin-secret-0123456789abc',
    replica: 'replica-secret-0123456789a',
  };
  let server: ServerProcess;
  beforeAll(async () => {
    const tokens = Object.entries(secrets)
      .map(([role, secret]) => `${role}1:${role}:${secret}`)
      .join(',');
    server = await start({
      args: ['--dir', await tempDir(), '--loglevel', 'warning'],
      env: { AOFQ_TOKENS: tokens },
    });
  });

  it('needs a valid token, and checks roles', async () => {
    const as = (role: keyof typeof secrets | 'none' | 'wrong'): Record<string, string> =>
      role === 'none'
        ? {}
        : { authorization: `Bearer ${role === 'wrong' ? 'not-a-token-at-all-000' : secrets[role]}` };
    expectProblem(
      await call(server, 'GET', '/v1/queues', undefined, as('none')),
      401,
      'AOFQ_ERR_AUTH_MISSING',
    );
    expectProblem(
      await call(server, 'GET', '/v1/queues', undefined, as('wrong')),
      401,
      'AOFQ_ERR_AUTH_INVALID',
    );
    expect((await call(server, 'GET', '/healthz', undefined, as('none'))).status).toBe(200);

    const matrix: Array<[string, string, unknown, Record<string, number>]> = [
      [
        'POST',
        '/v1/queues/a/jobs',
        { name: 'j' },
        { producer: 201, consumer: 403, admin: 201, replica: 403 },
      ],
      ['POST', '/v1/queues/a/leases', {}, { producer: 403, consumer: 200, admin: 200, replica: 403 }],
      ['GET', '/v1/queues', undefined, { producer: 200, consumer: 200, admin: 200, replica: 403 }],
      ['POST', '/v1/queues/a/pause', undefined, { producer: 403, consumer: 403, admin: 200, replica: 403 }],
      ['GET', '/v1/admin/config', undefined, { producer: 403, consumer: 403, admin: 200, replica: 403 }],
    ];
    for (const [method, path, body, expected] of matrix) {
      for (const [role, status] of Object.entries(expected)) {
        const answer = await call(server, method, path, body, as(role as keyof typeof secrets));
        expect(answer.status, `${role} ${method} ${path}`).toBe(status);
        if (status === 403) expect(answer.body.code).toBe('AOFQ_ERR_AUTH_FORBIDDEN');
      }
    }
    // Secrets never show in the config.
    const config = await call(server, 'GET', '/v1/admin/config', undefined, as('admin'));
    expect(config.body.tokens).toBe('***');
    expect(JSON.stringify(config.body)).not.toContain(secrets.admin);
  });
});

describe('restarts and crashes', () => {
  it('keeps the state across SIGTERM and a restart, and answers long polls on shutdown', async () => {
    const dir = await tempDir();
    const first = await start({ args: ['--dir', dir, '--loglevel', 'warning'] });
    const added = await call(first, 'POST', '/v1/queues/keep/jobs', { name: 'persist', data: [1, 2, 3] });
    expect(added.status).toBe(201);
    const polling = call(first, 'POST', '/v1/queues/idle/leases', { waitMs: 20_000 });
    await waitBlocked(first, 1);
    const stopping = first.stop('SIGTERM');
    const answer = await polling;
    expect(answer.status).toBe(200);
    expect(answer.body.jobs).toEqual([]);
    expect(await stopping).toBe(0);

    const second = await start({ args: ['--dir', dir, '--loglevel', 'warning'] });
    const job = await call(second, 'GET', `/v1/queues/keep/jobs/${added.body.id}`);
    expect(job.body).toMatchObject({ id: added.body.id, name: 'persist', data: '[1,2,3]', state: 'waiting' });
    expect(await second.stop('SIGTERM')).toBe(0);
  });

  it('keeps a 201 enqueue on a durability: fsync queue across kill -9', async () => {
    const dir = await tempDir();
    const first = await start({ args: ['--dir', dir, '--appendfsync', 'no', '--loglevel', 'warning'] });
    expect((await call(first, 'PUT', '/v1/queues/safe', { durability: 'fsync' })).status).toBe(200);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const added = await call(first, 'POST', '/v1/queues/safe/jobs', { name: `job-${i}` });
      expect(added.status).toBe(201);
      ids.push(added.body.id);
    }
    expect(await first.stop('SIGKILL')).toBeNull();

    const second = await start({ args: ['--dir', dir, '--loglevel', 'warning'] });
    for (const id of ids) {
      expect((await call(second, 'GET', `/v1/queues/safe/jobs/${id}`)).body).toMatchObject({
        id,
        state: 'waiting',
      });
    }
    expect((await call(second, 'GET', '/v1/queues/safe')).body.config.durability).toBe('fsync');
    await second.stop('SIGTERM');
  });
});

describe('configuration', () => {
  it('takes file < env < flags', async () => {
    const dir = await tempDir();
    const file = join(dir, 'aofq.conf');
    await writeFile(
      file,
      `# test\ndir "${dir}"\nappendfsync no\nauto-aof-rewrite-min-size 1mb\nloglevel warning\n`,
    );
    const server = await start({
      args: ['--config', file, '--auto-aof-rewrite-min-size', '2mb'],
      env: { AOFQ_APPENDFSYNC: 'always', AOFQ_AUTO_AOF_REWRITE_MIN_SIZE: '3mb' },
    });
    const config = (await call(server, 'GET', '/v1/admin/config')).body;
    expect(config.dir).toBe(dir);
    expect(config.appendfsync).toBe('always');
    expect(config['auto-aof-rewrite-min-size']).toBe('2mb');
    await server.stop('SIGTERM');
  });

  it('exits 2 with a clear message on a bad directive or an open non-loopback bind', async () => {
    const bad = await runServerToExit(['--no-such-directive', 'yes']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown directive 'no-such-directive'/);
    const value = await runServerToExit(['--appendfsync', 'sometimes']);
    expect(value.code).toBe(2);
    expect(value.stderr).toMatch(/appendfsync/);
    const open = await runServerToExit(['--host', '0.0.0.0']);
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/not a loopback address and no token/);
  });

  it('exits 1 when it cannot listen or cannot load the AOF', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const busy = await runServerToExit([
        '--dir',
        await tempDir(),
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
      ]);
      expect(busy.code).toBe(1);
      expect(busy.stdout).toMatch(/EADDRINUSE/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    const dir = await tempDir();
    await mkdir(join(dir, 'appendonlydir'));
    await writeFile(join(dir, 'appendonlydir', 'appendonly.aof.manifest'), 'this is not a manifest\n');
    const corrupt = await runServerToExit(['--dir', dir, '--host', '127.0.0.1', '--port', '0']);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stdout).toMatch(/cannot open the AOF/);
  });
});
