/**
 * The HTTP layer in process, against a fake backend (fastify's inject, no
 * socket): the loading gate and /readyz progress, writes refused, internal
 * errors that stay coded and never crash, response bodies closed by the
 * api/ schemas, long polls answered on close, and the authenticator.
 */
import { connect } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AofqError } from '../../src/errors/index.js';
import { Authenticator } from '../../src/http/auth.js';
import type { LeaseRequest, QueueBackend } from '../../src/http/backend.js';
import { type HttpServer, HttpServer as Server } from '../../src/http/server.js';
import type { JobJson, QueueRequest } from '../../src/queue/types.js';

const silent = pino({ level: 'silent' });

function jobJson(id: string): JobJson & { internalOnly: string } {
  return {
    id,
    name: 'n',
    data: '{}',
    opts: {},
    progress: 0,
    attemptsMade: 0,
    attemptsStarted: 0,
    stalledCounter: 0,
    timestamp: 1,
    delay: 0,
    priority: 0,
    returnvalue: 'null',
    failedReason: '',
    stacktrace: '[]',
    internalOnly: 'must not leak',
  };
}

class FakeBackend implements QueueBackend {
  writable = true;
  waits: AbortSignal[] = [];
  released: string[] = [];
  /** What a long poll answers when it is aborted. */
  onAbortJobs: Array<{ job: JobJson; token: number; leaseUntil: number }> = [];
  async queue<R extends QueueRequest>(request: R): Promise<never> {
    switch (request.op) {
      case 'getJob':
        if (request.id === 'crash') throw new TypeError('a bug');
        if (request.id === 'missing')
          throw new AofqError('AOFQ_ERR_JOB_NOT_FOUND', { id: 'missing', queue: 'q' });
        return { job: jobJson(request.id), state: 'waiting', leaseUntil: null } as never;
      case 'release':
        this.released.push(`${request.id}:${request.token}`);
        return { id: request.id, state: 'waiting' } as never;
      case 'add':
        if (!this.writable) throw new AofqError('AOFQ_ERR_AOF_WRITE_FAILED', { reason: 'EIO' });
        return { jobs: [{ id: '1', duplicate: false }] } as never;
      default:
        throw new Error(`unexpected ${request.op}`);
    }
  }
  private wakers: Array<() => void> = [];
  wakeAll(): void {
    for (const wake of this.wakers.splice(0)) wake();
  }
  leaseWait(_request: LeaseRequest, _waitMs: number, signal?: AbortSignal): Promise<never> {
    return new Promise((resolve) => {
      this.wakers.push(() => resolve({ jobs: [], rateLimitedUntil: null, paused: false } as never));
      if (signal) this.waits.push(signal);
      signal?.addEventListener('abort', () =>
        resolve({ jobs: this.onAbortJobs, rateLimitedUntil: null, paused: false } as never),
      );
    });
  }
  listQueues(): string[] {
    return ['q'];
  }
  info() {
    return { persistence: { aof_enabled: 1 } };
  }
  async rewrite(): Promise<{ status: 'started'; message: string }> {
    return { status: 'started', message: 'Background append only file rewriting started' };
  }
  async close(): Promise<void> {}
}

let server: HttpServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

function create(tokens: ConstructorParameters<typeof Authenticator>[0] = []): HttpServer {
  server = Server.create({
    host: '127.0.0.1',
    port: 0,
    bodyLimit: 4096,
    tokens,
    logger: silent,
    config: { get: () => ({}), set: () => undefined },
    loadProgress: () => ({ loading: true, doneBytes: 10, totalBytes: 100 }),
  });
  return server;
}

describe('loading and readiness', () => {
  it('answers 503 LOADING with progress until the backend is set', async () => {
    const http = create();
    const ready = await http.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({
      ready: false,
      loading: true,
      doneBytes: 10,
      totalBytes: 100,
      writable: false,
    });
    expect((await http.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const early = await http.app.inject({ method: 'GET', url: '/v1/queues' });
    expect(early.statusCode).toBe(503);
    expect(early.json().code).toBe('AOFQ_ERR_SERVER_LOADING');
    expect(early.headers['retry-after']).toBe('1');

    http.setBackend(new FakeBackend());
    expect((await http.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    expect((await http.app.inject({ method: 'GET', url: '/v1/queues' })).json()).toEqual({ queues: ['q'] });
  });

  it('is not ready while writes are refused, and answers 503 to writes', async () => {
    const http = create();
    const backend = new FakeBackend();
    backend.writable = false;
    http.setBackend(backend);
    const ready = await http.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ ready: false, loading: false, writable: false });
    const write = await http.app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { name: 'a' } });
    expect(write.statusCode).toBe(503);
    expect(write.json().code).toBe('AOFQ_ERR_AOF_WRITE_FAILED');
  });
});

describe('errors and serialization', () => {
  it('turns an unexpected exception into a coded 500 and keeps serving', async () => {
    const http = create();
    http.setBackend(new FakeBackend());
    const crash = await http.app.inject({ method: 'GET', url: '/v1/queues/q/jobs/crash' });
    expect(crash.statusCode).toBe(500);
    expect(crash.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(crash.json()).toMatchObject({ code: 'AOFQ_ERR_INTERNAL', message: 'Internal error', status: 500 });
    expect(crash.body).not.toContain('a bug');
    const next = await http.app.inject({ method: 'GET', url: '/v1/queues/q/jobs/7' });
    expect(next.statusCode).toBe(200);
  });

  it('serializes only the fields of api/JobJson.json', async () => {
    const http = create();
    http.setBackend(new FakeBackend());
    const job = await http.app.inject({ method: 'GET', url: '/v1/queues/q/jobs/7' });
    expect(job.json()).toMatchObject({ id: '7', state: 'waiting' });
    expect(job.body).not.toContain('internalOnly');
    const missing = await http.app.inject({ method: 'GET', url: '/v1/queues/q/jobs/missing' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('AOFQ_ERR_JOB_NOT_FOUND');
    expect(missing.headers['x-request-id']).toBe(missing.json().requestId);
  });

  it('answers parked long polls (empty) when the server closes', async () => {
    const http = create();
    const backend = new FakeBackend();
    http.setBackend(backend);
    const poll = http.app.inject({ method: 'POST', url: '/v1/queues/q/leases', payload: { waitMs: 30_000 } });
    for (let i = 0; i < 100 && backend.waits.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(backend.waits).toHaveLength(1);
    const closing = http.close();
    const answer = await poll;
    server = null;
    await closing;
    expect(answer.statusCode).toBe(200);
    expect(answer.json().jobs).toEqual([]);
    expect(backend.waits[0]?.aborted).toBe(true);
  });
});

describe('long polls on a real socket', () => {
  async function listening(backend: FakeBackend): Promise<{ http: HttpServer; port: number }> {
    const http = create();
    http.setBackend(backend);
    const { port } = await http.listen();
    return { http, port };
  }

  async function until(condition: () => boolean): Promise<void> {
    for (let i = 0; i < 400 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
    expect(condition()).toBe(true);
  }

  it('refuses a fifth pipelined long poll on one connection with 429', async () => {
    const backend = new FakeBackend();
    const { port } = await listening(backend);
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.on('error', () => undefined);
    const body = JSON.stringify({ waitMs: 30_000 });
    const one = `POST /v1/queues/q/leases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    socket.write(one.repeat(5));
    await until(() => backend.waits.length === 4);
    expect(received).toBe('');
    backend.wakeAll();
    await until(() => (received.match(/HTTP\/1\.1 /g) ?? []).length === 5);
    socket.destroy();
    expect((received.match(/HTTP\/1\.1 200/g) ?? []).length).toBe(4);
    expect(received).toMatch(/HTTP\/1\.1 429/);
    expect(received).toContain('AOFQ_ERR_HTTP_TOO_MANY_POLLS');
  });

  it('gives back the jobs a long poll leased after its client went away', async () => {
    const backend = new FakeBackend();
    backend.onAbortJobs = [{ job: jobJson('9'), token: 77, leaseUntil: Date.now() + 30_000 }];
    const { port } = await listening(backend);
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const body = JSON.stringify({ waitMs: 30_000 });
    socket.write(
      `POST /v1/queues/q/leases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    await until(() => backend.waits.length === 1);
    socket.destroy();
    await until(() => backend.released.length === 1);
    expect(backend.released).toEqual(['9:77']);
  });
});

describe('authenticator', () => {
  const tokens = [
    { name: 'p', role: 'producer' as const, secret: 'producer-secret-0123456789' },
    { name: 'a', role: 'admin' as const, secret: 'admin-secret-0123456789abc' },
  ];

  it('is open with no tokens, and checks bearer tokens and roles otherwise', () => {
    expect(new Authenticator([]).authorize(undefined, 'admin', 'x').role).toBe('admin');
    const auth = new Authenticator(tokens);
    expect(auth.authorize('Bearer producer-secret-0123456789', 'producer', 'enqueue').name).toBe('p');
    expect(auth.authorize('bearer admin-secret-0123456789abc', 'consumer', 'lease').name).toBe('a');
    const code = (fn: () => unknown): string => {
      try {
        fn();
        return 'none';
      } catch (err) {
        return (err as AofqError).code;
      }
    };
    expect(code(() => auth.authorize(undefined, 'read', 'read'))).toBe('AOFQ_ERR_AUTH_MISSING');
    expect(code(() => auth.authorize('Basic abc', 'read', 'read'))).toBe('AOFQ_ERR_AUTH_INVALID');
    expect(code(() => auth.authorize('Bearer producer-secret-012345678', 'read', 'read'))).toBe(
      'AOFQ_ERR_AUTH_INVALID',
    );
    expect(code(() => auth.authorize('Bearer producer-secret-0123456789', 'consumer', 'lease'))).toBe(
      'AOFQ_ERR_AUTH_FORBIDDEN',
    );
  });

  it('checks auth over HTTP before the loading gate', async () => {
    const http = create(tokens);
    const anonymous = await http.app.inject({ method: 'GET', url: '/v1/queues' });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json().code).toBe('AOFQ_ERR_AUTH_MISSING');
    const loading = await http.app.inject({
      method: 'GET',
      url: '/v1/queues',
      headers: { authorization: 'Bearer admin-secret-0123456789abc' },
    });
    expect(loading.json().code).toBe('AOFQ_ERR_SERVER_LOADING');
  });
});
