/**
 * WebSocket end-to-end benchmark: jobs per second through enqueue → push →
 * ack over real sockets on loopback, 50 consumer connections (prefetch 20
 * each, acking on receipt) and one producer connection in this process, for
 * a `default` and an `fsync` queue (appendfsync everysec), with one enqueue
 * message per job (256 in flight) and with enqueueBatch (100 jobs a message,
 * 8 in flight). Each run is bounded (job count and a time cap); 3 repetitions,
 * the median is printed.
 * Run: node --import tsx bench/ws.ts [jobs] [repetitions]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { DEFAULT_AOF_CONFIG } from '../src/aof/config.js';
import { registerWebSocket } from '../src/http/ws.js';
import { AofqNode } from '../src/node/node.js';
import { openSocket, type Socket } from './suite/loadgen.js';

const JOBS = Number(process.argv[2] ?? 20_000);
const REPETITIONS = Number(process.argv[3] ?? 3);
const CONSUMERS = 50;
const PREFETCH = 20;
const SINGLE_WINDOW = 256;
const BATCH_SIZE = 100;
const BATCH_WINDOW = 8;
const RUN_CAP_MS = 60_000;
const PAYLOAD = { to: 'someone@example.com', body: 'x'.repeat(64) };

async function runOnce(durability: 'default' | 'fsync', batched: boolean, jobs: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-bench-ws-'));
  const node = await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir, appendfsync: 'everysec' });
  const app = Fastify({ logger: false });
  registerWebSocket(app, node, {});
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const url = `ws://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/v1/ws`;
  const queue = 'bench';
  await node.queue({ op: 'setConfig', queue, config: { durability } });
  try {
    let acked = 0;
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const consumers: Socket[] = [];
    for (let i = 0; i < CONSUMERS; i++) {
      const socket = await openSocket(url);
      let rid = 0;
      socket.on('message', (data) => {
        const message = JSON.parse(data.toString('utf8')) as {
          type: string;
          rid?: unknown;
          job?: { id: string };
          token?: number;
        };
        if (message.type === 'job' && message.job !== undefined) {
          socket.send(
            JSON.stringify({ type: 'ack', rid: rid++, queue, id: message.job.id, token: message.token }),
          );
        } else if (message.type === 'ok' && typeof message.rid === 'number') {
          acked++;
          if (acked === jobs) finish();
        } else if (message.type === 'error') {
          throw new Error(JSON.stringify(message));
        }
      });
      consumers.push(socket);
    }
    const subscribed = consumers.map(
      (socket) =>
        new Promise<void>((resolve) => {
          socket.on('message', (data) => {
            if (data.toString('utf8').includes('"rid":"sub"')) resolve();
          });
          socket.send(JSON.stringify({ type: 'subscribe', rid: 'sub', queue, prefetch: PREFETCH }));
        }),
    );
    await Promise.all(subscribed);

    const producer = await openSocket(url);
    const perMessage = batched ? BATCH_SIZE : 1;
    const window = batched ? BATCH_WINDOW : SINGLE_WINDOW;
    const messages = Math.ceil(jobs / perMessage);
    let sent = 0;
    const sendNext = (): void => {
      if (sent >= messages) return;
      const count = Math.min(perMessage, jobs - sent * perMessage);
      const rid = `p${sent++}`;
      if (batched) {
        const batch = Array.from({ length: count }, () => ({ name: 'email', data: PAYLOAD }));
        producer.send(JSON.stringify({ type: 'enqueueBatch', rid, queue, jobs: batch }));
      } else producer.send(JSON.stringify({ type: 'enqueue', rid, queue, name: 'email', data: PAYLOAD }));
    };
    producer.on('message', (data) => {
      const message = JSON.parse(data.toString('utf8')) as { type: string };
      if (message.type !== 'ok') throw new Error(data.toString('utf8'));
      sendNext();
    });
    const started = performance.now();
    for (let i = 0; i < window; i++) sendNext();
    const cap = new Promise<'cap'>((resolve) => setTimeout(() => resolve('cap'), RUN_CAP_MS).unref());
    const outcome = await Promise.race([done.then(() => 'done' as const), cap]);
    const elapsed = (performance.now() - started) / 1000;
    if (outcome === 'cap') console.error(`  capped after ${RUN_CAP_MS} ms with ${acked}/${jobs} acked`);
    for (const socket of [...consumers, producer]) socket.terminate();
    return acked / elapsed;
  } finally {
    await app.close();
    await node.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function main(): Promise<void> {
  console.log(
    `WebSocket end-to-end: ${JOBS} jobs a run, ${CONSUMERS} consumers (prefetch ${PREFETCH}), ${REPETITIONS} runs, median`,
  );
  const rows: Array<[string, string, number[]]> = [];
  for (const durability of ['default', 'fsync'] as const) {
    for (const batched of [false, true]) {
      const label = batched ? `enqueueBatch x${BATCH_SIZE}` : 'enqueue (1 job)';
      const runs: number[] = [];
      for (let r = 0; r < REPETITIONS; r++) runs.push(await runOnce(durability, batched, JOBS));
      rows.push([durability, label, runs]);
      console.error(`  ${durability} ${label}: ${runs.map((x) => x.toFixed(0)).join(', ')} jobs/s`);
    }
  }
  console.log('| queue durability | producer | jobs/s (median) | runs |');
  console.log('|---|---|---:|---|');
  for (const [durability, label, runs] of rows) {
    console.log(
      `| ${durability} | ${label} | ${median(runs).toFixed(0)} | ${runs.map((x) => x.toFixed(0)).join(', ')} |`,
    );
  }
}

await main();
