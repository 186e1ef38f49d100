/**
 * The WebSocket API under misuse, over real sockets: malformed and oversize
 * messages, the close after repeated abuse, auth (header, first message,
 * wrong role), a slow consumer that never reads (the server stops leasing
 * for it and its buffer stays bounded), and the 1001 close on shutdown.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeAllWebSockets, type Role, type WsOptions } from '../../src/http/ws.js';
import { type Msg, startWsServer, until, type WsTestServer } from '../helpers/ws-client.js';

const servers: WsTestServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function start(options: WsOptions = {}): Promise<WsTestServer> {
  const server = await startWsServer(options);
  servers.push(server);
  return server;
}

const TOKENS: Record<string, Role> = { 'p-secret': 'producer', 'c-secret': 'consumer', 'a-secret': 'admin' };
const authenticate = (token: string | undefined): Role | null =>
  token === undefined ? null : (TOKENS[token] ?? null);

describe('WebSocket misuse', () => {
  it('answers bad messages with coded errors, and closes (1008) after repeated abuse', async () => {
    const server = await start({ maxErrorsBeforeClose: 6 });
    const client = await server.connect();
    const nextError = () => client.take((m) => m.type === 'error');

    client.sendRaw('{not json');
    expect(await nextError()).toMatchObject({ code: 'AOFQ_ERR_WS_MALFORMED' });
    client.sendRaw('[1,2]');
    const array = await nextError();
    expect(array).toMatchObject({ code: 'AOFQ_ERR_WS_MALFORMED' });
    expect(array.rid).toBeUndefined();
    client.send({ type: 'teleport', rid: 7 });
    expect(await nextError()).toMatchObject({ code: 'AOFQ_ERR_WS_UNKNOWN_TYPE', rid: 7 });
    client.send({ type: 'subscribe', rid: 'x', queue: 'q', prefetch: 0 });
    const schema = await nextError();
    expect(schema).toMatchObject({ code: 'AOFQ_ERR_WS_INVALID_MESSAGE', rid: 'x' });
    expect(schema.message).toContain('prefetch');
    client.send({ type: 'ack', rid: 'y', queue: 'q', id: '1', token: 1, extra: true });
    expect((await nextError()).message).toContain("'extra'");
    // An operational error (a lease that does not exist) is not abuse: it does not count.
    expect(await client.request({ type: 'ack', queue: 'q', id: '1', token: 1 })).toMatchObject({
      code: 'AOFQ_ERR_QUEUE_NOT_FOUND',
    });
    expect(client.closeInfo).toBeNull();
    client.sendRaw(Buffer.from([1, 2, 3]));
    expect(await nextError()).toMatchObject({ code: 'AOFQ_ERR_WS_MALFORMED' });
    expect(await nextError()).toMatchObject({ code: 'AOFQ_ERR_WS_TOO_MANY_ERRORS' });
    const closed = await client.closed;
    expect(closed.code).toBe(1008);
  });

  it('closes with 1009 on a message over maxPayload', async () => {
    const server = await start({ maxPayload: 1024 });
    const client = await server.connect();
    expect(
      await client.request({ type: 'enqueue', queue: 'q', name: 'small', data: 'x'.repeat(500) }),
    ).toMatchObject({
      type: 'ok',
    });
    client.send({ type: 'enqueue', rid: 1, queue: 'q', name: 'big', data: 'x'.repeat(2000) });
    const closed = await client.closed;
    expect(closed.code).toBe(1009);
    const counts = await server.node.queue({ op: 'getJobCounts', queue: 'q' });
    expect(counts.waiting).toBe(1);
  });

  it('authenticates by header or first message, and checks roles', async () => {
    const server = await start({ authenticate });
    // Header token, consumer: may subscribe, may not enqueue.
    const consumer = await server.connect({ token: 'c-secret' });
    expect(await consumer.request({ type: 'subscribe', queue: 'q', prefetch: 1 })).toMatchObject({
      type: 'ok',
    });
    expect(await consumer.request({ type: 'enqueue', queue: 'q', name: 'n' })).toMatchObject({
      type: 'error',
      code: 'AOFQ_ERR_AUTH_FORBIDDEN',
    });
    // First-message token, producer: may enqueue, may not subscribe or stream events.
    const producer = await server.connect();
    expect(await producer.request({ type: 'auth', token: 'p-secret' })).toMatchObject({
      type: 'ok',
      role: 'producer',
    });
    expect(await producer.request({ type: 'enqueue', queue: 'q', name: 'n' })).toMatchObject({
      type: 'ok',
      id: '1',
    });
    expect(await producer.request({ type: 'events', queue: 'q' })).toMatchObject({
      code: 'AOFQ_ERR_AUTH_FORBIDDEN',
    });
    // The consumer got the job the producer enqueued.
    const job = await consumer.take((m: Msg) => m.type === 'job');
    expect(job.job.id).toBe('1');
    // Admin may do both.
    const admin = await server.connect({ token: 'a-secret' });
    expect(await admin.request({ type: 'enqueue', queue: 'q', name: 'n' })).toMatchObject({ type: 'ok' });
    expect(await admin.request({ type: 'events', queue: 'q' })).toMatchObject({ type: 'ok' });

    // No token, and a first message that is not auth: refused and closed.
    const anonymous = await server.connect();
    expect(await anonymous.request({ type: 'enqueue', queue: 'q', name: 'n' })).toMatchObject({
      code: 'AOFQ_ERR_AUTH_MISSING',
    });
    expect((await anonymous.closed).code).toBe(1008);
    // A wrong token, in the header or in the auth message: refused and closed.
    const wrongHeader = await server.connect({ token: 'nope' });
    expect(await wrongHeader.take((m) => m.type === 'error')).toMatchObject({
      code: 'AOFQ_ERR_AUTH_INVALID',
    });
    expect((await wrongHeader.closed).code).toBe(1008);
    const wrongMessage = await server.connect();
    expect(await wrongMessage.request({ type: 'auth', token: 'nope' })).toMatchObject({
      code: 'AOFQ_ERR_AUTH_INVALID',
    });
    expect((await wrongMessage.closed).code).toBe(1008);
    const counts = await server.node.queue({ op: 'getJobCounts', queue: 'q' });
    expect(counts.waiting + counts.active).toBe(2);
  });

  it('stops leasing for a consumer that never reads, and keeps its send buffer bounded', async () => {
    const highWater = 256 * 1024;
    const server = await start({ bufferedHighWater: highWater });
    const producer = await server.connect();
    const jobBytes = 128 * 1024;
    const total = 150;
    const payload = 'x'.repeat(jobBytes);
    for (let i = 0; i < total; i += 5) {
      const jobs = Array.from({ length: 5 }, (_, k) => ({ name: `big-${i + k}`, data: payload }));
      expect(await producer.request({ type: 'enqueueBatch', queue: 'slow', jobs })).toMatchObject({
        type: 'ok',
      });
    }
    const slow = await server.connect();
    expect(await slow.request({ type: 'subscribe', queue: 'slow', prefetch: 1000 })).toMatchObject({
      type: 'ok',
    });
    slow.socket._socket.pause();
    // Wait until the server stops pushing: the active count stays put for a while.
    const active = async () => (await server.node.queue({ op: 'getJobCounts', queue: 'slow' })).active;
    let last = -1;
    let stableSince = Date.now();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const now = await active();
      if (now !== last) {
        last = now;
        stableSince = Date.now();
      } else if (Date.now() - stableSince > 300) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const serverSide = [...server.app.websocketServer.clients] as Array<{ bufferedAmount: number }>;
    const buffered = Math.max(...serverSide.map((c) => c.bufferedAmount));
    console.log(
      `ws slow consumer: ${last} of ${total} jobs leased (${jobBytes / 1024} KiB each), server buffer ${(buffered / 1024).toFixed(0)} KiB (high water ${highWater / 1024} KiB)`,
    );
    expect(last).toBeGreaterThan(0);
    expect(last).toBeLessThan(total / 2);
    expect(buffered).toBeLessThanOrEqual(highWater + 2 * (jobBytes + 4096));

    // Reading again drains it, and the rest is pushed.
    slow.socket._socket.resume();
    let acked = 0;
    while (acked < total) {
      const job = await slow.take((m) => m.type === 'job', 5000, `job ${acked + 1}`);
      slow.send({ type: 'ack', rid: `a${job.job.id}`, queue: 'slow', id: job.job.id, token: job.token });
      acked++;
    }
    expect(acked).toBe(total);
  });

  it('sends a 1001 close frame with a reason on shutdown', async () => {
    const server = await start();
    const client = await server.connect();
    const other = await server.connect();
    await client.request({ type: 'enqueue', queue: 'q', name: 'n' });
    await client.request({ type: 'subscribe', queue: 'q', prefetch: 1 });
    await client.take((m) => m.type === 'job');
    await server.handle.closeAll('server shutting down');
    expect(await client.closed).toEqual({ code: 1001, reason: 'server shutting down' });
    // Its lease was released before closeAll resolved.
    expect(await server.node.queue({ op: 'getJobCounts', queue: 'q' })).toMatchObject({
      waiting: 1,
      active: 0,
    });
    expect((await other.closed).code).toBe(1001);
    expect(server.handle.connections).toBe(0);

    const second = await start();
    const late = await second.connect();
    closeAllWebSockets('maintenance');
    expect(await late.closed).toEqual({ code: 1001, reason: 'maintenance' });
    await until(() => second.handle.connections === 0);

    // Closing the fastify app closes its connections with 1001 too.
    const third = await start();
    const last = await third.connect();
    await third.close();
    expect(await last.closed).toEqual({ code: 1001, reason: 'server shutting down' });
  });
});
