/**
 * The SDK contract: a typed client generated from openapi.yaml (and the api/
 * schemas it $refs), as a user's SDK would be, drives a real `aofq server`
 * process through every /v1 operation.
 *
 * `npm run gen:api` (the first step of `npm test`, before `tsc`) writes
 * test/contract/generated/aofq-api.ts with openapi-typescript; this file is
 * type-checked against it, so a change of the contract that breaks a user's
 * calls breaks compilation here: the request bodies below must satisfy the
 * generated types exactly (no unknown property), the `@ts-expect-error` lines
 * must still be refused by them,
 * and the Problem `code` union must equal the error registry's codes. At run
 * time the calls go through openapi-fetch's createClient<paths>() with bearer
 * tokens, the replies must carry the documented statuses and bodies, errors
 * must be application/problem+json with their `code`, and every /v1 operation
 * of openapi.yaml must have been called through the client.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import createClient, { type Client } from 'openapi-fetch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../src/errors/index.js';
import { loadContract } from '../../src/http/contract.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import type { components, paths } from './generated/aofq-api.js';

/**
 * A schema of api/ as the generated types have it. Each request body below
 * `satisfies` its schema: openapi-fetch infers its init argument, which skips
 * TypeScript's excess-property check (openapi-ts/openapi-typescript#1769), so
 * without it a renamed or removed optional property would still compile.
 */
type S<Name extends keyof components['schemas']> = components['schemas'][Name];
type Problem = S<'Problem'>;
type JobJson = S<'JobJson'>;

/** True when A and B are the same type (compile-time). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
// Compile-time checks: tsc fails here when the contract and the server's registry drift apart.
const _problemCodesAreTheRegistry: Equal<Problem['code'], ErrorCode> = true;
const _jobStatesAreBullMqs: Equal<
  components['schemas']['JobState'],
  'waiting' | 'prioritized' | 'delayed' | 'active' | 'completed' | 'failed'
> = true;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GENERATED = fileURLToPath(new URL('./generated/aofq-api.ts', import.meta.url));

const SECRETS = {
  producer: 'sdk-producer-secret-0123',
  consumer: 'sdk-consumer-secret-0123',
  admin: 'sdk-admin-secret-0123456',
} as const;
type Role = keyof typeof SECRETS;

let server: ServerProcess;
let dir: string;
/** `METHOD /openapi/path` of every request the clients sent. */
const called = new Set<string>();
const clients = {} as Record<Role, Client<paths>>;

function client(role: Role): Client<paths> {
  const sdk = createClient<paths>({
    baseUrl: server.url,
    headers: { authorization: `Bearer ${SECRETS[role]}` },
  });
  sdk.use({
    onRequest({ request, schemaPath }) {
      called.add(`${request.method} ${schemaPath}`);
      return undefined;
    },
  });
  return sdk;
}

/** An SDK call's outcome: the typed `error` must be a problem+json with this status and code. */
function expectProblem(
  result: { error?: Problem | undefined; response: Response },
  status: number,
  code: ErrorCode,
): void {
  expect(result.response.status, JSON.stringify(result.error)).toBe(status);
  expect(result.response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(result.error).toMatchObject({ status, code });
  expect(result.error?.type).toBe(`urn:aofq:error:${code}`);
  expect(typeof result.error?.message).toBe('string');
}

/** The job from a lease reply, with its fencing token. */
function leased(jobs: JobJson[] | undefined, index = 0): JobJson & { token: number } {
  const job = jobs?.[index];
  expect(job?.token, JSON.stringify(jobs)).toBeGreaterThan(0);
  return job as JobJson & { token: number };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aofq-sdk-'));
  const tokens = Object.entries(SECRETS)
    .map(([role, secret]) => `${role}1:${role}:${secret}`)
    .join(',');
  server = await startServer({
    args: ['--dir', dir, '--loglevel', 'warning'],
    env: { AOFQ_TOKENS: tokens },
  });
  for (const role of Object.keys(SECRETS) as Role[]) clients[role] = client(role);
});

afterAll(async () => {
  await server?.stop('SIGTERM');
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the generated SDK', () => {
  it('was generated from the current openapi.yaml (npm run gen:api)', () => {
    const cli = join(
      dirname(createRequire(import.meta.url).resolve('openapi-typescript/package.json')),
      'bin/cli.js',
    );
    const check = spawnSync(
      process.execPath,
      [cli, 'openapi.yaml', '--redocly', 'test/contract/openapi-ts.redocly.yaml', '-o', GENERATED, '--check'],
      { cwd: ROOT, encoding: 'utf8', timeout: 20_000 },
    );
    expect(check.status, `${check.stdout}\n${check.stderr}\nrun: npm run gen:api`).toBe(0);
  });

  it('configures a queue, enqueues (201, then 200 for a repeated opts.jobId), leases and acks', async () => {
    const { producer, consumer, admin } = clients;
    const queue = 'sdk-orders';
    const path = { queue };

    const configured = await admin.PUT('/v1/queues/{queue}', {
      params: { path },
      body: {
        durability: 'fsync',
        leaseMs: 30_000,
        maxAttempts: 3,
        deadLetterQueue: 'sdk-dead',
      } satisfies S<'QueueConfigUpdate'>,
    });
    expect(configured.response.status).toBe(200);
    expect(configured.data?.config).toMatchObject({
      durability: 'fsync',
      leaseMs: 30_000,
      maxAttempts: 3,
      deadLetterQueue: 'sdk-dead',
    });

    const created = await producer.POST('/v1/queues/{queue}/jobs', {
      params: { path },
      body: {
        name: 'charge',
        data: { order: 42, cents: 1999 },
        opts: { jobId: 'order-42', attempts: 2 },
      } satisfies S<'EnqueueRequest'>,
    });
    expect(created.response.status).toBe(201);
    expect(created.data).toMatchObject({ id: 'order-42', name: 'charge', state: 'waiting' });
    expect(JSON.parse(created.data?.data ?? 'null')).toEqual({ order: 42, cents: 1999 });
    const again = await producer.POST('/v1/queues/{queue}/jobs', {
      params: { path },
      body: { name: 'charge-twice', opts: { jobId: 'order-42' } } satisfies S<'EnqueueRequest'>,
    });
    expect(again.response.status).toBe(200);
    expect(again.data).toMatchObject({ id: 'order-42', name: 'charge' });

    const lease = await consumer.POST('/v1/queues/{queue}/leases', {
      params: { path },
      body: { count: 10, leaseMs: 10_000, consumer: 'sdk-worker' } satisfies S<'LeaseRequest'>,
    });
    expect(lease.response.status).toBe(200);
    expect(lease.data?.jobs).toHaveLength(1);
    const job = leased(lease.data?.jobs);
    expect(job).toMatchObject({ id: 'order-42', state: 'active' });
    expect(job.leaseUntil).toBeGreaterThan(Date.now());

    const active = await consumer.GET('/v1/queues/{queue}/jobs/{id}', {
      params: { path: { queue, id: job.id } },
    });
    expect(active.data).toMatchObject({ state: 'active', leaseUntil: job.leaseUntil });

    const extended = await consumer.POST('/v1/queues/{queue}/jobs/{id}/extend', {
      params: { path: { queue, id: job.id } },
      body: { token: job.token, leaseMs: 20_000 } satisfies S<'ExtendRequest'>,
    });
    expect(extended.data).toMatchObject({ id: job.id, state: 'active' });
    expect(extended.data?.leaseUntil).toBeGreaterThan(job.leaseUntil ?? 0);

    const progressed = await consumer.POST('/v1/queues/{queue}/jobs/{id}/progress', {
      params: { path: { queue, id: job.id } },
      body: { token: job.token, progress: { step: 'charged' } } satisfies S<'ProgressRequest'>,
    });
    expect(progressed.response.status).toBe(200);
    expect(progressed.data?.id).toBe(job.id);

    const acked = await consumer.POST('/v1/queues/{queue}/jobs/{id}/ack', {
      params: { path: { queue, id: job.id } },
      body: { token: job.token, returnvalue: { receipt: 'r-1' } } satisfies S<'AckRequest'>,
    });
    expect(acked.data).toEqual({ id: job.id, state: 'completed' });
    const done = await producer.GET('/v1/queues/{queue}/jobs/{id}', {
      params: { path: { queue, id: job.id } },
    });
    expect(done.data).toMatchObject({ id: job.id, state: 'completed', progress: { step: 'charged' } });
    expect(JSON.parse(done.data?.returnvalue ?? 'null')).toEqual({ receipt: 'r-1' });

    // The same token again: the lease is gone.
    expectProblem(
      await consumer.POST('/v1/queues/{queue}/jobs/{id}/ack', {
        params: { path: { queue, id: job.id } },
        body: { token: job.token } satisfies S<'AckRequest'>,
      }),
      409,
      'AOFQ_ERR_LEASE_LOST',
    );

    const info = await producer.GET('/v1/queues/{queue}', { params: { path } });
    expect(info.data?.counts).toMatchObject({ completed: 1, waiting: 0, active: 0, failed: 0 });
    const list = await consumer.GET('/v1/queues');
    expect(list.data?.queues).toContain(queue);
  });

  it('nacks and retries with the attempts left, dead-letters a job nacked with retry: false, and redrives it', async () => {
    const { producer, consumer, admin } = clients;
    const queue = 'sdk-flaky';
    const path = { queue };

    const added = await producer.POST('/v1/queues/{queue}/jobs', {
      params: { path },
      body: { name: 'flaky', opts: { attempts: 2 } } satisfies S<'EnqueueRequest'>,
    });
    const id = added.data?.id as string;
    const first = leased(
      (
        await consumer.POST('/v1/queues/{queue}/leases', {
          params: { path },
          body: {} satisfies S<'LeaseRequest'>,
        })
      ).data?.jobs,
    );
    const nack1 = await consumer.POST('/v1/queues/{queue}/jobs/{id}/nack', {
      params: { path: { queue, id } },
      body: { token: first.token, failedReason: 'card declined' } satisfies S<'NackRequest'>,
    });
    expect(nack1.data).toMatchObject({ id, state: 'waiting' });
    const second = leased(
      (
        await consumer.POST('/v1/queues/{queue}/leases', {
          params: { path },
          body: {} satisfies S<'LeaseRequest'>,
        })
      ).data?.jobs,
    );
    expect(second.id).toBe(id);
    expect(second.token).toBeGreaterThan(first.token);
    expect(second.attemptsMade).toBe(1);
    // The first token can no longer act on the job.
    expectProblem(
      await consumer.POST('/v1/queues/{queue}/jobs/{id}/nack', {
        params: { path: { queue, id } },
        body: { token: first.token, failedReason: 'late' } satisfies S<'NackRequest'>,
      }),
      409,
      'AOFQ_ERR_LEASE_LOST',
    );
    const nack2 = await consumer.POST('/v1/queues/{queue}/jobs/{id}/nack', {
      params: { path: { queue, id } },
      body: {
        token: second.token,
        failedReason: 'card declined again',
        stacktrace: 'Error: declined',
      } satisfies S<'NackRequest'>,
    });
    expect(nack2.data).toMatchObject({ id, state: 'failed' });
    const failed = await producer.GET('/v1/queues/{queue}/jobs/{id}', { params: { path: { queue, id } } });
    expect(failed.data).toMatchObject({ id, attemptsMade: 2, failedReason: 'card declined again' });

    // retryJob (BullMQ's Job.retry): only from the state asked for; back to waiting with its attempts reset.
    expectProblem(
      await admin.POST('/v1/queues/{queue}/jobs/{id}/retry', {
        params: { path: { queue, id }, query: { state: 'completed' } },
      }),
      409,
      'AOFQ_ERR_JOB_STATE',
    );
    const retried = await admin.POST('/v1/queues/{queue}/jobs/{id}/retry', {
      params: { path: { queue, id }, query: { state: 'failed', resetAttemptsMade: true } },
    });
    expect(retried.data).toMatchObject({ id, state: 'waiting' });
    const third = leased(
      (
        await consumer.POST('/v1/queues/{queue}/leases', {
          params: { path },
          body: {} satisfies S<'LeaseRequest'>,
        })
      ).data?.jobs,
    );
    expect(third).toMatchObject({ id, attemptsMade: 0 });
    const finallyAcked = await consumer.POST('/v1/queues/{queue}/jobs/{id}/ack', {
      params: { path: { queue, id } },
      body: { token: third.token } satisfies S<'AckRequest'>,
    });
    expect(finallyAcked.data).toEqual({ id, state: 'completed' });

    // retry: false is BullMQ's UnrecoverableError: no more attempts, into the dead-letter queue.
    const poisonQueue = 'sdk-poison';
    const poisonPath = { queue: poisonQueue };
    await admin.PUT('/v1/queues/{queue}', {
      params: { path: poisonPath },
      body: { deadLetterQueue: 'sdk-poison-dead' } satisfies S<'QueueConfigUpdate'>,
    });
    const poison = await producer.POST('/v1/queues/{queue}/jobs', {
      params: { path: poisonPath },
      body: { name: 'poison', opts: { attempts: 5 } } satisfies S<'EnqueueRequest'>,
    });
    const poisonId = poison.data?.id as string;
    const poisonLease = leased(
      (
        await consumer.POST('/v1/queues/{queue}/leases', {
          params: { path: poisonPath },
          body: {} satisfies S<'LeaseRequest'>,
        })
      ).data?.jobs,
    );
    expect(poisonLease.id).toBe(poisonId);
    const nacked = await consumer.POST('/v1/queues/{queue}/jobs/{id}/nack', {
      params: { path: { queue: poisonQueue, id: poisonId } },
      body: { token: poisonLease.token, failedReason: 'malformed', retry: false } satisfies S<'NackRequest'>,
    });
    expect(nacked.data).toMatchObject({ id: poisonId, state: 'dead-lettered' });
    const dead = await admin.GET('/v1/queues/{queue}/jobs', {
      params: { path: { queue: 'sdk-poison-dead' }, query: { state: 'waiting' } },
    });
    expect(dead.data?.jobs).toHaveLength(1);
    expect(dead.data?.jobs[0]?.deadLetter).toMatchObject({ queue: poisonQueue, id: poisonId });
    const redriven = await admin.POST('/v1/queues/{queue}/redrive', {
      params: { path: { queue: 'sdk-poison-dead' }, query: { count: 100 } },
    });
    expect(redriven.data?.moved).toEqual([expect.objectContaining({ queue: poisonQueue, id: poisonId })]);
    const back = await producer.GET('/v1/queues/{queue}', { params: { path: poisonPath } });
    expect(back.data?.counts.waiting).toBe(1);
  });

  it('enqueues in bulk and pages through listJobs with the cursor', async () => {
    const { producer, consumer } = clients;
    const queue = 'sdk-pages';
    const path = { queue };
    const bulk = await producer.POST('/v1/queues/{queue}/jobs/bulk', {
      params: { path },
      body: {
        jobs: Array.from({ length: 25 }, (_, i) => ({ name: `page-${i}`, data: { i } })),
      } satisfies S<'EnqueueBulkRequest'>,
    });
    expect(bulk.response.status).toBe(201);
    const ids = (bulk.data?.jobs ?? []).map((j) => j.id);
    expect(ids).toHaveLength(25);

    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await consumer.GET('/v1/queues/{queue}/jobs', {
        params: { path, query: { state: 'waiting', limit: 10, ...(cursor === undefined ? {} : { cursor }) } },
      });
      expect(page.response.status).toBe(200);
      expect(page.data?.jobs.length).toBeLessThanOrEqual(10);
      for (const job of page.data?.jobs ?? []) {
        expect(job.state).toBe('waiting');
        seen.push(job.id);
      }
      cursor = page.data?.cursor ?? undefined;
      pages++;
    } while (cursor !== undefined && pages < 10);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual([...ids].sort());

    // A job removed is gone; an all-or-nothing bulk with one bad job adds nothing.
    const removed = await clients.admin.DELETE('/v1/queues/{queue}/jobs/{id}', {
      params: { path: { queue, id: ids[0] as string } },
    });
    expect(removed.data?.id).toBe(ids[0]);
    const bad = await producer.POST('/v1/queues/{queue}/jobs/bulk', {
      params: { path },
      body: {
        jobs: [{ name: 'fine' }, { name: 'too-late', opts: { delay: 31_536_000_001 } }],
      } satisfies S<'EnqueueBulkRequest'>,
    });
    expectProblem(bad, 400, 'AOFQ_ERR_HTTP_VALIDATION');
    const counts = await consumer.GET('/v1/queues/{queue}', { params: { path } });
    expect(counts.data?.counts.waiting).toBe(24);
  });

  it('releases, delays and promotes, pauses and resumes, cleans, drains and deletes a queue', async () => {
    const { producer, consumer, admin } = clients;
    const queue = 'sdk-admin';
    const path = { queue };
    const added = await producer.POST('/v1/queues/{queue}/jobs', {
      params: { path },
      body: { name: 'give-back' } satisfies S<'EnqueueRequest'>,
    });
    const job = leased(
      (
        await consumer.POST('/v1/queues/{queue}/leases', {
          params: { path },
          body: {} satisfies S<'LeaseRequest'>,
        })
      ).data?.jobs,
    );
    expect(job.id).toBe(added.data?.id);
    const released = await consumer.POST('/v1/queues/{queue}/jobs/{id}/release', {
      params: { path: { queue, id: job.id } },
      body: { token: job.token } satisfies S<'ReleaseRequest'>,
    });
    expect(released.data).toMatchObject({ id: job.id, state: 'waiting' });
    const again = await producer.GET('/v1/queues/{queue}/jobs/{id}', {
      params: { path: { queue, id: job.id } },
    });
    expect(again.data).toMatchObject({ state: 'waiting', attemptsMade: 0 });

    const delayed = await producer.POST('/v1/queues/{queue}/jobs', {
      params: { path },
      body: { name: 'later', opts: { delay: 3_600_000 } } satisfies S<'EnqueueRequest'>,
    });
    expect(delayed.data?.state).toBe('delayed');
    const promoted = await admin.POST('/v1/queues/{queue}/jobs/{id}/promote', {
      params: { path: { queue, id: delayed.data?.id as string } },
    });
    expect(promoted.data).toEqual({ id: delayed.data?.id, state: 'waiting' });
    // Promoting it again: it is no longer delayed.
    expectProblem(
      await admin.POST('/v1/queues/{queue}/jobs/{id}/promote', {
        params: { path: { queue, id: delayed.data?.id as string } },
      }),
      409,
      'AOFQ_ERR_JOB_STATE',
    );

    expect((await admin.POST('/v1/queues/{queue}/pause', { params: { path } })).data).toEqual({
      paused: true,
    });
    const whilePaused = await consumer.POST('/v1/queues/{queue}/leases', {
      params: { path },
      body: { count: 5 } satisfies S<'LeaseRequest'>,
    });
    expect(whilePaused.data).toMatchObject({ jobs: [], paused: true });
    expect((await admin.POST('/v1/queues/{queue}/resume', { params: { path } })).data).toEqual({
      paused: false,
    });

    const one = leased(
      (
        await consumer.POST('/v1/queues/{queue}/leases', {
          params: { path },
          body: {} satisfies S<'LeaseRequest'>,
        })
      ).data?.jobs,
    );
    await consumer.POST('/v1/queues/{queue}/jobs/{id}/ack', {
      params: { path: { queue, id: one.id } },
      body: { token: one.token } satisfies S<'AckRequest'>,
    });
    const cleaned = await admin.POST('/v1/queues/{queue}/clean', {
      params: { path },
      body: { grace: 0, limit: 100, state: 'completed' } satisfies S<'CleanRequest'>,
    });
    expect(cleaned.data?.ids).toEqual([one.id]);
    const drained = await admin.POST('/v1/queues/{queue}/drain', { params: { path } });
    expect(drained.data?.removed).toBe(1);
    await producer.POST('/v1/queues/{queue}/jobs', {
      params: { path },
      body: { name: 'last' } satisfies S<'EnqueueRequest'>,
    });
    const deleted = await admin.DELETE('/v1/queues/{queue}', { params: { path, query: { force: true } } });
    expect(deleted.data?.removed).toBeGreaterThanOrEqual(1);
    expectProblem(
      await admin.GET('/v1/queues/{queue}', { params: { path } }),
      404,
      'AOFQ_ERR_QUEUE_NOT_FOUND',
    );
  });

  it('reads INFO and the configuration, changes a run-time directive and starts a rewrite', async () => {
    const { admin } = clients;
    const info = await admin.GET('/v1/admin/info', { params: { query: { section: 'persistence' } } });
    expect(Object.keys(info.data ?? {})).toEqual(['persistence']);
    const config = await admin.GET('/v1/admin/config');
    expect(config.data?.tokens).toBe('***');
    const set = await admin.PUT('/v1/admin/config', {
      body: { appendfsync: 'always' } satisfies S<'ConfigUpdate'>,
    });
    expect(set.data?.appendfsync).toBe('always');
    const rewrite = await admin.POST('/v1/admin/rewrite');
    if (rewrite.response.status === 409) expectProblem(rewrite, 409, 'AOFQ_ERR_AOF_REWRITE_IN_PROGRESS');
    else expect(rewrite.response.status).toBe(202);
  });

  it('answers errors as typed problem+json: auth, roles, validation, missing jobs', async () => {
    const { producer, consumer } = clients;
    const queue = 'sdk-errors';
    const anonymous = createClient<paths>({ baseUrl: server.url });
    expectProblem(await anonymous.GET('/v1/queues'), 401, 'AOFQ_ERR_AUTH_MISSING');
    expectProblem(
      await producer.POST('/v1/queues/{queue}/leases', {
        params: { path: { queue } },
        body: {} satisfies S<'LeaseRequest'>,
      }),
      403,
      'AOFQ_ERR_AUTH_FORBIDDEN',
    );
    expectProblem(await producer.GET('/v1/admin/config'), 403, 'AOFQ_ERR_AUTH_FORBIDDEN');
    await producer.POST('/v1/queues/{queue}/jobs', {
      params: { path: { queue } },
      body: { name: 'exists' } satisfies S<'EnqueueRequest'>,
    });
    expectProblem(
      await consumer.GET('/v1/queues/{queue}/jobs/{id}', { params: { path: { queue, id: 'no-such-job' } } }),
      404,
      'AOFQ_ERR_JOB_NOT_FOUND',
    );
    expectProblem(
      await producer.POST('/v1/queues/{queue}/jobs', {
        params: { path: { queue } },
        // @ts-expect-error: EnqueueRequest.json requires `name`; the generated types refuse this before the server does.
        body: { data: { no: 'name' } },
      }),
      400,
      'AOFQ_ERR_HTTP_VALIDATION',
    );
    expectProblem(
      await consumer.POST('/v1/queues/{queue}/leases', {
        params: { path: { queue } },
        // @ts-expect-error: LeaseRequest.json's count is an integer.
        body: { count: 'ten' },
      }),
      400,
      'AOFQ_ERR_HTTP_VALIDATION',
    );
    expectProblem(
      await consumer.GET('/v1/queues/{queue}/jobs', {
        // @ts-expect-error: `state` is one of JobState.json's values.
        params: { path: { queue }, query: { state: 'sleeping' } },
      }),
      400,
      'AOFQ_ERR_HTTP_VALIDATION',
    );
  });

  it('called every /v1 operation of openapi.yaml through the SDK', () => {
    const operations = loadContract()
      .operations.filter((op) => op.path.startsWith('/v1/'))
      .map((op) => `${op.method} ${op.path}`);
    expect(operations.length).toBeGreaterThan(20);
    expect(operations.filter((op) => !called.has(op))).toEqual([]);
  });
});
