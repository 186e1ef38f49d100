/**
 * The WebSocket API, `GET /v1/ws`: consumers subscribe to queues and are
 * pushed leased jobs within their credit (prefetch), producers enqueue, and
 * anyone with the consumer role streams a queue's events with resume by
 * `lastEventId`. Messages are JSON, one JSON Schema per type in `api/ws/`;
 * docs/WEBSOCKET.md describes the protocol. This module owns the
 * connections (auth, parsing, limits, heartbeats, backpressure, shutdown);
 * ws-dispatch.ts owns the pushes and ws-events.ts the event ring.
 */
import fastifyWebsocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { AofqError, isAofqError } from '../errors/index.js';
import type { AofqNode } from '../node/node.js';
import type { LeasedJob, QueueEvent, QueueRequest } from '../queue/types.js';
import { assert } from '../util/assert.js';
import type { ChurnMap } from '../util/churn-map.js';
import { LIMITS } from '../util/limits.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { allows, type Role } from './auth.js';
import { type DispatchTarget, QueueDispatcher, Subscription } from './ws-dispatch.js';
import { EventRing, eventMessageText, type GapReason } from './ws-events.js';
import { type ClientMessageType, describeSchemaError, loadWsSchemas, type WsSchemas } from './ws-schemas.js';
import { jobMessageText, jobsMessageText, okMessageText } from './ws-text.js';

export type { Role } from './auth.js';

export interface WsOptions {
  /** Largest message a client may send, bytes (default 1 MiB); a larger one closes with 1009. */
  maxPayload?: number;
  /** Events kept for resume, over all queues (default LIMITS.wsEventRingSize). */
  eventRingSize?: number;
  /** Release the leases a consumer holds when it disconnects (default true); otherwise they expire. */
  releaseOnDisconnect?: boolean;
  /** Ping period; a peer that has not answered the previous ping is dropped (default 30 s). */
  pingIntervalMs?: number;
  /** Pushes to a connection pause while its send buffer holds more bytes (default 1 MiB). */
  bufferedHighWater?: number;
  /** Bad messages tolerated before the connection is closed with 1008 (default 10). */
  maxErrorsBeforeClose?: number;
  /** Token → role, or null when the token is unknown. Absent: no auth, every connection is admin. */
  authenticate?: (token: string | undefined) => Role | null;
  logger?: Logger;
}

interface ResolvedOptions {
  readonly maxPayload: number;
  readonly eventRingSize: number;
  readonly releaseOnDisconnect: boolean;
  readonly pingIntervalMs: number;
  readonly bufferedHighWater: number;
  readonly maxErrorsBeforeClose: number;
  readonly authenticate: ((token: string | undefined) => Role | null) | null;
  readonly logger: Logger;
}

/** The part of ws's WebSocket this module uses (the ws package ships no type declarations). */
interface WsSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  /** ws's TCP socket (a documented-by-use private field); used only to cork a tick's frames together. */
  readonly _socket?: { cork(): void; uncork(): void } | null;
  send(data: string, callback?: (err?: Error | null) => void): void;
  ping(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  on(event: 'message', listener: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): void;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): void;
  on(event: 'pong', listener: () => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
}

const WS_OPEN = 1;
/** RFC 6455 close codes. */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY_VIOLATION = 1008;
/** Close reasons must fit in a control frame: 123 bytes. */
const MAX_CLOSE_REASON_BYTES = 123;
const MAX_RID_LENGTH = 128;
/** A connection's first guess at a pushed job's size, until it has pushed some. */
const INITIAL_JOB_BYTES_ESTIMATE = 64 * 1024;
const MIN_JOB_BYTES_ESTIMATE = 256;

type Permission = 'any' | 'producer' | 'consumer';
const PERMISSIONS: Readonly<Record<ClientMessageType, Permission>> = {
  auth: 'any',
  subscribe: 'consumer',
  unsubscribe: 'consumer',
  ack: 'consumer',
  ackBatch: 'consumer',
  nack: 'consumer',
  release: 'consumer',
  extend: 'consumer',
  events: 'consumer',
  stopEvents: 'consumer',
  enqueue: 'producer',
  enqueueBatch: 'producer',
};

type Rid = string | number;
type Message = Record<string, unknown> & { type: ClientMessageType; rid: Rid };

function closeReason(text: string): string {
  let reason = text;
  while (Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) reason = reason.slice(0, -1);
  return reason;
}

function ridOf(message: Record<string, unknown>): Rid | undefined {
  const rid = message.rid;
  if (typeof rid === 'string' && rid.length <= MAX_RID_LENGTH) return rid;
  if (typeof rid === 'number' && Number.isSafeInteger(rid)) return rid;
  return undefined;
}

function textOf(data: Buffer | ArrayBuffer | Buffer[]): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function bearerToken(header: string | undefined): string | undefined | null {
  if (header === undefined || header === '') return undefined;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match === null || header.length > 4096 ? null : (match[1] as string);
}

/** One events subscription: the id of the last event of its queue it has been sent. */
interface EventStream {
  readonly connection: Connection;
  readonly queue: string;
  lastSeen: number;
}

/** Every live hub in the process, for closeAllWebSockets. */
const HUBS = new Set<WsHub>();

class Connection implements DispatchTarget {
  readonly name: string;
  role: Role | null;
  readonly holds = new Map<string, ChurnMap<string, number>>();
  readonly subscriptions = new Map<string, Subscription>();
  readonly streams = new Map<string, EventStream>();
  private errors = 0;
  private pending = 0;
  private readPaused = false;
  congested = false;
  private corked = false;
  alive = true;
  closed = false;
  private authTimer: NodeJS.Timeout | null = null;
  private jobBytesEstimate = INITIAL_JOB_BYTES_ESTIMATE;
  private readonly onSent = (err?: Error | null): void => {
    if (!err) this.afterWrite();
  };

  constructor(
    private readonly hub: WsHub,
    private readonly socket: WsSocket,
    id: number,
    authorization: string | undefined,
  ) {
    this.name = `ws:${id}`;
    this.role = null;
    // Handlers first, synchronously: nothing the client sends is missed.
    socket.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    socket.on('pong', () => {
      this.alive = true;
    });
    socket.on('close', () => this.onClose());
    socket.on('error', (err) =>
      hub.logger.debug({ connection: this.name, err: String(err) }, 'websocket error'),
    );
    const authenticate = hub.options.authenticate;
    if (authenticate === null) {
      this.role = 'admin';
      return;
    }
    const token = bearerToken(authorization);
    if (token !== undefined) {
      const role = token === null ? null : authenticate(token);
      if (role === null) this.refuse(undefined, new AofqError('AOFQ_ERR_AUTH_INVALID'));
      else this.role = role;
      return;
    }
    this.authTimer = setTimeout(() => {
      this.authTimer = null;
      if (this.role === null) this.refuse(undefined, new AofqError('AOFQ_ERR_AUTH_MISSING'));
    }, LIMITS.wsAuthTimeoutMs);
    this.authTimer.unref();
  }

  get open(): boolean {
    return !this.closed && this.socket.readyState === WS_OPEN;
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  // ---------------------------------------------------------------- sending

  send(message: object | string): void {
    if (!this.open) return;
    const text = typeof message === 'string' ? message : JSON.stringify(message);
    this.cork();
    this.socket.send(text, this.onSent);
    if (this.socket.bufferedAmount > this.hub.options.bufferedHighWater) this.congested = true;
    this.updateReading();
  }

  /**
   * Gather the frames sent in one tick into one write: cork the TCP socket
   * (ws's own cork per frame nests inside) and uncork on the next tick.
   */
  private cork(): void {
    const tcp = this.socket._socket;
    if (this.corked || tcp === undefined || tcp === null || typeof tcp.cork !== 'function') return;
    this.corked = true;
    tcp.cork();
    process.nextTick(() => {
      this.corked = false;
      tcp.uncork();
    });
  }

  private sendError(rid: Rid | undefined, error: AofqError): void {
    this.send({
      type: 'error',
      ...(rid === undefined ? {} : { rid }),
      code: error.code,
      message: error.message,
    });
  }

  /** A write reached the socket: resume the pushes once the buffer is at half the high-water mark. */
  private afterWrite(): void {
    if (this.congested && this.socket.bufferedAmount <= this.hub.options.bufferedHighWater / 2) {
      this.congested = false;
      this.hub.onDrained(this);
    }
    this.updateReading();
  }

  /** Stop reading a client that has too many requests in flight, or that does not read its replies. */
  private updateReading(): void {
    const shouldPause =
      this.pending >= LIMITS.wsPendingRequestsPerConnection ||
      this.socket.bufferedAmount > 4 * this.hub.options.bufferedHighWater;
    if (shouldPause && !this.readPaused && this.open) {
      this.readPaused = true;
      this.socket.pause();
    } else if (!shouldPause && this.readPaused && this.pending <= LIMITS.wsPendingRequestsPerConnection / 2) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  /** True while this server does not read the client (its pongs wait unread too). */
  get readingPaused(): boolean {
    return this.readPaused;
  }

  pushAllowance(): number {
    if (this.congested || !this.open) return 0;
    const room = this.hub.options.bufferedHighWater - this.socket.bufferedAmount;
    return Math.max(1, Math.floor(room / this.jobBytesEstimate));
  }

  /** Several leases of one round as one `jobs` message (a subscription made with `batch`). */
  pushMany(queue: string, leased: readonly LeasedJob[]): void {
    const text = jobsMessageText(queue, leased);
    this.noteJobBytes(Math.ceil(Buffer.byteLength(text) / leased.length));
    this.send(text);
  }

  push(queue: string, leased: LeasedJob): void {
    const text = jobMessageText(queue, leased);
    this.noteJobBytes(Buffer.byteLength(text));
    this.send(text);
  }

  /** A decaying maximum of the pushed job sizes: pushAllowance divides the room left by it. */
  private noteJobBytes(bytes: number): void {
    this.jobBytesEstimate = Math.max(
      MIN_JOB_BYTES_ESTIMATE,
      bytes,
      this.jobBytesEstimate - (this.jobBytesEstimate >> 4),
    );
  }

  // ---------------------------------------------------------------- receiving

  private onMessage(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    this.alive = true;
    if (this.closed) return;
    if (isBinary) {
      this.reject(
        undefined,
        new AofqError('AOFQ_ERR_WS_MALFORMED', { reason: 'binary frames are not accepted' }),
      );
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(textOf(data));
    } catch (err) {
      const reason = `not JSON (${err instanceof Error ? err.message.slice(0, 100) : 'parse error'})`;
      this.reject(undefined, new AofqError('AOFQ_ERR_WS_MALFORMED', { reason }));
      return;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      this.reject(
        undefined,
        new AofqError('AOFQ_ERR_WS_MALFORMED', { reason: 'a message is a JSON object' }),
      );
      return;
    }
    const raw = parsed as Record<string, unknown>;
    const rid = ridOf(raw);
    if (typeof raw.type !== 'string') {
      this.reject(rid, new AofqError('AOFQ_ERR_WS_MALFORMED', { reason: "'type' must be a string" }));
      return;
    }
    const validate = this.hub.schemas.client.get(raw.type);
    if (validate === undefined) {
      this.reject(rid, new AofqError('AOFQ_ERR_WS_UNKNOWN_TYPE', { type: raw.type.slice(0, 64) }));
      return;
    }
    const type = raw.type;
    if (!validate(raw)) {
      const reason = describeSchemaError(validate.errors);
      this.reject(rid, new AofqError('AOFQ_ERR_WS_INVALID_MESSAGE', { type, reason }));
      return;
    }
    const message = raw as Message;
    if (this.role === null) {
      if (message.type === 'auth') this.authenticate(message);
      else this.refuse(message.rid, new AofqError('AOFQ_ERR_AUTH_MISSING'));
      return;
    }
    const permission = PERMISSIONS[message.type];
    if (permission !== 'any' && !allows(this.role, permission)) {
      this.reject(message.rid, new AofqError('AOFQ_ERR_AUTH_FORBIDDEN', { action: message.type }));
      return;
    }
    try {
      this.handle(message);
    } catch (err) {
      this.fail(message.rid, err);
    }
  }

  /** A bad message: an error reply, and the connection closes after too many. */
  private reject(rid: Rid | undefined, error: AofqError): void {
    this.sendError(rid, error);
    this.errors++;
    if (this.errors >= this.hub.options.maxErrorsBeforeClose) {
      const tooMany = new AofqError('AOFQ_ERR_WS_TOO_MANY_ERRORS', { count: this.errors });
      this.sendError(undefined, tooMany);
      this.close(CLOSE_POLICY_VIOLATION, tooMany.message);
    }
  }

  /** An auth failure: an error reply, then close (1008). */
  private refuse(rid: Rid | undefined, error: AofqError): void {
    this.sendError(rid, error);
    this.close(CLOSE_POLICY_VIOLATION, error.message);
  }

  /** An operation's failure: AofqErrors as they are, anything else as an internal error. */
  private fail(rid: Rid, err: unknown): void {
    if (isAofqError(err)) {
      this.sendError(rid, err);
      return;
    }
    this.hub.logger.error({ connection: this.name, err: String(err) }, 'websocket: internal error');
    this.sendError(rid, new AofqError('AOFQ_ERR_INTERNAL'));
  }

  private authenticate(message: Message): void {
    const authenticate = this.hub.options.authenticate;
    assert(authenticate !== null, 'auth without an authenticator');
    const role = authenticate(message.token as string);
    if (role === null) {
      this.refuse(message.rid, new AofqError('AOFQ_ERR_AUTH_INVALID'));
      return;
    }
    this.role = role;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.send({ type: 'ok', rid: message.rid, role });
  }

  private handle(message: Message): void {
    const queue = message.queue as string;
    switch (message.type) {
      case 'auth':
        this.reject(
          message.rid,
          new AofqError('AOFQ_ERR_WS_INVALID_MESSAGE', { type: 'auth', reason: 'already authenticated' }),
        );
        return;
      case 'subscribe':
        this.subscribe(message, queue);
        return;
      case 'unsubscribe': {
        const subscription = this.subscriptions.get(queue);
        if (subscription === undefined)
          throw new AofqError('AOFQ_ERR_WS_NOT_SUBSCRIBED', { what: 'jobs', queue });
        this.subscriptions.delete(queue);
        this.hub.unsubscribe(subscription);
        this.send({ type: 'ok', rid: message.rid, queue });
        return;
      }
      case 'ack':
      case 'nack':
      case 'release':
      case 'extend':
        this.settleLease(message, queue);
        return;
      case 'ackBatch':
        this.ackBatch(message, queue);
        return;
      case 'enqueue':
        this.run(message.rid, async () => {
          const result = await this.hub.node.queue({
            op: 'add',
            queue,
            jobs: [{ name: message.name as string, data: message.data, opts: message.opts as object }],
          });
          const job = result.jobs[0];
          assert(job !== undefined, 'add returns its job');
          return { id: job.id, duplicate: job.duplicate };
        });
        return;
      case 'enqueueBatch':
        this.run(message.rid, async () => {
          const jobs = message.jobs as Extract<QueueRequest, { op: 'add' }>['jobs'];
          return this.hub.node.queue({ op: 'add', queue, jobs });
        });
        return;
      case 'events':
        this.events(message, queue);
        return;
      case 'stopEvents': {
        const stream = this.streams.get(queue);
        if (stream === undefined)
          throw new AofqError('AOFQ_ERR_WS_NOT_SUBSCRIBED', { what: 'events', queue });
        this.streams.delete(queue);
        this.hub.removeStream(stream);
        this.send({ type: 'ok', rid: message.rid, queue });
        return;
      }
    }
  }

  private checkSubscriptionRoom(): void {
    if (this.subscriptions.size + this.streams.size >= LIMITS.wsSubscriptionsPerConnection) {
      throw new AofqError('AOFQ_ERR_WS_TOO_MANY_SUBSCRIPTIONS', {
        limit: LIMITS.wsSubscriptionsPerConnection,
      });
    }
  }

  private subscribe(message: Message, queue: string): void {
    if (this.subscriptions.has(queue))
      throw new AofqError('AOFQ_ERR_WS_ALREADY_SUBSCRIBED', { what: 'jobs', queue });
    this.checkSubscriptionRoom();
    const subscription = new Subscription(
      this,
      queue,
      message.prefetch as number,
      message.leaseMs as number | undefined,
      message.batch === true,
    );
    this.subscriptions.set(queue, subscription);
    // The reply goes first; pushes follow from the dispatcher's next run.
    this.send({ type: 'ok', rid: message.rid, queue, prefetch: subscription.prefetch });
    this.hub.subscribe(subscription);
  }

  private settleLease(message: Message, queue: string): void {
    const id = message.id as string;
    const token = message.token as number;
    const request: QueueRequest =
      message.type === 'ack'
        ? { op: 'ack', queue, id, token, returnvalue: message.returnvalue }
        : message.type === 'nack'
          ? {
              op: 'nack',
              queue,
              id,
              token,
              failedReason: message.failedReason as string,
              stacktrace: message.stacktrace as string | undefined,
              delayMs: message.delayMs as number | undefined,
              retry: message.retry as boolean | undefined,
            }
          : message.type === 'release'
            ? { op: 'release', queue, id, token, delayMs: message.delayMs as number | undefined }
            : { op: 'extend', queue, id, token, leaseMs: message.leaseMs as number };
    this.run(message.rid, async () => {
      try {
        return (await this.hub.node.queue(request)) as object;
      } catch (err) {
        // The lease is gone whatever this connection thought: its credit returns.
        if (isAofqError(err, 'AOFQ_ERR_LEASE_LOST') || isAofqError(err, 'AOFQ_ERR_JOB_NOT_FOUND')) {
          this.hub.dispatcherOf(queue)?.unhold(id, token);
        }
        throw err;
      }
    });
  }

  /**
   * `ackBatch`: each ack runs as its own queue operation (one record each, one
   * AOF batch for all of them), succeeds or fails on its own, and returns its
   * credit either way; the one reply lists both. Other errors fail the reply.
   */
  private ackBatch(message: Message, queue: string): void {
    const acks = message.acks as Array<{ id: string; token: number; returnvalue?: unknown }>;
    this.run(message.rid, async () => {
      const outcomes = await Promise.all(
        acks.map(({ id, token, returnvalue }) =>
          this.hub.node.queue({ op: 'ack', queue, id, token, returnvalue }).then(
            () => null,
            (err: unknown) => {
              if (isAofqError(err, 'AOFQ_ERR_LEASE_LOST') || isAofqError(err, 'AOFQ_ERR_JOB_NOT_FOUND')) {
                this.hub.dispatcherOf(queue)?.unhold(id, token);
                return { id, code: err.code, message: err.message };
              }
              throw err;
            },
          ),
        ),
      );
      const acked: string[] = [];
      const failed: Array<{ id: string; code: string; message: string }> = [];
      outcomes.forEach((outcome, i) => {
        if (outcome === null) acked.push((acks[i] as { id: string }).id);
        else failed.push(outcome);
      });
      return { acked, failed };
    });
  }

  private events(message: Message, queue: string): void {
    if (this.streams.has(queue))
      throw new AofqError('AOFQ_ERR_WS_ALREADY_SUBSCRIBED', { what: 'events', queue });
    this.checkSubscriptionRoom();
    const ring = this.hub.ring;
    const lastEventId = message.lastEventId as number | undefined;
    const stream: EventStream = { connection: this, queue, lastSeen: ring.newestId };
    let gap: GapReason | null = null;
    if (lastEventId !== undefined) {
      const resume = ring.resume(queue, lastEventId);
      stream.lastSeen = resume.lastSeen;
      gap = resume.gap;
    }
    this.streams.set(queue, stream);
    this.send({ type: 'ok', rid: message.rid, queue, newestEventId: ring.newestId });
    if (gap !== null && lastEventId !== undefined) this.sendGap(queue, lastEventId, gap);
    this.hub.addStream(stream);
  }

  sendGap(queue: string, lastEventId: number, reason: GapReason): void {
    this.send({ type: 'events-gap', queue, lastEventId, oldestEventId: this.hub.ring.oldestId, reason });
  }

  /** Run an operation; its reply (ok with its result, or error) echoes `rid`. */
  private run(rid: Rid, work: () => Promise<object>): void {
    this.pending++;
    this.updateReading();
    work().then(
      (result) => {
        this.pending--;
        this.send(okMessageText(rid, result));
      },
      (err: unknown) => {
        this.pending--;
        this.fail(rid, err);
      },
    );
  }

  // ---------------------------------------------------------------- closing

  close(code: number, reason: string): void {
    if (this.closed) return;
    if (this.socket.readyState === WS_OPEN) this.socket.close(code, closeReason(reason));
    else this.socket.terminate();
  }

  terminate(): void {
    this.socket.terminate();
  }

  ping(): void {
    if (this.open) this.socket.ping();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.hub.forget(this);
  }
}

class WsHub {
  readonly connections = new Set<Connection>();
  readonly ring: EventRing;
  readonly logger: Logger;
  private readonly dispatchers = new Map<string, QueueDispatcher>();
  private readonly streams = new Map<string, Set<EventStream>>();
  private readonly dirtyQueues = new Set<string>();
  private flushScheduled = false;
  private readonly releases = new Set<Promise<unknown>>();
  private readonly unlisten: () => void;
  private readonly pingTimer: NodeJS.Timeout;
  private nextConnectionId = 1;
  private readonly whenEmpty = new Set<() => void>();
  closing = false;

  constructor(
    readonly node: AofqNode,
    readonly options: ResolvedOptions,
    readonly schemas: WsSchemas,
  ) {
    this.ring = new EventRing(options.eventRingSize);
    this.logger = options.logger;
    this.unlisten = node.onQueueEvent((queue, event) => this.onQueueEvent(queue, event));
    this.pingTimer = setInterval(() => this.heartbeat(), options.pingIntervalMs);
    this.pingTimer.unref();
    HUBS.add(this);
  }

  accept(socket: WsSocket, authorization: string | undefined): void {
    const connection = new Connection(this, socket, this.nextConnectionId++, authorization);
    this.connections.add(connection);
    if (this.closing) connection.close(CLOSE_GOING_AWAY, 'server shutting down');
  }

  dispatcherOf(queue: string): QueueDispatcher | undefined {
    return this.dispatchers.get(queue);
  }

  subscribe(subscription: Subscription): void {
    let dispatcher = this.dispatchers.get(subscription.queue);
    if (dispatcher === undefined) {
      dispatcher = new QueueDispatcher(subscription.queue, this.node, this.logger);
      this.dispatchers.set(subscription.queue, dispatcher);
    }
    dispatcher.add(subscription);
  }

  unsubscribe(subscription: Subscription): void {
    this.dispatchers.get(subscription.queue)?.remove(subscription);
  }

  /** Called synchronously inside apply: bookkeeping only, commands are deferred. */
  private onQueueEvent(queue: string, event: QueueEvent): void {
    this.ring.push(queue, event);
    this.dispatchers.get(queue)?.onEvent(event);
    if (this.streams.has(queue)) {
      this.dirtyQueues.add(queue);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flushDirty());
      }
    }
  }

  addStream(stream: EventStream): void {
    let set = this.streams.get(stream.queue);
    if (set === undefined) {
      set = new Set();
      this.streams.set(stream.queue, set);
    }
    set.add(stream);
    this.flush(stream);
  }

  removeStream(stream: EventStream): void {
    const set = this.streams.get(stream.queue);
    set?.delete(stream);
    if (set !== undefined && set.size === 0) this.streams.delete(stream.queue);
  }

  private flushDirty(): void {
    this.flushScheduled = false;
    for (const queue of this.dirtyQueues)
      for (const stream of this.streams.get(queue) ?? []) this.flush(stream);
    this.dirtyQueues.clear();
  }

  /** Send a stream what it has not seen, until its connection is congested. */
  private flush(stream: EventStream): void {
    const connection = stream.connection;
    if (connection.congested || !connection.open || connection.streams.get(stream.queue) !== stream) return;
    if (this.ring.lostAfter(stream.queue, stream.lastSeen) && stream.lastSeen < this.ring.oldestId - 1) {
      connection.sendGap(stream.queue, stream.lastSeen, 'slow-consumer');
      stream.lastSeen = this.ring.oldestId - 1;
    }
    for (let sent = 0; sent < this.ring.capacity && !connection.congested; sent++) {
      const entry = this.ring.nextFor(stream.queue, stream.lastSeen);
      if (entry === undefined) return;
      stream.lastSeen = entry.id;
      connection.send(eventMessageText(entry));
    }
  }

  /** A congested connection's buffer drained: resume its pushes and its event streams. */
  onDrained(connection: Connection): void {
    for (const subscription of connection.subscriptions.values()) {
      this.dispatchers.get(subscription.queue)?.schedule();
    }
    for (const stream of connection.streams.values()) this.flush(stream);
  }

  /** A connection closed: drop its subscriptions and streams, and release its leases. */
  forget(connection: Connection): void {
    this.connections.delete(connection);
    for (const subscription of connection.subscriptions.values()) this.unsubscribe(subscription);
    for (const stream of connection.streams.values()) this.removeStream(stream);
    for (const queue of [...connection.holds.keys()]) {
      const dispatcher = this.dispatchers.get(queue);
      const dropped = dispatcher?.dropTarget(connection) ?? [];
      if (this.options.releaseOnDisconnect) {
        for (const { id, token } of dropped) {
          const release = this.node
            .queue({ op: 'release', queue, id, token })
            .catch((err: unknown) =>
              this.logger.debug({ queue, id, err: String(err) }, 'websocket: release failed'),
            );
          this.releases.add(release);
          void release.finally(() => this.releases.delete(release));
        }
      }
    }
    connection.holds.clear();
    if (this.connections.size === 0) for (const resolve of this.whenEmpty) resolve();
    for (const [queue, dispatcher] of this.dispatchers) {
      if (dispatcher.idle) {
        dispatcher.stop();
        this.dispatchers.delete(queue);
      }
    }
  }

  private heartbeat(): void {
    for (const connection of this.connections) {
      // Its pong may sit unread behind the requests we are not reading: no verdict this round.
      if (connection.readingPaused) continue;
      if (!connection.alive) {
        this.logger.info({ connection: connection.name }, 'websocket: no pong, dropping the peer');
        connection.terminate();
        continue;
      }
      connection.alive = false;
      connection.ping();
    }
  }

  /** Resolves once no connection is left, or after `timeoutMs`. */
  private async whenNoConnections(timeoutMs: number): Promise<void> {
    if (this.connections.size === 0) return;
    let resolveEmpty = (): void => {};
    const empty = new Promise<void>((resolve) => {
      resolveEmpty = resolve;
    });
    this.whenEmpty.add(resolveEmpty);
    const timer = setTimeout(resolveEmpty, timeoutMs);
    await empty;
    clearTimeout(timer);
    this.whenEmpty.delete(resolveEmpty);
  }

  /**
   * Close every connection with 1001; cut those that have not closed after the
   * grace period. Resolves once they are gone and their leases released.
   */
  async closeAll(reason: string, graceMs = LIMITS.wsCloseGraceMs): Promise<void> {
    this.closing = true;
    for (const connection of [...this.connections]) connection.close(CLOSE_GOING_AWAY, reason);
    await this.whenNoConnections(graceMs);
    for (const connection of [...this.connections]) connection.terminate();
    // A cut socket reports its close on a later turn; its leases are released then.
    await this.whenNoConnections(graceMs);
    await Promise.allSettled([...this.releases]);
  }

  dispose(): void {
    clearInterval(this.pingTimer);
    this.unlisten();
    for (const dispatcher of this.dispatchers.values()) dispatcher.stop();
    HUBS.delete(this);
  }
}

function resolveOptions(options: WsOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    maxPayload: options.maxPayload ?? LIMITS.wsMaxPayloadBytes,
    eventRingSize: options.eventRingSize ?? LIMITS.wsEventRingSize,
    releaseOnDisconnect: options.releaseOnDisconnect ?? true,
    pingIntervalMs: options.pingIntervalMs ?? LIMITS.wsPingIntervalMs,
    bufferedHighWater: options.bufferedHighWater ?? LIMITS.wsBufferedHighWaterBytes,
    maxErrorsBeforeClose: options.maxErrorsBeforeClose ?? LIMITS.wsMaxErrorsBeforeClose,
    authenticate: options.authenticate ?? null,
    logger: options.logger ?? silentLogger,
  };
  for (const name of [
    'maxPayload',
    'eventRingSize',
    'pingIntervalMs',
    'bufferedHighWater',
    'maxErrorsBeforeClose',
  ] as const) {
    const value = resolved[name];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new AofqError('AOFQ_ERR_CONFIG_INVALID', {
        reason: `websocket ${name} must be a positive integer`,
      });
    }
  }
  return resolved;
}

/** What registerWebSocket returns: statistics for tests and INFO, and a shutdown that waits. */
export interface WebSocketHandle {
  /** Close every connection with 1001 and `reason`; resolves once they are closed (or cut after a grace period). */
  closeAll(reason: string): Promise<void>;
  /** Connections open now. */
  readonly connections: number;
  /** Give the API its node, once, when it was registered without one (before the AOF had loaded). */
  attach(node: AofqNode): void;
}

/** RFC 6455 1013 "Try Again Later": an upgrade that arrived before the node was attached. */
const CLOSE_TRY_AGAIN_LATER = 1013;

/**
 * Register @fastify/websocket and `GET /v1/ws` on `app`. Call before `listen`.
 * `node` may be null while the AOF loads: `attach` it later (the HTTP layer
 * answers upgrades 503 meanwhile; one that slips through is closed with 1013).
 * On `app.close()` every connection gets a 1001 close frame first.
 */
export function registerWebSocket(
  app: FastifyInstance,
  node: AofqNode | null,
  options: WsOptions = {},
): WebSocketHandle {
  const resolved = resolveOptions(options);
  const schemas = loadWsSchemas();
  let hub: WsHub | null = null;
  const attach = (attached: AofqNode): void => {
    assert(hub === null, 'the WebSocket API is attached to one node, once');
    hub = new WsHub(attached, resolved, schemas);
  };
  if (node !== null) attach(node);
  app.register(fastifyWebsocket, {
    options: { maxPayload: resolved.maxPayload, perMessageDeflate: false },
    preClose(done) {
      const current = hub;
      const closed = current === null ? Promise.resolve() : current.closeAll('server shutting down');
      closed
        .then(() => {
          current?.dispose();
          this.websocketServer.close(() => done());
        })
        .catch(done);
    },
  });
  app.register(async (scope) => {
    scope.get('/v1/ws', { websocket: true, config: { operationId: 'websocket' } }, (socket, request) => {
      if (hub === null) {
        socket.close(CLOSE_TRY_AGAIN_LATER, 'aofq is loading');
        return;
      }
      hub.accept(socket as unknown as WsSocket, request.headers.authorization);
    });
  });
  return {
    closeAll: (reason) => hub?.closeAll(reason) ?? Promise.resolve(),
    get connections() {
      return hub?.connections.size ?? 0;
    },
    attach,
  };
}

/** Close every WebSocket connection of the process with 1001 and `reason` (shutdown). */
export function closeAllWebSockets(reason: string): void {
  for (const hub of HUBS) void hub.closeAll(reason);
}
