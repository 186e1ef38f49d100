/**
 * The WebSocket API's consumers over real sockets on loopback: pushes within
 * the credit (prefetch), credit returning on ack/nack/release, the wake-up
 * latency of a waiting consumer, fair sharing, leases released when a
 * consumer disconnects or stops answering pings, and producers' enqueues.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { WsOptions } from '../../src/http/ws.js';
import { loadWsSchemas } from '../../src/http/ws-schemas.js';
import {
  type Msg,
  startWsServer,
  until,
  type WsTestClient,
  type WsTestServer,
} from '../helpers/ws-client.js';

const servers: WsTestServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function start(options: WsOptions = {}): Promise<WsTestServer> {
  const server = await startWsServer(options);
  servers.push(server);
  return server;
}

async function enqueue(
  client: WsTestClient,
  queue: string,
  count: number,
  data: unknown = {},
): Promise<void> {
  const jobs = Array.from({ length: count }, (_, i) => ({ name: `job-${i}`, data }));
  for (let at = 0; at < jobs.length; at += 1000) {
    const reply = await client.request({ type: 'enqueueBatch', queue, jobs: jobs.slice(at, at + 1000) });
    expect(reply.type).toBe('ok');
  }
}

const isJob = (m: Msg) => m.type === 'job';
const schemas = loadWsSchemas();

describe('WebSocket consumers', () => {
  it('pushes within the credit: prefetch 2 gets exactly 2 until one is acked', async () => {
    const server = await start();
    const client = await server.connect();
    await enqueue(client, 'q', 5);
    const ok = await client.request({ type: 'subscribe', queue: 'q', prefetch: 2 });
    expect(ok).toMatchObject({ type: 'ok', queue: 'q', prefetch: 2 });
    const first = await client.take(isJob);
    const second = await client.take(isJob);
    expect(first).toMatchObject({ queue: 'q', job: { id: '1', name: 'job-0' } });
    expect(second.job.id).toBe('2');
    expect(first.token).toBeTypeOf('number');
    expect(first.leaseUntil).toBeGreaterThan(Date.now());
    // No third push while both are unacked: a round trip (a getJob through the server) shows no more came.
    await client.request({ type: 'enqueue', queue: 'other', name: 'marker' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(client.received.filter(isJob)).toHaveLength(0);
    const counts = await server.node.queue({ op: 'getJobCounts', queue: 'q' });
    expect(counts.active).toBe(2);

    const ack = await client.request({
      type: 'ack',
      queue: 'q',
      id: '1',
      token: first.token,
      returnvalue: { ok: 1 },
    });
    expect(ack).toMatchObject({ type: 'ok', id: '1' });
    const third = await client.take(isJob);
    expect(third.job.id).toBe('3');
    const job1 = await server.node.queue({ op: 'getJob', queue: 'q', id: '1' });
    expect(job1.state).toBe('completed');
    expect(job1.job.returnvalue).toBe('{"ok":1}');

    // nack and release return credit too.
    const nack = await client.request({
      type: 'nack',
      queue: 'q',
      id: '2',
      token: second.token,
      failedReason: 'boom',
      retry: false,
    });
    expect(nack).toMatchObject({ type: 'ok', id: '2', state: 'failed' });
    const fourth = await client.take(isJob);
    expect(fourth.job.id).toBe('4');
    const extend = await client.request({
      type: 'extend',
      queue: 'q',
      id: '3',
      token: third.token,
      leaseMs: 60_000,
    });
    expect(extend.leaseUntil).toBeGreaterThan(Date.now() + 50_000);
    const release = await client.request({ type: 'release', queue: 'q', id: '3', token: third.token });
    expect(release).toMatchObject({ type: 'ok', id: '3', state: 'waiting' });
    // Job 3 is waiting again and ahead of job 5? FIFO by id order is the queue's business; one of them comes.
    const fifth = await client.take(isJob);
    expect(['3', '5']).toContain(fifth.job.id);

    // A stale token: LEASE_LOST, and the connection stays usable.
    const stale = await client.request({ type: 'ack', queue: 'q', id: '1', token: first.token });
    expect(stale).toMatchObject({ type: 'error', code: 'AOFQ_ERR_LEASE_LOST' });

    // unsubscribe stops the pushes.
    expect(await client.request({ type: 'unsubscribe', queue: 'q' })).toMatchObject({ type: 'ok' });
    await client.request({ type: 'ack', queue: 'q', id: fourth.job.id, token: fourth.token });
    await client.request({ type: 'ack', queue: 'q', id: fifth.job.id, token: fifth.token });
    await enqueue(client, 'q', 2);
    await client.request({ type: 'enqueue', queue: 'other', name: 'marker' });
    expect(client.received.filter(isJob)).toHaveLength(0);
    expect(await client.request({ type: 'unsubscribe', queue: 'q' })).toMatchObject({
      type: 'error',
      code: 'AOFQ_ERR_WS_NOT_SUBSCRIBED',
    });
  });

  it('wakes a waiting consumer at once on enqueue, without polling (latency measured)', async () => {
    const server = await start();
    const consumer = await server.connect();
    const producer = await server.connect();
    expect(await consumer.request({ type: 'subscribe', queue: 'wake', prefetch: 1 })).toMatchObject({
      type: 'ok',
    });
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const sent = performance.now();
      producer.send({ type: 'enqueue', rid: i, queue: 'wake', name: 'n', data: { i } });
      const job = await consumer.take(isJob, 2000);
      latencies.push(performance.now() - sent);
      expect(job.job.data).toBe(JSON.stringify({ i }));
      await consumer.request({ type: 'ack', queue: 'wake', id: job.job.id, token: job.token });
    }
    latencies.sort((a, b) => a - b);
    const median = latencies[Math.floor(latencies.length / 2)] as number;
    const max = latencies[latencies.length - 1] as number;
    console.log(`ws wake-up latency: median ${median.toFixed(2)} ms, max ${max.toFixed(2)} ms`);
    expect(median).toBeLessThan(100);
    expect(max).toBeLessThan(100);
  });

  it('shares a queue fairly between 3 consumers (300 jobs: 100 ± 20 each)', async () => {
    const server = await start();
    const producer = await server.connect();
    const consumers = await Promise.all([server.connect(), server.connect(), server.connect()]);
    const counts = [0, 0, 0];
    let done = 0;
    let allDone = (): void => {};
    const finished = new Promise<void>((resolve) => {
      allDone = resolve;
    });
    consumers.forEach((consumer, index) => {
      consumer.socket.on('message', (data) => {
        const message = JSON.parse(data.toString('utf8')) as Msg;
        if (message.type !== 'job') return;
        counts[index] = (counts[index] as number) + 1;
        done++;
        if (done === 300) allDone();
        consumer.send({
          type: 'ack',
          rid: `a${message.job.id}`,
          queue: 'fair',
          id: message.job.id,
          token: message.token,
        });
      });
    });
    for (const consumer of consumers) {
      expect(await consumer.request({ type: 'subscribe', queue: 'fair', prefetch: 5 })).toMatchObject({
        type: 'ok',
      });
    }
    await enqueue(producer, 'fair', 300);
    await finished;
    // Every ack answered (ok), then nothing is left.
    for (const [index, consumer] of consumers.entries()) {
      const acked = () =>
        consumer.received.filter((m) => m.type === 'ok' && String(m.rid).startsWith('a')).length;
      await consumer.waitFor(() => (acked() === counts[index] ? true : undefined), 5000, 'the ack replies');
    }
    console.log(`ws fair sharing over 300 jobs: ${counts.join(' / ')}`);
    for (const count of counts) {
      expect(count).toBeGreaterThanOrEqual(80);
      expect(count).toBeLessThanOrEqual(120);
    }
    const jobCounts = await server.node.queue({ op: 'getJobCounts', queue: 'fair' });
    expect(jobCounts.waiting + jobCounts.active).toBe(0);
  });

  it('releases the leases of a consumer that disconnects: another consumer gets them at once', async () => {
    const server = await start();
    const producer = await server.connect();
    const first = await server.connect();
    await enqueue(producer, 'dc', 3);
    await first.request({ type: 'subscribe', queue: 'dc', prefetch: 3 });
    const taken = [await first.take(isJob), await first.take(isJob), await first.take(isJob)];
    expect(taken.map((m) => m.job.id).sort()).toEqual(['1', '2', '3']);
    const second = await server.connect();
    await second.request({ type: 'subscribe', queue: 'dc', prefetch: 10 });
    const before = performance.now();
    first.socket.terminate();
    const again = [await second.take(isJob), await second.take(isJob), await second.take(isJob)];
    const elapsed = performance.now() - before;
    expect(again.map((m) => m.job.id).sort()).toEqual(['1', '2', '3']);
    // Far below the 30 s lease: released on disconnect, not expired.
    expect(elapsed).toBeLessThan(2000);
    const job = await server.node.queue({ op: 'getJob', queue: 'dc', id: '1' });
    expect(job.job.attemptsMade).toBe(0);
  });

  it('drops a peer that stops answering pings, and releases its leases', async () => {
    const server = await start({ pingIntervalMs: 100 });
    const producer = await server.connect();
    const silent = await server.connect({ autoPong: false });
    await enqueue(producer, 'dead', 1);
    await silent.request({ type: 'subscribe', queue: 'dead', prefetch: 1 });
    await silent.take(isJob);
    const other = await server.connect();
    await other.request({ type: 'subscribe', queue: 'dead', prefetch: 1 });
    const closed = await silent.closed;
    expect(closed.code).toBe(1006);
    const job = await other.take(isJob, 3000);
    expect(job.job.id).toBe('1');
  });

  it('keeps leases to expire when releaseOnDisconnect is false', async () => {
    const server = await start({ releaseOnDisconnect: false });
    const client = await server.connect();
    await enqueue(client, 'keep', 1);
    await client.request({ type: 'subscribe', queue: 'keep', prefetch: 1, leaseMs: 60_000 });
    await client.take(isJob);
    client.socket.terminate();
    await client.closed;
    await until(() => server.handle.connections === 0);
    const counts = await server.node.queue({ op: 'getJobCounts', queue: 'keep' });
    expect(counts.active).toBe(1);
  });

  it('answers enqueue on an fsync queue once durable, and pushes the job', async () => {
    const server = await start();
    await server.node.queue({ op: 'setConfig', queue: 'safe', config: { durability: 'fsync' } });
    const client = await server.connect();
    await client.request({ type: 'subscribe', queue: 'safe', prefetch: 10 });
    const lsnBefore = server.node.aof.lastLsn;
    const reply = await client.request({
      type: 'enqueue',
      queue: 'safe',
      name: 'n',
      data: [1],
      opts: { jobId: 'x' },
    });
    expect(reply).toMatchObject({ type: 'ok', id: 'x', duplicate: false });
    // The reply left after the fdatasync that covers the add.
    expect(server.node.aof.fsyncedLsn).toBeGreaterThan(lsnBefore);
    const job = await client.take(isJob);
    expect(job.job.id).toBe('x');
    const duplicate = await client.request({
      type: 'enqueue',
      queue: 'safe',
      name: 'n',
      opts: { jobId: 'x' },
    });
    expect(duplicate).toMatchObject({ type: 'ok', id: 'x', duplicate: true });
  });

  it('pushes a delayed job when it comes due, and returns the credit of an expired lease', async () => {
    const server = await start();
    const client = await server.connect();
    await client.request({ type: 'subscribe', queue: 'later', prefetch: 1, leaseMs: 150 });
    const sent = performance.now();
    await client.request({ type: 'enqueue', queue: 'later', name: 'n', opts: { delay: 200, attempts: 3 } });
    const first = await client.take(isJob, 3000);
    const waited = performance.now() - sent;
    expect(waited).toBeGreaterThanOrEqual(190);
    expect(waited).toBeLessThan(1500);
    // Not acked: the 150 ms lease expires, the credit returns and the job comes again with a new token.
    const second = await client.take(isJob, 3000);
    expect(second.job.id).toBe(first.job.id);
    expect(second.token).toBeGreaterThan(first.token);
    expect(second.job.attemptsMade).toBe(1);
    expect(
      await client.request({ type: 'ack', queue: 'later', id: first.job.id, token: first.token }),
    ).toMatchObject({
      code: 'AOFQ_ERR_LEASE_LOST',
    });
    expect(
      await client.request({ type: 'ack', queue: 'later', id: second.job.id, token: second.token }),
    ).toMatchObject({ type: 'ok' });
  });

  it("batch: pushes a round's leases as one jobs message, and ackBatch acks each on its own, credit back", async () => {
    const server = await start();
    const client = await server.connect();
    await enqueue(client, 'bq', 7);
    const ok = await client.request({ type: 'subscribe', queue: 'bq', prefetch: 4, batch: true });
    expect(ok).toMatchObject({ type: 'ok', queue: 'bq', prefetch: 4 });
    const push = await client.take((m) => m.type === 'jobs');
    expect(schemas.server.get('jobs')?.(push)).toBe(true);
    expect(push.queue).toBe('bq');
    expect(push.jobs.map((j: Msg) => j.job.id)).toEqual(['1', '2', '3', '4']);
    expect(client.received.filter((m) => m.type === 'job' || m.type === 'jobs')).toHaveLength(0);
    const [a, b, c, d] = push.jobs as [Msg, Msg, Msg, Msg];
    // One stale token among them: that ack fails alone, the others complete; all four credits return.
    const reply = await client.request({
      type: 'ackBatch',
      queue: 'bq',
      acks: [
        { id: a.job.id, token: a.token, returnvalue: { n: 1 } },
        { id: b.job.id, token: b.token + 1000 },
        { id: c.job.id, token: c.token },
        { id: d.job.id, token: d.token },
      ],
    });
    expect(reply).toMatchObject({ type: 'ok', acked: ['1', '3', '4'] });
    expect(reply.failed).toEqual([{ id: '2', code: 'AOFQ_ERR_LEASE_LOST', message: expect.any(String) }]);
    const counts = await server.node.queue({ op: 'getJobCounts', queue: 'bq' });
    expect(counts.completed).toBe(3);
    const first = await server.node.queue({ op: 'getJob', queue: 'bq', id: '1' });
    expect(first.job.returnvalue).toBe('{"n":1}');
    // Job 2 is still leased (its token was wrong), so 3 credits are free: jobs 5, 6 and 7 come next.
    const next = await client.take((m) => m.type === 'jobs');
    const ids = [next, ...client.drain('jobs')].flatMap((m) => m.jobs.map((j: Msg) => j.job.id));
    expect(ids).toEqual(['5', '6', '7']);
    expect(await client.request({ type: 'ackBatch', queue: 'bq', acks: [] })).toMatchObject({
      type: 'error',
      code: 'AOFQ_ERR_WS_INVALID_MESSAGE',
    });
  });
});
