/**
 * WebSocket test helpers: a small fastify app with the WebSocket plugin and
 * a node in a fresh temporary directory on 127.0.0.1 port 0, and a client on
 * the `ws` package that queues what it receives, so that a test awaits the
 * message it wants (with a deadline) instead of sleeping.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { registerWebSocket, type WebSocketHandle, type WsOptions } from '../../src/http/ws.js';
import { AofqNode } from '../../src/node/node.js';

/** The part of ws's client WebSocket the tests use (ws ships no type declarations). */
export interface RawClientSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  readonly _socket: { pause(): void; resume(): void };
  send(data: string | Buffer, callback?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'open', listener: () => void): void;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'unexpected-response', listener: (req: unknown, res: { statusCode: number }) => void): void;
}
type RawClientConstructor = new (
  url: string,
  options?: { headers?: Record<string, string>; autoPong?: boolean; maxPayload?: number },
) => RawClientSocket;

const require = createRequire(import.meta.url);
export const WebSocketClient = require('ws') as RawClientConstructor;

// biome-ignore lint/suspicious/noExplicitAny: messages are whatever JSON the server sends
export type Msg = Record<string, any>;

export class WsTestClient {
  readonly received: Msg[] = [];
  private readonly waiters = new Set<() => void>();
  private nextRid = 1;
  closeInfo: { code: number; reason: string } | null = null;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly socket: RawClientSocket) {
    socket.on('message', (data) => {
      this.received.push(JSON.parse(data.toString('utf8')) as Msg);
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        this.wake();
        resolve(this.closeInfo);
      });
    });
    socket.on('error', () => {});
  }

  static connect(url: string, options: { token?: string; autoPong?: boolean } = {}): Promise<WsTestClient> {
    const socket = new WebSocketClient(url, {
      ...(options.token === undefined ? {} : { headers: { authorization: `Bearer ${options.token}` } }),
      ...(options.autoPong === undefined ? {} : { autoPong: options.autoPong }),
      maxPayload: 256 * 1024 * 1024,
    });
    const client = new WsTestClient(socket);
    return new Promise((resolve, reject) => {
      socket.on('open', () => resolve(client));
      socket.on('error', reject);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  send(message: Msg): void {
    this.socket.send(JSON.stringify(message));
  }

  sendRaw(data: string | Buffer): void {
    this.socket.send(data);
  }

  /** Resolves once `check` returns a value (not undefined), re-checked on every message; rejects at the deadline. */
  waitFor<T>(check: () => T | undefined, timeoutMs = 5000, what = 'a message'): Promise<T> {
    const first = check();
    if (first !== undefined) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const waiter = (): void => {
        const value = check();
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (this.closeInfo !== null) {
          finish();
          reject(new Error(`connection closed (${this.closeInfo.code}) while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
    });
  }

  /** The first received message that matches, removed from the queue. */
  take(match: (message: Msg) => boolean, timeoutMs = 5000, what = 'a message'): Promise<Msg> {
    return this.waitFor(
      () => {
        const index = this.received.findIndex(match);
        if (index < 0) return undefined;
        return this.received.splice(index, 1)[0];
      },
      timeoutMs,
      what,
    );
  }

  /** Send a request with a fresh rid and await its reply (ok or error). */
  request(message: Msg, timeoutMs = 5000): Promise<Msg> {
    const rid = message.rid ?? `r${this.nextRid++}`;
    this.send({ ...message, rid });
    return this.take(
      (m) => (m.type === 'ok' || m.type === 'error') && m.rid === rid,
      timeoutMs,
      `the reply to ${message.type}`,
    );
  }

  /** Messages of one type received so far and not taken, taken now. */
  drain(type: string): Msg[] {
    const out: Msg[] = [];
    for (let i = 0; i < this.received.length; ) {
      if (this.received[i]?.type === type) out.push(...this.received.splice(i, 1));
      else i++;
    }
    return out;
  }

  close(): void {
    if (this.closeInfo === null) this.socket.close(1000, 'done');
  }
}

/** Poll `predicate` every 5 ms until it holds; fails at the deadline. */
export async function until(predicate: () => boolean, timeoutMs = 5000, what = 'a condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface WsTestServer {
  readonly url: string;
  readonly node: AofqNode;
  readonly app: FastifyInstance;
  readonly handle: WebSocketHandle;
  readonly clients: WsTestClient[];
  connect(options?: { token?: string; autoPong?: boolean }): Promise<WsTestClient>;
  close(): Promise<void>;
}

export async function startWsServer(
  options: WsOptions = {},
  appendfsync: 'everysec' | 'always' | 'no' = 'everysec',
): Promise<WsTestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-ws-'));
  const node = await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir, appendfsync });
  const app = Fastify({ logger: false });
  const handle = registerWebSocket(app, node, options);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const url = `ws://127.0.0.1:${port}/v1/ws`;
  const clients: WsTestClient[] = [];
  let closed = false;
  return {
    url,
    node,
    app,
    handle,
    clients,
    async connect(connectOptions = {}) {
      const client = await WsTestClient.connect(url, connectOptions);
      clients.push(client);
      return client;
    },
    async close() {
      if (closed) return;
      closed = true;
      // The server closes its connections with 1001 first; the clients end after.
      await app.close();
      for (const client of clients) client.socket.terminate();
      await node.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
