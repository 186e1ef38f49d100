/**
 * The RESP port: a TCP server that speaks RESP2 to redis-cli, redis-benchmark
 * and Redis client libraries, in front of the node's key-value core. Owned
 * here: connections, pipelining, reply ordering, backpressure, and the port's
 * limits (maxclients, client-query-buffer-limit, proto-max-bulk-len).
 *
 * Pipelining. Each read is decoded whole; its commands run IN ORDER, at once
 * (so a read after a write in the same pipeline sees the write). A command's
 * reply may be a promise (a write waits for the AOF): replies leave strictly
 * in command order, those ready together in one socket.write. A client waiting
 * on an fsync holds back only its own later replies; its later commands, and
 * every other client, run on. RESP clients share the AOF group commit with
 * HTTP clients: both go through `node.command`.
 *
 * Backpressure. A client with LIMITS.respPortMaxPendingReplies replies in
 * flight, or whose socket buffer is full, is not read until it drains.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { AofConfig } from '../aof/config.js';
import { AofqError } from '../errors/index.js';
import type { AofqNode } from '../node/node.js';
import { RespDecoder } from '../resp/decode.js';
import { RespWriter, writeValue } from '../resp/encode.js';
import { ErrorReply, OK, type RespValue } from '../resp/types.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import { type Logger, silentLogger } from '../util/logger.js';
import {
  allowedBeforeAuth,
  type ClientState,
  errorReply,
  executeServerCommand,
  hashTokens,
  NOT_SERVER_COMMAND,
  type RespServerState,
  type RespToken,
} from './resp-commands.js';

export type { RespToken } from './resp-commands.js';

export const DEFAULT_RESP_HOST = '127.0.0.1';
export const DEFAULT_RESP_PORT = 7379;

export interface RespPortOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 7379; 0 picks a free port (see `RespPort.port`). */
  port?: number;
  /** When given and not empty, every client must AUTH with one of them first. */
  tokens?: readonly (string | RespToken)[];
  /** Redis's maxclients. Default LIMITS.respPortMaxClients. */
  maxClients?: number;
  /** Redis's client-query-buffer-limit, in bytes. Default LIMITS.respPortQueryBufferBytes. */
  queryBufferLimit?: number;
  /** Redis's proto-max-bulk-len. Default LIMITS.respMaxBulkBytes (never above the query buffer limit). */
  maxBulkBytes?: number;
  logger?: Logger;
  /** aofq's version for INFO; default: package.json's. */
  version?: string;
  /** The node's AOF configuration, for CONFIG GET of dir, appendfilename, ... */
  aofConfig?: AofConfig;
  /** More directives for CONFIG GET (Redis names), from the server layer. */
  getConfig?: () => Readonly<Record<string, string>>;
  /** CONFIG SET of a directive the port does not own: return true when applied; throw AofqError to refuse. */
  setConfig?: (directive: string, value: string) => boolean;
}

export interface RespPort {
  /** The bound port. */
  readonly port: number;
  /** Stop accepting, close every connection, resolve once the server is closed. */
  close(): Promise<void>;
  /** Connected clients, those waiting for the node included. */
  clientCount(): number;
  /** maxclients now (CONFIG SET may change it). */
  readonly maxClients: number;
  /** client-query-buffer-limit now, bytes (CONFIG SET may change it). */
  readonly queryBufferLimit: number;
}

/** Bytes of a reply batch above which the shared writer is not reused (it would keep a big buffer). */
const WRITER_RETAIN_BYTES = 64 * 1024;
const OPS_SAMPLE_MS = 1000;
/** Replies are handed to the socket in pieces of about this size, so that a full socket stops the encoding. */
const OUTPUT_PIECE_BYTES = 256 * 1024;

function packageVersion(): string {
  try {
    const url = new URL('../../package.json', import.meta.url);
    const parsed = JSON.parse(readFileSync(url, 'utf8')) as { version?: unknown };
    return typeof parsed.version === 'string' ? parsed.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

interface PendingReply {
  value: RespValue | undefined;
  ready: boolean;
}

/** The state shared by all connections of one port. */
class PortContext {
  readonly state: RespServerState;
  /** One writer for all connections: every use fills it and empties it without yielding. */
  writer = new RespWriter(16 * 1024);
  private nextClientId = 1;

  constructor(state: RespServerState) {
    this.state = state;
  }

  clientId(): number {
    return this.nextClientId++;
  }

  private readonly flushQueue: Array<() => void> = [];
  private flushQueued = false;

  /**
   * Run `flush` once the replies settled in this wave of promise reactions are
   * all in: a group commit resolves every waiting command at once, and each
   * connection then writes its replies in one write, in this same turn (no
   * extra event-loop iteration, no timer per connection).
   */
  requestFlush(flush: () => void): void {
    this.flushQueue.push(flush);
    if (this.flushQueued) return;
    this.flushQueued = true;
    // nextTick, not queueMicrotask: it runs once the promise reactions queued now are done (so after
    // every settle of this wave), and Node wraps no async-hooks resource around it.
    process.nextTick(this.runFlushes);
  }

  private readonly runFlushes = (): void => {
    this.flushQueued = false;
    const queue = this.flushQueue.splice(0);
    for (const flush of queue) flush();
  };

  /** The writer's bytes, and a writer ready for the next use. */
  takeOutput(): Buffer {
    const writer = this.writer;
    if (writer.length <= WRITER_RETAIN_BYTES) {
      const bytes = writer.toBuffer();
      writer.reset();
      return bytes;
    }
    const bytes = writer.take();
    this.writer = new RespWriter(16 * 1024);
    return bytes;
  }
}

class RespConnection {
  private readonly decoder: RespDecoder;
  readonly client: ClientState;
  /** Replies not yet written, in command order, from index `head`. */
  private pending: PendingReply[] = [];
  private head = 0;
  private flushScheduled = false;
  /** Ready replies of earlier reads, already encoded, that go out with the next flush. */
  private held: Buffer[] = [];
  /** No more commands are read: QUIT, a protocol error, or a limit. The socket ends once replies are out. */
  private closing = false;
  private closed = false;
  private outputBlocked = false;
  private inputPaused = false;

  constructor(
    private readonly port: PortContext,
    private readonly socket: net.Socket,
    private readonly onClosed: (connection: RespConnection) => void,
  ) {
    const state = port.state;
    this.decoder = new RespDecoder({ inline: true, maxBulkBytes: state.maxBulkBytes });
    const now = Date.now();
    this.client = {
      id: port.clientId(),
      remoteAddress: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`,
      localAddress: `${socket.localAddress ?? '?'}:${socket.localPort ?? 0}`,
      connectedAtMs: now,
      lastCommandAtMs: now,
      lastCommand: 'NULL',
      name: '',
      libName: '',
      libVersion: '',
      authenticated: state.tokens.length === 0,
      user: 'default',
      role: null,
      lastWriteLsn: 0,
      onClose: new Set(),
      queryBufferBytes: () => this.decoder.buffered,
      outputBytes: () => this.socket.writableLength,
    };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.outputBlocked = false;
      this.guarded(() => {
        this.flush();
        this.resumeIfIdle();
      });
    });
    socket.on('error', (error) => {
      this.port.state.logger.debug(
        { client: this.client.id, err: error.message },
        'RESP client socket error',
      );
    });
    socket.on('close', () => this.onSocketClose());
  }

  private get pendingCount(): number {
    return this.pending.length - this.head;
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.port.state.stats.netInputBytes += chunk.length;
    this.decoder.push(chunk);
    this.guarded(() => this.drainInput());
  }

  /**
   * A bug met while serving this client (an assertion, a reply that cannot be
   * encoded) drops this connection, not the server: it is logged, the shared
   * writer is replaced (it may hold a partial reply) and the socket destroyed.
   */
  private guarded(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.port.state.logger.error(
        {
          client: this.client.id,
          err: error instanceof Error ? (error.stack ?? error.message) : String(error),
        },
        'RESP connection dropped after an internal error',
      );
      this.port.writer = new RespWriter(16 * 1024);
      this.held = [];
      this.socket.destroy();
    }
  }

  /** Run every complete command held, as far as backpressure allows, then write what is ready. */
  private drainInput(): void {
    assert(this.port.writer.length === 0, 'the shared writer is empty between uses');
    const maxPending = LIMITS.respPortMaxPendingReplies;
    while (!this.closing && !this.outputBlocked && this.pendingCount < maxPending) {
      let event: ReturnType<RespDecoder['nextCommand']>;
      try {
        event = this.decoder.nextCommand();
      } catch (error) {
        // Redis answers a protocol error and closes the connection.
        this.finish(errorReply(error, this.port.state.logger));
        break;
      }
      if (event === undefined) break;
      if (event.kind !== 'command' || event.argv.length === 0) continue;
      this.execute(event.argv);
      // Large direct replies (ECHO of a big argument, INFO, ...) go out as they grow.
      if (this.port.writer.length >= OUTPUT_PIECE_BYTES && this.pendingCount === 0) this.writeOut();
    }
    const limit = this.port.state.queryBufferLimit;
    if (!this.closing && this.decoder.buffered > limit) {
      this.port.state.logger.warn(
        { client: this.client.id, addr: this.client.remoteAddress, bytes: this.decoder.buffered, limit },
        'closing client that reached max query buffer length',
      );
      const reason = `query buffer of ${this.decoder.buffered} bytes is over client-query-buffer-limit (${limit} bytes)`;
      this.finish(new ErrorReply(new AofqError('AOFQ_ERR_RESP_LIMIT', { reason }).toResp()));
    }
    this.updateReading();
    if (this.pendingCount === 0) {
      this.flush();
    } else {
      // Some replies are promises: keep this read's ready replies, and write them together with
      // whatever else is ready by the end of this turn (reads settle within it).
      if (this.port.writer.length > 0) this.held.push(this.port.takeOutput());
      this.scheduleFlush();
    }
  }

  private execute(argv: Buffer[]): void {
    const state = this.port.state;
    const client = this.client;
    state.stats.totalCommands++;
    const name = argv[0]!.toString('latin1').toLowerCase();
    client.lastCommandAtMs = Date.now();
    client.lastCommand = name;
    if (name === 'quit') {
      this.finish(OK);
      return;
    }
    let reply: RespValue | Promise<RespValue>;
    try {
      if (!client.authenticated && !allowedBeforeAuth(name)) throw new AofqError('AOFQ_ERR_CMD_NOAUTH');
      const server = executeServerCommand(state, client, name, argv);
      reply = server === NOT_SERVER_COMMAND ? this.storeCommand(argv) : server;
    } catch (error) {
      reply = errorReply(error, state.logger);
    }
    this.reply(reply);
  }

  /** A key-value command through the node; remembers the LSN it appended for WAITAOF. */
  private storeCommand(argv: Buffer[]): Promise<RespValue> {
    const aof = this.port.state.node.aof;
    const before = aof.lastLsn;
    // node.command validates, applies and appends before it first awaits.
    const result = this.port.state.node.command(argv);
    const after = aof.lastLsn;
    if (after !== before) this.client.lastWriteLsn = after;
    return result;
  }

  private reply(reply: RespValue | Promise<RespValue>): void {
    if (reply instanceof Promise) {
      const slot: PendingReply = { value: undefined, ready: false };
      this.pending.push(slot);
      reply.then(
        (value) => this.settle(slot, value),
        (error: unknown) => this.settle(slot, errorReply(error, this.port.state.logger)),
      );
    } else if (this.pendingCount === 0) {
      // Nothing ahead of it: straight into this read's output.
      writeValue(this.port.writer, reply);
    } else {
      this.pending.push({ value: reply, ready: true });
    }
  }

  private settle(slot: PendingReply, value: RespValue): void {
    slot.value = value;
    slot.ready = true;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.closed || this.flushScheduled) return;
    this.flushScheduled = true;
    // Replies settled together (a group commit wakes many) leave in one write.
    this.port.requestFlush(this.scheduledFlush);
  }

  private readonly scheduledFlush = (): void => {
    this.flushScheduled = false;
    if (this.closed) return;
    this.guarded(() => {
      this.flush();
      this.resumeIfIdle();
    });
  };

  /**
   * Write the shared writer's bytes, then the ready replies at the head of the
   * queue, in pieces of at most about OUTPUT_PIECE_BYTES; stop encoding while
   * the socket's buffer is full (the rest waits for 'drain', as references).
   */
  private flush(): void {
    while (this.head < this.pending.length && !this.outputBlocked && !this.closed) {
      const slot = this.pending[this.head]!;
      if (!slot.ready) break;
      // Not cached in a local: writeOut may hand the port a fresh writer.
      const writer = this.port.writer;
      writeValue(writer, slot.value as RespValue);
      this.pending[this.head] = undefined as unknown as PendingReply;
      this.head++;
      if (writer.length >= OUTPUT_PIECE_BYTES) this.writeOut();
    }
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    this.writeOut();
    if (this.closing && this.pendingCount === 0 && !this.closed) endGracefully(this.socket);
  }

  /** Send the held pieces and the shared writer's bytes, in one writev. Empties the shared writer. */
  private writeOut(): void {
    const writer = this.port.writer;
    if (writer.length === 0 && this.held.length === 0) return;
    const bytes = writer.length > 0 ? this.port.takeOutput() : undefined;
    const held = this.held;
    this.held = [];
    if (this.closed) return;
    let flowing = true;
    if (held.length === 0) {
      flowing = this.write(bytes as Buffer);
    } else {
      this.socket.cork();
      for (const piece of held) flowing = this.write(piece) && flowing;
      if (bytes !== undefined) flowing = this.write(bytes) && flowing;
      this.socket.uncork();
    }
    if (!flowing && !this.outputBlocked) {
      this.outputBlocked = true;
      this.updateReading();
    }
  }

  private write(bytes: Buffer): boolean {
    this.port.state.stats.netOutputBytes += bytes.length;
    return this.socket.write(bytes);
  }

  /** After a flush or a drain: read and run what was held back. */
  private resumeIfIdle(): void {
    if (this.closed || this.closing || this.outputBlocked) return;
    if (this.pendingCount * 2 > LIMITS.respPortMaxPendingReplies) return;
    if (this.decoder.buffered > 0) this.drainInput();
    else this.updateReading();
  }

  private updateReading(): void {
    // A closing connection keeps reading (and dropping) input: closing a socket with unread
    // input makes the kernel send RST, which can destroy the last reply before the client reads it.
    const pause =
      !this.closing && (this.outputBlocked || this.pendingCount >= LIMITS.respPortMaxPendingReplies);
    if (pause && !this.inputPaused) {
      this.inputPaused = true;
      this.socket.pause();
    } else if (!pause && this.inputPaused) {
      this.inputPaused = false;
      this.socket.resume();
    }
  }

  /** The last reply of this connection: read nothing more, end the socket once the replies are out. */
  private finish(last: RespValue): void {
    this.reply(last);
    this.closing = true;
    this.updateReading();
  }

  /** Refuse the connection right away (maxclients). */
  static refuse(socket: net.Socket, error: AofqError): void {
    socket.on('error', () => {});
    socket.write(`-${error.toResp()}\r\n`);
    socket.resume();
    endGracefully(socket);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onSocketClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.head = 0;
    this.held = [];
    for (const callback of [...this.client.onClose]) callback();
    this.client.onClose.clear();
    this.onClosed(this);
  }
}

/** How long a closed connection's peer has to read the last reply and close its side. */
const CLOSE_GRACE_MS = 2000;

/** End the socket after what was written, and destroy it if the peer does not close within the grace. */
function endGracefully(socket: net.Socket): void {
  if (socket.writableEnded) return;
  socket.end();
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * Start the RESP port in front of `node`. `node` may be a promise (the AOF is
 * still loading): the port listens at once, as Redis does, so that a bind
 * failure shows before a long load; clients that connect meanwhile are held,
 * unread, and served once the node is there (destroyed if it fails to open).
 */
export async function startRespPort(
  node: AofqNode | Promise<AofqNode>,
  options: RespPortOptions = {},
): Promise<RespPort> {
  const host = options.host ?? DEFAULT_RESP_HOST;
  const queryBufferLimit = options.queryBufferLimit ?? LIMITS.respPortQueryBufferBytes;
  assert(
    Number.isSafeInteger(queryBufferLimit) && queryBufferLimit > LIMITS.respMaxLineBytes,
    'query buffer limit',
  );
  const maxBulkBytes = Math.min(options.maxBulkBytes ?? LIMITS.respMaxBulkBytes, queryBufferLimit);
  const maxClients = options.maxClients ?? LIMITS.respPortMaxClients;
  assert(Number.isSafeInteger(maxClients) && maxClients >= 1, 'maxclients');
  const logger = options.logger ?? silentLogger;
  let ready: AofqNode | null = node instanceof Promise ? null : node;
  const state: RespServerState = {
    get node(): AofqNode {
      assert(ready !== null, 'RESP commands run once the node is there');
      return ready;
    },
    logger,
    version: options.version ?? packageVersion(),
    runId: randomBytes(20).toString('hex'),
    host,
    port: options.port ?? DEFAULT_RESP_PORT,
    maxClients,
    queryBufferLimit,
    maxBulkBytes,
    clients: new Map(),
    stats: {
      totalConnections: 0,
      rejectedConnections: 0,
      totalCommands: 0,
      netInputBytes: 0,
      netOutputBytes: 0,
      opsPerSecond: 0,
    },
    blockedClients: 0,
    aofConfig: options.aofConfig,
    getConfig: options.getConfig,
    setConfig: options.setConfig,
    tokens: hashTokens(options.tokens ?? []),
  };
  const context = new PortContext(state);
  const connections = new Set<RespConnection>();
  /** Sockets refused over maxclients, until they close. */
  const refused = new Set<net.Socket>();
  /** Sockets accepted before the node was there: paused, served once it is. */
  const held = new Set<net.Socket>();

  const serve = (socket: net.Socket): void => {
    const connection = new RespConnection(context, socket, (closed) => {
      connections.delete(closed);
      state.clients.delete(closed.client.id);
    });
    connections.add(connection);
    state.clients.set(connection.client.id, connection.client);
  };
  const server = net.createServer((socket) => {
    state.stats.totalConnections++;
    if (connections.size + held.size >= state.maxClients) {
      state.stats.rejectedConnections++;
      refused.add(socket);
      socket.once('close', () => refused.delete(socket));
      RespConnection.refuse(socket, new AofqError('AOFQ_ERR_RESP_MAX_CLIENTS'));
      return;
    }
    if (ready !== null) {
      serve(socket);
      return;
    }
    socket.pause();
    socket.on('error', () => {});
    held.add(socket);
    socket.once('close', () => held.delete(socket));
  });
  if (node instanceof Promise) {
    node.then(
      (opened) => {
        ready = opened;
        for (const socket of [...held]) {
          held.delete(socket);
          if (socket.destroyed) continue;
          serve(socket);
          socket.resume();
        }
      },
      () => {
        for (const socket of [...held]) socket.destroy();
      },
    );
  }

  let lastTotal = 0;
  const sampler = setInterval(() => {
    const total = state.stats.totalCommands;
    state.stats.opsPerSecond = Math.max(0, Math.round(((total - lastTotal) * 1000) / OPS_SAMPLE_MS));
    lastTotal = total;
  }, OPS_SAMPLE_MS);
  sampler.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(state.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => logger.error({ err: error.message }, 'RESP port error'));
  const address = server.address();
  assert(address !== null && typeof address === 'object', 'a TCP server has an address');
  state.port = address.port;
  logger.info({ host, port: state.port }, 'RESP port listening');

  let closing: Promise<void> | undefined;
  return {
    port: state.port,
    clientCount: () => connections.size + held.size,
    get maxClients() {
      return state.maxClients;
    },
    get queryBufferLimit() {
      return state.queryBufferLimit;
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(sampler);
        server.close(() => resolve());
        for (const connection of [...connections]) connection.destroy();
        for (const socket of [...refused]) socket.destroy();
        for (const socket of [...held]) socket.destroy();
      });
      return closing;
    },
  };
}
