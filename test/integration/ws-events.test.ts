/**
 * The WebSocket API's event streams over real sockets: BullMQ's event names
 * with increasing ids, resume with lastEventId, and the gap a client is told
 * of when the (small) ring no longer holds what it missed. Every server
 * message seen here is checked against its schema in api/ws/.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { WsOptions } from '../../src/http/ws.js';
import { loadWsSchemas } from '../../src/http/ws-schemas.js';
import { type Msg, startWsServer, type WsTestClient, type WsTestServer } from '../helpers/ws-client.js';

const servers: WsTestServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function start(options: WsOptions = {}): Promise<WsTestServer> {
  const server = await startWsServer(options);
  servers.push(server);
  return server;
}

const schemas = loadWsSchemas();
function expectValid(message: Msg): void {
  const validate = schemas.server.get(message.type);
  expect(validate, `schema for ${message.type}`).toBeDefined();
  const valid = validate?.(message);
  expect(valid, `${JSON.stringify(message)}: ${JSON.stringify(validate?.errors)}`).toBe(true);
}

/** Take `count` event messages of `queue`, in order. */
async function takeEvents(client: WsTestClient, queue: string, count: number): Promise<Msg[]> {
  const events: Msg[] = [];
  for (let i = 0; i < count; i++) {
    const event = await client.take((m) => m.type === 'event' && m.queue === queue, 3000, `event ${i + 1}`);
    expectValid(event);
    events.push(event);
  }
  return events;
}

describe('WebSocket event streams', () => {
  it("streams a queue's events with BullMQ's names and increasing ids", async () => {
    const server = await start();
    const client = await server.connect();
    const ok = await client.request({ type: 'events', queue: 'ev' });
    expectValid(ok);
    expect(ok).toMatchObject({ type: 'ok', queue: 'ev' });
    await client.request({ type: 'enqueue', queue: 'ev', name: 'n', data: { a: 1 } });
    await client.request({ type: 'enqueue', queue: 'elsewhere', name: 'n' });
    const lease = await server.node.queue({ op: 'lease', queue: 'ev' });
    const leased = lease.jobs[0];
    expect(leased).toBeDefined();
    await server.node.queue({ op: 'ack', queue: 'ev', id: '1', token: leased?.token ?? 0, returnvalue: 7 });
    const events = await takeEvents(client, 'ev', 5);
    expect(events.map((e) => e.event)).toEqual(['added', 'waiting', 'active', 'drained', 'completed']);
    expect(events[0]).toMatchObject({ jobId: '1', name: 'n' });
    expect(events[4]).toMatchObject({ jobId: '1', returnvalue: '7', prev: 'active' });
    const ids = events.map((e) => e.id as number);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number);
    // Nothing of the other queue came.
    expect(client.received.filter((m) => m.type === 'event' && m.queue !== 'ev')).toHaveLength(0);
    expect(await client.request({ type: 'stopEvents', queue: 'ev' })).toMatchObject({ type: 'ok' });
    expect(await client.request({ type: 'stopEvents', queue: 'ev' })).toMatchObject({
      code: 'AOFQ_ERR_WS_NOT_SUBSCRIBED',
    });
  });

  it('resumes with lastEventId: a reconnecting client gets exactly what it missed', async () => {
    const server = await start();
    const first = await server.connect();
    await first.request({ type: 'events', queue: 'r' });
    await first.request({ type: 'enqueue', queue: 'r', name: 'a' });
    const seen = await takeEvents(first, 'r', 2);
    const lastEventId = seen[1]?.id as number;
    first.close();
    await first.closed;

    const producer = await server.connect();
    await producer.request({ type: 'enqueue', queue: 'r', name: 'b' });
    await producer.request({ type: 'enqueue', queue: 'noise', name: 'x' });
    await producer.request({ type: 'enqueue', queue: 'r', name: 'c' });

    const second = await server.connect();
    const ok = await second.request({ type: 'events', queue: 'r', lastEventId });
    expect(ok.newestEventId).toBeGreaterThan(lastEventId);
    const missed = await takeEvents(second, 'r', 4);
    expect(missed.map((e) => `${e.event}:${e.jobId}`)).toEqual([
      'added:2',
      'waiting:2',
      'added:3',
      'waiting:3',
    ]);
    expect(missed[0]?.id).toBeGreaterThan(lastEventId);
    expect(second.received.filter((m) => m.type === 'events-gap')).toHaveLength(0);
    // Then it continues live.
    await producer.request({ type: 'enqueue', queue: 'r', name: 'd' });
    const live = await takeEvents(second, 'r', 2);
    expect(live.map((e) => `${e.event}:${e.jobId}`)).toEqual(['added:4', 'waiting:4']);
  });

  it('tells a client of a gap when the ring no longer holds its lastEventId, then sends what it has', async () => {
    const server = await start({ eventRingSize: 8 });
    const client = await server.connect();
    await client.request({ type: 'events', queue: 'g' });
    await client.request({ type: 'enqueue', queue: 'g', name: 'first' });
    const seen = await takeEvents(client, 'g', 2);
    const lastEventId = seen[1]?.id as number;
    client.close();
    await client.closed;

    // 10 jobs → 20 events: the ring (8) drops the oldest of them.
    const producer = await server.connect();
    const jobs = Array.from({ length: 10 }, (_, i) => ({ name: `j${i}` }));
    await producer.request({ type: 'enqueueBatch', queue: 'g', jobs });

    const again = await server.connect();
    await again.request({ type: 'events', queue: 'g', lastEventId });
    const gap = await again.take((m) => m.type === 'events-gap');
    expectValid(gap);
    expect(gap).toMatchObject({ queue: 'g', lastEventId, reason: 'evicted' });
    const held = await takeEvents(again, 'g', 8);
    expect(held[0]?.id).toBe(gap.oldestEventId);
    expect(held.map((e) => e.jobId)).toEqual(['8', '8', '9', '9', '10', '10', '11', '11']);

    // An id this process never gave out (a restarted server): told too.
    const future = await server.connect();
    await future.request({ type: 'events', queue: 'g', lastEventId: 1_000_000 });
    const unknown = await future.take((m) => m.type === 'events-gap');
    expect(unknown).toMatchObject({ reason: 'unknown-id', lastEventId: 1_000_000 });
  });

  it("reports no gap when the evicted events were other queues' only", async () => {
    const server = await start({ eventRingSize: 8 });
    const client = await server.connect();
    await client.request({ type: 'events', queue: 'quiet' });
    await client.request({ type: 'enqueue', queue: 'quiet', name: 'q' });
    const seen = await takeEvents(client, 'quiet', 2);
    client.close();
    await client.closed;
    const producer = await server.connect();
    // 2 quiet events after lastEventId, then 6 noisy ones: the ring (8) evicts only the 2 the client saw.
    await producer.request({ type: 'enqueue', queue: 'quiet', name: 'q2' });
    await producer.request({
      type: 'enqueueBatch',
      queue: 'noisy',
      jobs: [{ name: 'a' }, { name: 'b' }, { name: 'c' }],
    });
    const again = await server.connect();
    await again.request({ type: 'events', queue: 'quiet', lastEventId: seen[1]?.id as number });
    const missed = await takeEvents(again, 'quiet', 2);
    expect(missed.map((e) => `${e.event}:${e.jobId}`)).toEqual(['added:2', 'waiting:2']);
    expect(again.received.filter((m) => m.type === 'events-gap')).toHaveLength(0);
  });

  it('pauses the stream of a client that does not read, and tells it of the gap when it reads again', async () => {
    const highWater = 64 * 1024;
    const server = await start({ bufferedHighWater: highWater, eventRingSize: 20 });
    await server.node.queue({ op: 'add', queue: 'p', jobs: [{ name: 'n' }] });
    const client = await server.connect();
    await client.request({ type: 'events', queue: 'p' });
    client.socket._socket.pause();
    const big = 'y'.repeat(100 * 1024);
    const updates = 100;
    for (let i = 0; i < updates; i++) {
      await server.node.queue({ op: 'progress', queue: 'p', id: '1', progress: { i, big } });
    }
    const serverSide = [...server.app.websocketServer.clients] as Array<{ bufferedAmount: number }>;
    const buffered = Math.max(...serverSide.map((c) => c.bufferedAmount));
    expect(buffered).toBeLessThanOrEqual(highWater + 2 * (big.length + 1024));
    client.socket._socket.resume();
    const gap = await client.take((m) => m.type === 'events-gap', 5000);
    expectValid(gap);
    expect(gap.reason).toBe('slow-consumer');
    const last = await client.take(
      (m) => m.type === 'event' && m.data?.i === updates - 1,
      5000,
      'the last update',
    );
    expect(last.event).toBe('progress');
    const progressSeen = client.received.filter((m) => m.type === 'event').length + 1;
    console.log(
      `ws slow event reader: server buffer ${(buffered / 1024).toFixed(0)} KiB (high water 64 KiB); got ${progressSeen} of ${updates} updates after resuming, with a gap`,
    );
    expect(progressSeen).toBeLessThan(updates);
  });
});
