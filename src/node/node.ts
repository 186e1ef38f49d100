/**
 * The node: one AOF engine wired to the two state machines, the key-value
 * store and the queues. It owns the one command path of aofq:
 *
 *   validate → apply → append to AOF → wait for the durability asked for → reply
 *
 * and the leader's timers (lease expiry, delayed promotion, active key
 * expiry), each of which produces ordinary logged records. On open it replays
 * the AOF into the state machines; replay never reads a clock.
 *
 * What a reply promises (docs/ARCHITECTURE.md, README):
 *  - every reply to a write leaves only after its records were written to the
 *    AOF file (so a crash of the process alone loses nothing that was answered);
 *  - under `appendfsync always`, and for queues with `durability: fsync` (or
 *    `replicated`, until followers exist), only after they were fdatasync'ed;
 *  - reads see the latest applied state, which another client's write may not
 *    have made durable yet (as in Redis).
 */
import { createHash } from 'node:crypto';
import type { AofConfig } from '../aof/config.js';
import { AofEngine } from '../aof/engine.js';
import type { FsLayer } from '../aof/fs.js';
import type { LoadSink } from '../aof/loader.js';
import type { RewriteStatus, Snapshotter } from '../aof/rewrite.js';
import { AofqError } from '../errors/index.js';
import {
  type QueueEvent,
  type QueueRequest,
  type QueueResult,
  Queues,
  type RecordSink,
} from '../queue/index.js';
import type { RespValue } from '../resp/types.js';
import { Store } from '../store/index.js';
import { assert } from '../util/assert.js';
import { type Clock, systemClock } from '../util/clock.js';
import { type Logger, silentLogger } from '../util/logger.js';
import type { ApplyContext, LeaderRecord } from '../util/state.js';
import { replaySink } from './replay-sink.js';
import { RewriteHelper } from './rewrite-child.js';

export type Durability = 'default' | 'fsync' | 'replicated';

export interface NodeOptions {
  fs?: FsLayer;
  logger?: Logger;
  clock?: Clock;
  /** Keys examined per active-expiry cycle (10 cycles a second). */
  activeExpireKeys?: number;
  /** Called for every queue event applied on this node, live (not during load). */
  onQueueEvent?: (queue: string, event: QueueEvent) => void;
  /** Produces AOF rewrite bases; default: the node's rewrite helper process (rewrite-child.ts). Tests inject faults here. */
  snapshotter?: Snapshotter;
  /** How often the AOF engine checks for an automatic rewrite; default 1000 ms. */
  rewriteCronMs?: number;
  /** The AOF load's progress: bytes read of all files, and their total (for /readyz). */
  onLoadProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Called after every successful fdatasync of the AOF with its latency in µs (metrics). */
  onFsync?: (latencyUs: number) => void;
}

/** What BGREWRITEAOF (RESP or HTTP) answers: Redis's words. */
export interface RewriteReply {
  status: RewriteStatus;
  message: string;
}

const ACTIVE_EXPIRE_INTERVAL_MS = 100;
/** Node's setTimeout takes at most a signed 32-bit delay. */
const MAX_TIMER_MS = 2_147_483_647;

type Waiter = () => void;
export type QueueEventListener = (queue: string, event: QueueEvent) => void;
/** Sees every queue request the node applied, with its result (metrics count enqueues, acks, nacks). */
export type QueueRequestListener = (request: QueueRequest, result: unknown) => void;

/** Appends each record the queues push, as they push it; remembers the last LSN (0: none yet). */
class AppendSink implements RecordSink {
  lsn = 0;
  constructor(private readonly aof: AofEngine) {}
  push(record: LeaderRecord): void {
    this.lsn = this.aof.append(record);
  }
}

export class AofqNode {
  readonly store: Store;
  readonly queues: Queues;
  readonly aof: AofEngine;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly queueWaiters = new Map<string, Set<Waiter>>();
  private readonly eventListeners = new Set<QueueEventListener>();
  private readonly requestListeners = new Set<QueueRequestListener>();
  private deadlineTimer: NodeJS.Timeout | null = null;
  private deadlineAt = Number.POSITIVE_INFINITY;
  private expireTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private live = false;
  /** NodeOptions.onQueueEvent. */
  private forwardEvent: ((queue: string, event: QueueEvent) => void) | undefined;
  private readonly eventHook = (queue: string, event: QueueEvent): void =>
    this.dispatchQueueEvent(queue, event);
  /** See context(): the time read for the current burst, or -1. */
  private cachedNowMs = -1;
  private burstEndScheduled = false;
  /** A write of this burst may have moved the queues' earliest deadline. */
  private deadlineStale = false;
  private readonly cachesTime: boolean;
  /** Where queue requests log their records (reused: one request at a time). */
  private readonly queueSink: AppendSink;
  /** The rewrite helper process, when the default snapshotter is used. */
  readonly rewriteHelper: RewriteHelper | null;

  private constructor(
    store: Store,
    queues: Queues,
    aof: AofEngine,
    clock: Clock,
    logger: Logger,
    rewriteHelper: RewriteHelper | null,
    cachesTime: boolean,
  ) {
    this.cachesTime = cachesTime;
    this.rewriteHelper = rewriteHelper;
    this.store = store;
    this.queues = queues;
    this.aof = aof;
    this.queueSink = new AppendSink(aof);
    this.clock = clock;
    this.logger = logger;
  }

  static async open(cfg: AofConfig, options: NodeOptions = {}): Promise<AofqNode> {
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? silentLogger;
    const store = new Store();
    // No event hook during the load: replayed records build no events (refreshEventHook).
    let node: AofqNode | null = null;
    const queues = new Queues();
    const replay = replaySink(store, queues);
    const onLoadProgress = options.onLoadProgress;
    const sink: LoadSink = {
      record: (argv) => replay.record(argv),
      ...(onLoadProgress !== undefined ? { progress: onLoadProgress } : {}),
    };
    // Started before the load, while this process is small: spawning forks it (rewrite-child.ts).
    const helper = options.snapshotter === undefined ? RewriteHelper.start(logger) : null;
    const snapshotter = options.snapshotter ?? helper?.snapshotter;
    assert(snapshotter !== undefined, 'no snapshotter');
    let aof: AofEngine;
    try {
      aof = await AofEngine.open(
        cfg,
        {
          fs: options.fs,
          logger,
          clock,
          snapshotter,
          onFsync: options.onFsync,
          ...(options.rewriteCronMs !== undefined ? { rewriteCronMs: options.rewriteCronMs } : {}),
        },
        sink,
      );
    } catch (err) {
      await helper?.close();
      throw err;
    }
    node = new AofqNode(store, queues, aof, clock, logger, helper, options.clock === undefined);
    node.live = true;
    node.forwardEvent = options.onQueueEvent;
    node.refreshEventHook();
    node.startTimers(options.activeExpireKeys ?? 20);
    logger.info({ lastLsn: aof.lastLsn, keys: store.size }, 'aofq node ready');
    return node;
  }

  /**
   * The leader's time for a command. With the system clock it is read once per burst of work
   * and reused until the burst's microtasks have run, as Redis caches its time per event-loop
   * iteration: a reply's continuation issues the next command in the same burst, so a turn that
   * answers 50 clients reads the clock once, not 50 times (a read costs 90-150 ns here, 3-4 %
   * of the queue cycle). The time is at most one burst old, and every command of a burst sees
   * the same millisecond. An injected clock (tests) is read for every command.
   */
  private context(): ApplyContext {
    if (!this.cachesTime) return { nowMs: this.clock.nowMs() };
    let nowMs = this.cachedNowMs;
    if (nowMs < 0) {
      nowMs = this.clock.nowMs();
      this.cachedNowMs = nowMs;
      this.scheduleBurstEnd();
    }
    return { nowMs };
  }

  /** One microtask per burst of work ends it: the cached time is forgotten, and the deadline timer re-armed. */
  private scheduleBurstEnd(): void {
    if (this.burstEndScheduled) return;
    this.burstEndScheduled = true;
    queueMicrotask(this.endBurst);
  }

  private readonly endBurst = (): void => {
    this.burstEndScheduled = false;
    this.cachedNowMs = -1;
    if (this.deadlineStale) {
      this.deadlineStale = false;
      this.armDeadline();
    }
  };

  /** Writes are refused before they are applied while the AOF cannot write. */
  private checkWritable(): void {
    if (this.closed) throw new AofqError('AOFQ_ERR_SERVER_SHUTTING_DOWN');
    if (!this.aof.writable) {
      throw new AofqError('AOFQ_ERR_AOF_WRITE_FAILED', {
        reason: String(this.aof.info().aof_last_write_status),
      });
    }
  }

  private appendAll(records: readonly LeaderRecord[]): number {
    let last = 0;
    for (const record of records) last = this.aof.append(record);
    return last;
  }

  /**
   * What to wait for before the reply to a command whose last record is `lsn`
   * (see the module comment), or null when nothing was logged. `queue` names the
   * queue of a queue request (its durability is looked up only when records were
   * logged), null for a key-value command. The promise is the writer's, shared by
   * every command of the batch.
   */
  private durabilityWait(lsn: number, queue: string | null): Promise<void> | null {
    if (lsn === 0) return null;
    if (this.aof.appendFsync === 'always') return this.aof.waitDurable(lsn);
    // An fsync queue under everysec or no asks for an fdatasync now; the
    // writers of one turn share it (group commit).
    if (queue !== null && this.queues.durabilityOf(queue) !== 'default') return this.aof.sync();
    return this.aof.waitWritten(lsn);
  }

  /** One key-value command (argv as a Redis client sends it). Errors reject with AofqError. */
  command(argv: readonly Buffer[]): Promise<RespValue> {
    let reply: RespValue;
    let lsn: number;
    try {
      const name = argv[0]?.toString('latin1').toLowerCase() ?? '';
      if (this.store.isWriteCommand(name)) this.checkWritable();
      else if (this.closed) throw new AofqError('AOFQ_ERR_SERVER_SHUTTING_DOWN');
      const executed = this.store.execute(argv, this.context());
      reply = executed.reply;
      // A read may still log records: the DEL of a key that it found expired.
      lsn = this.appendAll(executed.records);
    } catch (err) {
      return Promise.reject(err);
    }
    const wait = this.durabilityWait(lsn, null);
    return wait === null ? Promise.resolve(reply) : wait.then(() => reply);
  }

  /**
   * One queue operation. Not an async function: the hot path makes one
   * promise per request (the `then` on the batch's shared wait), not three.
   */
  queue<R extends QueueRequest>(request: R): Promise<QueueResult<R>> {
    let result: QueueResult<R>;
    let lsn: number;
    try {
      if (this.queues.isWrite(request)) this.checkWritable();
      else if (this.closed) throw new AofqError('AOFQ_ERR_SERVER_SHUTTING_DOWN');
      const sink = this.queueSink;
      sink.lsn = 0;
      result = this.queues.executeInto(request, this.context(), sink);
      lsn = sink.lsn;
      if (this.requestListeners.size > 0)
        for (const listener of this.requestListeners) listener(request, result);
    } catch (err) {
      return Promise.reject(err);
    }
    // Deadlines move only when records are applied. The timer is re-armed once per burst, at its
    // end (2.4 % of the queue cycle when it ran after every write): at most one burst late.
    if (lsn > 0) {
      this.deadlineStale = true;
      this.scheduleBurstEnd();
    }
    const wait = this.durabilityWait(lsn, request.queue);
    return wait === null ? Promise.resolve(result) : wait.then(() => result);
  }

  /**
   * A lease that waits up to `waitMs` for a job (a long poll). It is answered
   * as soon as a job becomes available, without polling: queue events wake it.
   */
  async leaseWait(
    request: Extract<QueueRequest, { op: 'lease' }>,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<QueueResult<Extract<QueueRequest, { op: 'lease' }>>> {
    const deadline = this.clock.nowMs() + waitMs;
    for (;;) {
      const result = await this.queue(request);
      if (result.jobs.length > 0 || waitMs <= 0) return result;
      const left = deadline - this.clock.nowMs();
      if (left <= 0 || signal?.aborted || this.closed) return result;
      const woken = await this.waitForQueue(request.queue, left, signal);
      if (!woken) return this.queue(request);
    }
  }

  /** Resolves true when the queue may have a job, false on timeout or abort. */
  private waitForQueue(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      let set = this.queueWaiters.get(queue);
      if (!set) {
        set = new Set();
        this.queueWaiters.set(queue, set);
        this.refreshEventHook();
      }
      const waiters = set;
      const finish = (woken: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        waiters.delete(wake);
        if (waiters.size === 0 && this.queueWaiters.get(queue) === waiters) {
          this.queueWaiters.delete(queue);
          this.refreshEventHook();
        }
        resolve(woken);
      };
      const wake: Waiter = () => finish(true);
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(false), Math.min(timeoutMs, MAX_TIMER_MS));
      signal?.addEventListener('abort', onAbort, { once: true });
      waiters.add(wake);
    });
  }

  /**
   * The queues build events only while someone takes them: a listener, a long poll, or
   * NodeOptions.onQueueEvent (the server always has its metrics). Called whenever one of those
   * comes or goes, and once the load is over.
   */
  private refreshEventHook(): void {
    const wanted =
      this.live &&
      (this.forwardEvent !== undefined || this.eventListeners.size > 0 || this.queueWaiters.size > 0);
    this.queues.setEventHook(wanted ? this.eventHook : undefined);
  }

  private dispatchQueueEvent(queue: string, event: QueueEvent): void {
    if (this.queueWaiters.size > 0 && WAKING_EVENTS.has(event.event)) {
      const waiters = this.queueWaiters.get(queue);
      // Wake one waiter per event; a woken waiter that finds nothing waits again.
      if (waiters)
        for (const wake of waiters) {
          wake();
          break;
        }
    }
    this.forwardEvent?.(queue, event);
    if (this.eventListeners.size > 0) for (const listener of this.eventListeners) listener(queue, event);
  }

  /** A rate-limit window reopened: every long poll on the queue tries again (those that find nothing wait again). */
  private wakeAll(queue: string): void {
    const waiters = this.queueWaiters.get(queue);
    if (waiters) for (const wake of [...waiters]) wake();
  }

  /**
   * Listen to every queue event applied live on this node (not those replayed
   * at load). Listeners run synchronously inside apply: they must not throw
   * and must not issue commands synchronously. Returns the unsubscribe function.
   */
  onQueueEvent(listener: QueueEventListener): () => void {
    this.eventListeners.add(listener);
    this.refreshEventHook();
    return () => {
      this.eventListeners.delete(listener);
      this.refreshEventHook();
    };
  }

  /**
   * Listen to every queue request applied on this node (reads included), with
   * its result, synchronously after apply and append. Listeners must not throw
   * and must be cheap: they run on every request. Returns the unsubscribe function.
   */
  onQueueRequest(listener: QueueRequestListener): () => void {
    this.requestListeners.add(listener);
    return () => {
      this.requestListeners.delete(listener);
    };
  }

  private startTimers(activeExpireKeys: number): void {
    this.expireTimer = setInterval(() => this.activeExpire(activeExpireKeys), ACTIVE_EXPIRE_INTERVAL_MS);
    this.expireTimer.unref();
    this.armDeadline();
  }

  private activeExpire(maxKeys: number): void {
    if (this.closed || !this.aof.writable) return;
    const records = this.store.activeExpireCycle(this.context(), maxKeys);
    this.appendAll(records);
  }

  /** Keep one timer at the queues' earliest deadline (lease expiry, delayed job, limiter window). */
  private armDeadline(): void {
    if (this.closed) return;
    const next = this.queues.nextDeadline();
    if (next === null) return;
    if (this.deadlineTimer !== null && next >= this.deadlineAt) return;
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineAt = next;
    const delay = Math.min(Math.max(0, next - this.clock.nowMs()), MAX_TIMER_MS);
    this.deadlineTimer = setTimeout(() => this.onDeadline(), delay);
    this.deadlineTimer.unref();
  }

  private onDeadline(): void {
    this.deadlineTimer = null;
    this.deadlineAt = Number.POSITIVE_INFINITY;
    if (this.closed) return;
    if (this.aof.writable) {
      const { records, reopened } = this.queues.tick(this.context());
      this.appendAll(records);
      this.armDeadline();
      for (const queue of reopened) this.wakeAll(queue);
    } else {
      // The disk refuses writes: try again once the engine has had a chance to recover.
      this.deadlineTimer = setTimeout(() => this.onDeadline(), 1000);
      this.deadlineTimer.unref();
    }
  }

  /** Run the queue timers now (tests drive a ManualClock and call this). */
  tick(): number {
    assert(!this.closed, 'tick after close');
    const { records, reopened } = this.queues.tick(this.context());
    const lsn = this.appendAll(records);
    this.armDeadline();
    for (const queue of reopened) this.wakeAll(queue);
    return lsn;
  }

  /**
   * BGREWRITEAOF: start an AOF rewrite in the background. Resolves with
   * Redis's reply (`started`, or `scheduled` while loading). Throws AofqError:
   * AOFQ_ERR_AOF_REWRITE_IN_PROGRESS, AOFQ_ERR_AOF_NO_SPACE,
   * AOFQ_ERR_AOF_REWRITE_UNAVAILABLE (appendonly no), AOFQ_ERR_SERVER_SHUTTING_DOWN.
   */
  async rewrite(): Promise<RewriteReply> {
    if (this.closed) throw new AofqError('AOFQ_ERR_SERVER_SHUTTING_DOWN');
    const { status, message } = await this.aof.rewrite();
    return { status, message };
  }

  /** Resolves when the running rewrite ends: true if it installed a new base. */
  waitRewrite(): Promise<boolean> {
    return this.aof.waitRewrite();
  }

  /** A digest of the whole state (store and queues), hex. */
  digest(): string {
    const hash = createHash('sha256');
    this.store.digest(hash);
    this.queues.digest(hash);
    return hash.digest('hex');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    if (this.expireTimer !== null) clearInterval(this.expireTimer);
    for (const waiters of this.queueWaiters.values()) for (const wake of [...waiters]) wake();
    try {
      await this.aof.close();
    } finally {
      await this.rewriteHelper?.close();
    }
  }
}

/** Events after which a long-polling consumer may find a job. */
const WAKING_EVENTS = new Set(['added', 'waiting', 'resumed', 'stalled', 'prioritized']);
