/**
 * The job-queue state machine: every queue, every job, and the operations on
 * them. `execute` is the leader's path: validate (throw, no state change),
 * decide times, ids, tokens and jitter from ctx.nowMs, build records, apply
 * them. `replay` applies one record with the same apply code. `tick` runs the
 * leader's timers (lease expiry, delayed promotion). Pure in-memory state: no
 * clocks, no I/O; apply reads only its record.
 */
import type { Hash } from 'node:crypto';
import { AofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import type { ApplyContext, Record, RecordArg, Snapshottable, StateMachine } from '../util/state.js';
import {
  buildRecord,
  COMMANDS,
  type Command,
  commandBytes,
  hasLoneSurrogate,
  isCommand,
  RecordReader,
} from './codec.js';
import {
  allDigits,
  checkDeadLetter,
  Interner,
  Job,
  JobOptions,
  type SetKey,
  STACKTRACE_LIMIT,
  STATE_NAMES,
  StateCode,
  stateCode,
} from './job.js';
import { JobSet } from './job-set.js';
import { type DeadlineEntry, QueueState } from './queue-state.js';
import { QueueTable } from './queue-table.js';
import { decodeQueueChunk, encodeQueueChunks, type SnapshotItem } from './snapshot.js';
import type {
  BackoffOptions,
  Durability,
  JobJson,
  JobState,
  LeasedJob,
  QueueConfig,
  QueueEvent,
  QueueRequest,
  QueueResult,
  ResultMap,
  Retention,
} from './types.js';
import {
  checkCount,
  checkDelay,
  checkFlag,
  checkJobName,
  checkJobsOptions,
  checkLeaseMs,
  checkQueueConfig,
  checkQueueName,
  checkToken,
  isPlainObject,
  leaseInvalid,
  overBytes,
  QUEUE_CONFIG_DEFAULTS,
  requestInvalid,
  toJsonText,
} from './validate.js';

export interface QueuesOptions {
  /** Called from apply, so also on replay: the caller decides whether to forward. */
  onEvent?: (queue: string, event: QueueEvent) => void;
  /** The leader's source of randomness for backoff jitter (tests pass a seeded one). */
  random?: () => number;
}

export interface Executed<R extends QueueRequest> {
  result: QueueResult<R>;
  records: RecordArg[][];
}

/**
 * Where the leader's records go, in order, each right after it is applied: an array (execute),
 * or the node's appender, which hands each to the AOF at once (executeInto).
 */
export interface RecordSink {
  push(record: RecordArg[]): unknown;
}

/** Failure texts (failedReason, one stack trace, a consumer name) are capped. */
const TEXT_MAX_BYTES = 64 * 1024;
const CONSUMER_MAX_BYTES = 256;
const EXPIRED_REASON = 'job stalled: its lease expired';

/** '0' to '999', and '000' to '999': an id is the text of its thousands and three digits more. */
const ID_SMALL: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i));
const ID_LOW: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
/** The last thousands part made, and its text: a queue's next thousand ids share it. */
let idHigh = -1;
let idHighText = '';

/**
 * A server-assigned id's text. Not String(n): V8 keeps the text of recent numbers in a cache
 * that lives in the old generation, so every id made by String() survives its first scavenge
 * and is promoted; on the queue cycle that cost 0.8 ms a scavenge (one every 3,000 cycles).
 * Joining two short texts makes a fresh flat string (below 13 characters V8 copies, it does not
 * link), outside that cache. Ids of twelve digits and more, after 10^11 jobs in one queue, take
 * String().
 */
export function autoIdText(n: number): string {
  assert(Number.isSafeInteger(n) && n >= 1, 'an auto id is a positive integer');
  if (n < 1000) return ID_SMALL[n] as string;
  if (n >= 100_000_000_000) return String(n);
  const high = Math.floor(n / 1000);
  if (high !== idHigh) {
    const text = autoIdText(high);
    idHigh = high;
    idHighText = text;
  }
  return idHighText + (ID_LOW[n - high * 1000] as string);
}
const QUEUE_NAME = /^[A-Za-z0-9._:-]{1,128}$/;
/** A Q.ADD record holds, per job: id, name, opts, data, timestamp (after the queue name and the count). */
const ADD_ARGS_PER_JOB = 5;
/** The hot paths' command Buffers, looked up once (commitRecord's callers put them first). */
const Q_ADD = commandBytes('Q.ADD');
const Q_LEASE = commandBytes('Q.LEASE');
const Q_ACK = commandBytes('Q.ACK');
type Outcome = 'retry' | 'fail' | 'dead';

/** BullMQ's built-in backoff: fixed = delay; exponential = delay * 2^(attemptsMade-1); jitter picks in [d*(1-j), d]. */
export function backoffDelay(
  backoff: BackoffOptions | null,
  attemptsMade: number,
  random: () => number,
): number {
  if (backoff === null) return 0;
  const base = backoff.delay ?? 0;
  let delay = backoff.type === 'exponential' ? Math.round(2 ** Math.max(0, attemptsMade - 1) * base) : base;
  delay = Math.min(delay, LIMITS.delayMsMax);
  const jitter = backoff.jitter ?? 0;
  if (jitter > 0) delay = Math.floor(random() * delay * jitter + delay * (1 - jitter));
  return Math.max(0, Math.min(delay, LIMITS.delayMsMax));
}

export class Queues implements StateMachine, Snapshottable {
  private readonly queues = new QueueTable();
  /** One entry per queue that has a deadline, earliest first (nextDeadline), and the queues to look at again. */
  private readonly deadlines = new JobSet();
  // A count, not length = 0: emptying an array by its length frees its store, and the next push allocates.
  private readonly dirtyQueues: Array<QueueState | undefined> = [];
  private dirtyCount = 0;
  private readonly markDirty = (queue: QueueState): void => {
    this.dirtyQueues[this.dirtyCount++] = queue;
  };
  private queueOrdinal = 0;
  private readonly names = new Interner<string>((name) => name, 10_000);
  private readonly optionTable = new Interner<JobOptions>((json) => new JobOptions(json), 4096);
  /**
   * Where events go; undefined while nobody listens, and then apply builds none: every site
   * checks it before it builds the event (an event is an object, and a queue cycle makes five).
   * Not `this.eventHook?.(queue, {...})`: on Node 20 that costs 1.5 % more of the core cycle
   * (17,727 against 17,478 instructions, npm run bench:instructions).
   */
  private eventHook: ((queue: string, event: QueueEvent) => void) | undefined;
  private readonly random: () => number;
  /** True while the leader applies a record it has just built (see commit). */
  private trusted = false;

  constructor(options: QueuesOptions = {}) {
    this.eventHook = options.onEvent;
    this.random = options.random ?? Math.random;
  }

  // ---------------------------------------------------------------- StateMachine

  owns(name: string): boolean {
    return isCommand(name.toUpperCase());
  }

  replay(record: Record): void {
    this.apply(RecordReader.fromRecord(record), false);
  }

  digest(hash: Hash): void {
    for (const name of [...this.queues.keys()].sort()) {
      const queue = this.queues.get(name) as QueueState;
      hash.update(
        `queue ${name}\n${JSON.stringify(queue.config)}\n${JSON.stringify(queueCounters(queue))}\n`,
      );
      for (const set of queue.sets) {
        for (const key of set.keys()) {
          const job = key as Job;
          hash.update(
            `${JSON.stringify([job.id, job.customId, job.name, job.opts.json, job.data, job.mutableFields()])}\n`,
          );
        }
      }
    }
  }

  // ---------------------------------------------------------------- node layer API

  /** Does this request possibly log records? (Reads never do; a lease may log timer records.) */
  isWrite(request: QueueRequest): boolean {
    // A switch, not a Set: the node asks this of every request, and a Set's hash lookup cost more.
    switch (request.op) {
      case 'getJob':
      case 'listJobs':
      case 'getJobCounts':
      case 'getConfig':
        return false;
      default:
        return true;
    }
  }

  /** Names of the queues that exist, sorted. */
  listQueues(): string[] {
    return [...this.queues.keys()].sort();
  }

  durabilityOf(queue: string): Durability {
    return this.queues.get(queue)?.config.durability ?? 'default';
  }

  /**
   * The earliest time a timer is due over all queues (a lease expiry, a
   * delayed job's due time, or the reopening of a full rate-limit window that
   * no tick has reported yet), or null. The index holds one entry per queue
   * with a deadline; only the queues changed since the last call are looked
   * at again, so a write costs O(log queues), not a scan of every queue.
   */
  nextDeadline(): number | null {
    this.refreshDeadlines();
    return (this.deadlines.minKey() as DeadlineEntry | undefined)?.sortKey ?? null;
  }

  /** Checks the deadline index against a scan of every queue (tests; O(queues)). */
  verifyDeadlines(): void {
    let earliest: number | null = null;
    for (const queue of this.queues.values()) {
      const at = queueDeadline(queue);
      if (at !== null && (earliest === null || at < earliest)) earliest = at;
    }
    assert(this.nextDeadline() === earliest, 'the deadline index agrees with a scan of every queue');
  }

  private refreshDeadlines(): void {
    const dirty = this.dirtyQueues;
    for (let i = 0; i < this.dirtyCount; i++) {
      const queue = dirty[i] as QueueState;
      dirty[i] = undefined;
      queue.deadlineDirty = false;
      // An obliterated queue (or one replaced under the same name) leaves the index.
      const at = this.queues.get(queue.name) === queue ? queueDeadline(queue) : null;
      const entry = queue.deadlineEntry;
      if (entry !== null && entry.sortKey === at) continue;
      if (entry !== null) this.deadlines.delete(entry);
      queue.deadlineEntry = null;
      if (at === null) continue;
      const fresh: DeadlineEntry = { sortKey: at, order: queue.ordinal, queue };
      this.deadlines.add(fresh);
      queue.deadlineEntry = fresh;
    }
    this.dirtyCount = 0;
  }

  /**
   * Leader timers, for the queues whose deadline has come: expires due leases
   * (one record each) and promotes due delayed jobs. `reopened` names the
   * queues whose full rate-limit window has just reopened: the node wakes
   * their long-polling consumers.
   */
  tick(ctx: ApplyContext): { records: RecordArg[][]; reopened: string[] } {
    const records: RecordArg[][] = [];
    const reopened: string[] = [];
    const nowMs = ctx.nowMs;
    this.refreshDeadlines();
    const due: QueueState[] = [];
    for (const key of this.deadlines.keys()) {
      const entry = key as DeadlineEntry;
      if (entry.sortKey > nowMs) break;
      due.push(entry.queue);
    }
    for (const queue of due) {
      queue.markDirty();
      const reopensAt = limiterReopening(queue);
      if (reopensAt !== null && reopensAt <= nowMs && reopensAt !== queue.reportedReopening) {
        // Reported once: from now on this reopening is no deadline (it used to re-arm the timer every ms).
        queue.reportedReopening = reopensAt;
        reopened.push(queue.name);
      }
      this.runTimers(queue, nowMs, records);
    }
    return { records, reopened };
  }

  /**
   * Records that rebuild the whole state (AOF rewrite): per queue its config, every job in set
   * order, then its counters. `nowMs` is not needed (the state holds absolute times) and is ignored.
   */
  /** The compact snapshot (snapshot.ts, format 2): per queue its config record, its jobs, its counters. */
  snapshotChunks(_nowMs: number, maxBytes: number): Iterable<Buffer> {
    return encodeQueueChunks(this.snapshotItems(), maxBytes);
  }

  private *snapshotItems(): Iterable<SnapshotItem> {
    for (const name of [...this.queues.keys()].sort()) {
      const queue = this.queues.get(name);
      if (queue === undefined) continue;
      yield { kind: 'record', record: buildRecord('Q.CONFIG', [name, JSON.stringify(queue.config)]) };
      for (const set of queue.sets)
        for (const key of set.keys()) yield { kind: 'job', queue: name, job: key as Job };
      yield { kind: 'record', record: buildRecord('Q.STATE', [name, JSON.stringify(queueCounters(queue))]) };
    }
  }

  /** Apply one chunk of the compact snapshot: records through replay's apply code, jobs straight into their sets. */
  loadSnapshotChunk(chunk: Buffer): void {
    const reader = RecordReader.fromTexts('Q.JOB', []);
    decodeQueueChunk(chunk, {
      record: (command, args) => this.apply(RecordReader.fromTexts(command, args), false),
      job: (queue, id, name, opts, data, numbers, extra) =>
        this.loadJob(reader, queue, id, name, opts, data, numbers, extra),
    });
  }

  /** One job of a format-2 snapshot chunk: the checks of applyJob (Q.JOB), without a record to parse. */
  private loadJob(
    reader: RecordReader,
    queueName: string,
    id: string,
    name: string,
    optsText: string,
    data: string,
    numbers: Float64Array,
    extra: string | null,
  ): void {
    const queue = this.queues.get(queueName);
    if (queue === undefined) throw reader.fail(`queue '${queueName.slice(0, 128)}' does not exist`);
    if (id === '' || overBytes(id, LIMITS.jobIdMaxBytes)) throw reader.fail('bad job id');
    if (overBytes(name, LIMITS.jobNameMaxBytes)) throw reader.fail('job name too long');
    const opts = this.readOptions(reader, optsText);
    const job = new Job(id, this.names.get(name), opts, data, 0);
    const fail = (reason: string): AofqError => reader.fail(reason);
    job.restoreNumbers(numbers, fail);
    if (extra !== null) {
      let fields: unknown;
      try {
        fields = JSON.parse(extra);
      } catch {
        throw reader.fail('job extra fields are not JSON');
      }
      job.restoreExtra(fields, fail);
      if (job.extra?.deadLetter) checkDeadLetter(job.extra.deadLetter, fail);
    }
    // A duplicate id in a snapshot is a coded record error, not an assertion: the bytes are untrusted.
    if (!queue.jobs.add(job)) throw reader.fail('job id exists');
    if (!queue.set(job.state).add(job)) throw reader.fail('duplicate set key');
    queue.markDirty();
  }

  *snapshotRecords(_nowMs: number): Iterable<RecordArg[]> {
    for (const name of [...this.queues.keys()].sort()) {
      const queue = this.queues.get(name);
      if (queue === undefined) continue;
      yield buildRecord('Q.CONFIG', [name, JSON.stringify(queue.config)]);
      for (const set of queue.sets) {
        for (const key of set.keys()) {
          const job = key as Job;
          yield buildRecord('Q.JOB', [
            name,
            job.id,
            job.name,
            job.opts.json,
            job.data,
            JSON.stringify(job.mutableFields()),
          ]);
        }
      }
      yield buildRecord('Q.STATE', [name, JSON.stringify(queueCounters(queue))]);
    }
  }

  /** Leader: validate, decide, log and apply one request. Throws AofqError with no state change. */
  execute<R extends QueueRequest>(request: R, ctx: ApplyContext): Executed<R> {
    const records: RecordArg[][] = [];
    const result = this.executeInto(request, ctx, records);
    return { result, records };
  }

  /**
   * execute(), with each record handed to `sink` right after it is applied (the node's sink
   * appends it to the AOF: no array per request). A request that throws has pushed nothing.
   */
  executeInto<R extends QueueRequest>(request: R, ctx: ApplyContext, sink: RecordSink): QueueResult<R> {
    if (!isPlainObject(request) || typeof request.op !== 'string')
      throw requestInvalid('request must have an op');
    if (!Number.isSafeInteger(ctx.nowMs) || ctx.nowMs < 0) throw requestInvalid('nowMs must be an integer');
    return this.decide(request as QueueRequest, ctx.nowMs, sink) as QueueResult<R>;
  }

  // ---------------------------------------------------------------- leader: decisions

  /** Builds the record for `args`, applies it through the same apply code as replay, and logs it. */
  private commit(records: RecordSink, command: Command, args: ReadonlyArray<string | number>): unknown {
    const record = new Array<RecordArg>(args.length + 1);
    record[0] = commandBytes(command);
    for (let i = 0; i < args.length; i++) record[i + 1] = args[i] as string | number;
    return this.commitRecord(records, command, record);
  }

  /**
   * The hot paths build their record in place: `record[0]` is the command's Buffer
   * (commandBytes(command)), the arguments follow (the queue name first, as text). The record is
   * applied through the same apply code as replay, then logged.
   */
  private commitRecord(records: RecordSink, command: Command, record: RecordArg[]): unknown {
    // Set only while a record applies: a command issued from inside apply (an event listener's)
    // would clobber the shared reader.
    assert(!this.trusted, 'apply never nests');
    // The leader's own arguments hold JSON texts it has just serialized: apply skips re-parsing them.
    this.trusted = true;
    try {
      const result = this.apply(this.leaderReader.reset(command, record), true);
      records.push(record);
      return result;
    } finally {
      this.trusted = false;
    }
  }

  /** Reused for every record the leader applies: apply never nests. */
  private readonly leaderReader = RecordReader.forLeader();

  /** A valid queue name, or AOFQ_ERR_QUEUE_INVALID_NAME; a queue that exists had its name checked when it was made. */
  private queueName(name: unknown): string {
    if (typeof name === 'string' && this.queues.has(name)) return name;
    return checkQueueName(name);
  }

  private existing(name: unknown): QueueState {
    // A queue that exists had its name checked when it was made.
    const known = typeof name === 'string' ? this.queues.get(name) : undefined;
    if (known !== undefined) return known;
    const queueName = checkQueueName(name);
    const queue = this.queues.get(queueName);
    if (queue === undefined) throw new AofqError('AOFQ_ERR_QUEUE_NOT_FOUND', { queue: queueName });
    return queue;
  }

  private jobOf(queue: QueueState, id: unknown): Job {
    const job = typeof id === 'string' ? queue.jobs.get(id) : undefined;
    if (job === undefined)
      throw new AofqError('AOFQ_ERR_JOB_NOT_FOUND', { id: String(id).slice(0, 256), queue: queue.name });
    return job;
  }

  /** The job under a live lease with this token, or AOFQ_ERR_LEASE_LOST. */
  private leased(queue: QueueState, id: unknown, token: unknown, nowMs: number): Job {
    const fence = checkToken(token);
    const job = typeof id === 'string' ? queue.jobs.get(id) : undefined;
    if (job === undefined || job.state !== StateCode.Active || job.token !== fence || job.sortKey <= nowMs) {
      throw new AofqError('AOFQ_ERR_LEASE_LOST', { id: String(id).slice(0, 256) });
    }
    return job;
  }

  private decide(request: QueueRequest, nowMs: number, records: RecordSink): ResultMap[QueueRequest['op']] {
    switch (request.op) {
      case 'add':
        return this.decideAdd(request, nowMs, records);
      case 'lease':
        return this.decideLease(request, nowMs, records);
      case 'extend': {
        const queue = this.existing(request.queue);
        const job = this.leased(queue, request.id, request.token, nowMs);
        const leaseUntil = nowMs + checkLeaseMs(request.leaseMs, queue.config.leaseMs);
        this.commit(records, 'Q.EXTEND', [queue.name, job.id, job.token, leaseUntil]);
        return { leaseUntil };
      }
      case 'ack': {
        const queue = this.existing(request.queue);
        const job = this.leased(queue, request.id, request.token, nowMs);
        const returnvalue =
          request.returnvalue === undefined ? 'null' : toJsonText(request.returnvalue, 'returnvalue');
        this.checkSize(queue, returnvalue);
        const record: RecordArg[] =
          returnvalue === 'null'
            ? [Q_ACK, queue.name, job.id, job.token, nowMs]
            : [Q_ACK, queue.name, job.id, job.token, nowMs, returnvalue];
        this.commitRecord(records, 'Q.ACK', record);
        return { id: job.id };
      }
      case 'nack':
        return this.decideNack(request, nowMs, records);
      case 'release': {
        const queue = this.existing(request.queue);
        const job = this.leased(queue, request.id, request.token, nowMs);
        const retryAt = nowMs + checkDelay(request.delayMs, 'delayMs');
        this.commit(records, 'Q.RELEASE', [queue.name, job.id, job.token, nowMs, retryAt]);
        return { id: job.id, state: STATE_NAMES[job.state] as JobState };
      }
      case 'progress': {
        const queue = this.existing(request.queue);
        const job =
          request.token === undefined
            ? this.jobOf(queue, request.id)
            : this.leased(queue, request.id, request.token, nowMs);
        const progress = toJsonText(request.progress, 'progress');
        this.checkSize(queue, progress);
        this.commit(records, 'Q.PROGRESS', [queue.name, job.id, progress]);
        return { id: job.id };
      }
      case 'getJob': {
        const queue = this.existing(request.queue);
        const job = this.jobOf(queue, request.id);
        return {
          job: job.toJson(),
          state: STATE_NAMES[job.state] as JobState,
          leaseUntil: job.state === StateCode.Active ? job.sortKey : null,
        };
      }
      case 'listJobs':
        return this.listJobs(request);
      case 'getJobCounts': {
        const queue = this.existing(request.queue);
        const size = (state: StateCode) => queue.set(state).size;
        return {
          waiting: size(StateCode.Waiting),
          prioritized: size(StateCode.Prioritized),
          delayed: size(StateCode.Delayed),
          active: size(StateCode.Active),
          completed: size(StateCode.Completed),
          failed: size(StateCode.Failed),
          paused: queue.paused,
        };
      }
      case 'pause':
        this.commit(records, 'Q.PAUSE', [checkQueueName(request.queue)]);
        return { paused: true };
      case 'resume':
        this.commit(records, 'Q.RESUME', [checkQueueName(request.queue)]);
        return { paused: false };
      case 'drain': {
        const queue = this.existing(request.queue);
        return { removed: this.commit(records, 'Q.DRAIN', [queue.name]) as number };
      }
      case 'clean': {
        const queue = this.existing(request.queue);
        const state = checkStateName(request.state);
        if (state === 'active') throw requestInvalid('active jobs cannot be cleaned: they are leased');
        const graceMs = checkDelay(request.graceMs, 'graceMs');
        const limit = checkCount(request.limit, LIMITS.jobsPerAdminCall, LIMITS.jobsPerAdminCall, 'limit');
        const ids = this.commit(records, 'Q.CLEAN', [
          queue.name,
          nowMs,
          graceMs,
          limit,
          stateCode(state),
        ]) as string[];
        return { ids };
      }
      case 'obliterate': {
        const queue = this.existing(request.queue);
        const active = queue.set(StateCode.Active).size;
        if (active > 0 && request.force !== true) {
          throw new AofqError('AOFQ_ERR_QUEUE_BUSY', { queue: queue.name, active });
        }
        return { removed: this.commit(records, 'Q.OBLITERATE', [queue.name]) as number };
      }
      case 'retryJobs': {
        const queue = this.existing(request.queue);
        const count = checkCount(request.count, LIMITS.jobsPerPage, LIMITS.jobsPerAdminCall, 'count');
        if (queue.set(StateCode.Failed).size === 0) return { ids: [] };
        return { ids: this.commit(records, 'Q.RETRY', [queue.name, nowMs, count]) as string[] };
      }
      case 'retryJob':
        return this.decideRetryJob(request, records);
      case 'promote': {
        const queue = this.existing(request.queue);
        if (request.id !== undefined) {
          const job = this.jobOf(queue, request.id);
          if (job.state !== StateCode.Delayed) {
            throw new AofqError('AOFQ_ERR_JOB_STATE', {
              id: job.id,
              state: STATE_NAMES[job.state] as string,
              reason: 'only delayed jobs can be promoted',
            });
          }
          return { ids: this.commit(records, 'Q.PROMOTE', [queue.name, job.id, 1]) as string[] };
        }
        const count = checkCount(request.count, LIMITS.jobsPerPage, LIMITS.jobsPerAdminCall, 'count');
        if (queue.set(StateCode.Delayed).size === 0) return { ids: [] };
        return { ids: this.commit(records, 'Q.PROMOTE', [queue.name, '', count]) as string[] };
      }
      case 'remove': {
        const queue = this.existing(request.queue);
        const job = this.jobOf(queue, request.id);
        if (job.state === StateCode.Active) {
          throw new AofqError('AOFQ_ERR_JOB_STATE', {
            id: job.id,
            state: 'active',
            reason: 'a leased job cannot be removed; ack or nack it, or let its lease expire',
          });
        }
        this.commit(records, 'Q.REMOVE', [queue.name, job.id]);
        return { id: job.id };
      }
      case 'redrive':
        return this.decideRedrive(request, nowMs, records);
      case 'setConfig': {
        const name = checkQueueName(request.queue);
        const current = this.queues.get(name)?.config ?? QUEUE_CONFIG_DEFAULTS;
        const config = checkQueueConfig(name, current, request.config);
        this.commit(records, 'Q.CONFIG', [name, JSON.stringify(config)]);
        return { config: cloneConfig(config) };
      }
      case 'getConfig':
        return { config: cloneConfig(this.existing(request.queue).config) };
      default:
        throw requestInvalid(`unknown op '${String((request as { op: unknown }).op).slice(0, 32)}'`);
    }
  }

  private checkSize(queue: QueueState, text: string): void {
    if (overBytes(text, queue.config.maxDataBytes)) {
      const size = Buffer.byteLength(text);
      throw new AofqError('AOFQ_ERR_JOB_DATA_TOO_LARGE', { size, limit: queue.config.maxDataBytes });
    }
  }

  private decideAdd(request: Extract<QueueRequest, { op: 'add' }>, nowMs: number, records: RecordSink) {
    const name = this.queueName(request.queue);
    const queue = this.queues.get(name);
    const config = queue?.config ?? QUEUE_CONFIG_DEFAULTS;
    if (
      !Array.isArray(request.jobs) ||
      request.jobs.length === 0 ||
      request.jobs.length > LIMITS.jobsPerBulk
    ) {
      throw new AofqError('AOFQ_ERR_JOB_INVALID', {
        reason: `jobs must be an array of 1..${LIMITS.jobsPerBulk}`,
      });
    }
    // Both arrays are made at their final size (pushes onto empty arrays grew them: 4 allocations
    // a job); duplicates leave the tail of the record unused, cut off below. record[0] is the
    // command's.
    const inputs = request.jobs;
    const record = new Array<RecordArg>(3 + ADD_ARGS_PER_JOB * inputs.length);
    record[0] = Q_ADD;
    record[1] = name;
    record[2] = 0;
    const results = new Array<{ id: string; duplicate: boolean }>(inputs.length);
    let custom: Set<string> | null = null; // custom ids of this bulk, made for the first one
    let nextId = queue?.idCounter ?? 0;
    let fresh = 0;
    for (let index = 0; index < inputs.length; index++) {
      const input = inputs[index] as unknown;
      if (!isPlainObject(input))
        throw new AofqError('AOFQ_ERR_JOB_INVALID', { reason: 'a job must be an object' });
      for (const key in input) {
        if (key !== 'name' && key !== 'data' && key !== 'opts') {
          throw new AofqError('AOFQ_ERR_JOB_INVALID', { reason: `unknown job field '${key.slice(0, 64)}'` });
        }
      }
      const jobName = checkJobName(input.name);
      const opts = checkJobsOptions(input.opts);
      const data = input.data === undefined ? '{}' : toJsonText(input.data, 'data');
      // Counted only when its UTF-16 length allows more bytes than the limit (a unit takes at
      // most 3). Either way the text that JSON.stringify built from parts is flattened here, as
      // a count would (a cons string costs about 95 B more per stored job: 258.6 against 353.9
      // B/job measured with and without, for 300,000 jobs); reading a character flattens it
      // without the count's pass over the text. The writer would flatten it anyway when it
      // encodes the record, but a node without an AOF has no writer.
      if (data.length * 3 > config.maxDataBytes) {
        const size = Buffer.byteLength(data);
        if (size > config.maxDataBytes) {
          throw new AofqError('AOFQ_ERR_JOB_DATA_TOO_LARGE', { size, limit: config.maxDataBytes });
        }
      } else data.charCodeAt(0);
      if (opts.jobId !== undefined && (queue?.jobs.has(opts.jobId) || custom?.has(opts.jobId))) {
        results[index] = { id: opts.jobId, duplicate: true };
        continue;
      }
      let id: string;
      if (opts.jobId !== undefined) {
        id = opts.jobId;
        custom ??= new Set();
        custom.add(id);
      } else {
        nextId++;
        id = autoIdText(nextId);
      }
      const at = 3 + ADD_ARGS_PER_JOB * fresh;
      record[at] = id;
      record[at + 1] = jobName;
      record[at + 2] = opts.json;
      record[at + 3] = data;
      record[at + 4] = opts.timestamp ?? nowMs;
      fresh++;
      results[index] = { id, duplicate: false };
    }
    if (fresh === 0) return { jobs: results };
    // Setting an array's length is a runtime call even when it does not change it.
    if (fresh < inputs.length) record.length = 3 + ADD_ARGS_PER_JOB * fresh;
    const unfinished = queue?.unfinished() ?? 0;
    if (unfinished + fresh > config.maxJobs) {
      throw new AofqError('AOFQ_ERR_QUEUE_FULL', { queue: name, maxJobs: config.maxJobs });
    }
    record[2] = fresh;
    this.commitRecord(records, 'Q.ADD', record);
    return { jobs: results };
  }

  private decideLease(request: Extract<QueueRequest, { op: 'lease' }>, nowMs: number, records: RecordSink) {
    const name = this.queueName(request.queue);
    const count = request.count ?? 1;
    if (!Number.isSafeInteger(count) || count < 1 || count > LIMITS.jobsPerLease) {
      throw leaseInvalid(`count must be an integer in 1..${LIMITS.jobsPerLease}`);
    }
    const consumer = request.consumer ?? '';
    if (
      typeof consumer !== 'string' ||
      (consumer !== '' && (hasLoneSurrogate(consumer) || overBytes(consumer, CONSUMER_MAX_BYTES)))
    ) {
      throw leaseInvalid(`consumer must be a string of at most ${CONSUMER_MAX_BYTES} bytes`);
    }
    const queue = this.queues.get(name);
    const leaseMs = checkLeaseMs(request.leaseMs, queue?.config.leaseMs ?? LIMITS.leaseMsDefault);
    if (queue === undefined) return { jobs: [], rateLimitedUntil: null, paused: false };
    this.runTimers(queue, nowMs, records);
    if (queue.paused) return { jobs: [], rateLimitedUntil: null, paused: true };
    const available = queue.ready();
    const wanted = Math.min(count, available);
    const { allowed, reopensAt } = windowAllowance(queue, nowMs);
    const granted = Math.min(wanted, allowed);
    const rateLimitedUntil = granted < wanted ? reopensAt : null;
    if (granted === 0) return { jobs: [], rateLimitedUntil, paused: false };
    const record: RecordArg[] =
      consumer === ''
        ? [Q_LEASE, name, nowMs, nowMs + leaseMs, queue.tokenCounter + 1, granted]
        : [Q_LEASE, name, nowMs, nowMs + leaseMs, queue.tokenCounter + 1, granted, consumer];
    const jobs = this.commitRecord(records, 'Q.LEASE', record) as LeasedJob[];
    return { jobs, rateLimitedUntil, paused: false };
  }

  /** Decides what a failed attempt leads to: a retry (and when), failure, or the dead-letter queue. */
  private failureOutcome(
    queue: QueueState,
    job: Job,
    nowMs: number,
    retry: boolean,
    delayMs: number | undefined,
  ): { outcome: Outcome; retryAt: number; deadLetterId: string } {
    const attemptsMade = job.attemptsMade + 1;
    const attempts = job.opts.attempts || queue.config.maxAttempts;
    if (retry && attemptsMade < attempts) {
      const delay =
        delayMs ?? backoffDelay(job.opts.backoff ?? queue.config.backoff, attemptsMade, this.random);
      return { outcome: 'retry', retryAt: nowMs + delay, deadLetterId: '' };
    }
    const deadLetterQueue = queue.config.deadLetterQueue;
    if (deadLetterQueue === null) return { outcome: 'fail', retryAt: 0, deadLetterId: '' };
    const target = this.queues.get(deadLetterQueue);
    return { outcome: 'dead', retryAt: 0, deadLetterId: String((target?.idCounter ?? 0) + 1) };
  }

  private decideNack(request: Extract<QueueRequest, { op: 'nack' }>, nowMs: number, records: RecordSink) {
    const queue = this.existing(request.queue);
    const job = this.leased(queue, request.id, request.token, nowMs);
    const failedReason = checkText(request.failedReason, 'failedReason', false);
    const stacktrace = checkText(request.stacktrace, 'stacktrace', true);
    if (request.retry !== undefined && typeof request.retry !== 'boolean')
      throw requestInvalid('retry must be a boolean');
    const delayMs = request.delayMs === undefined ? undefined : checkDelay(request.delayMs, 'delayMs');
    const decision = this.failureOutcome(queue, job, nowMs, request.retry !== false, delayMs);
    this.commit(records, 'Q.NACK', [
      queue.name,
      job.id,
      job.token,
      nowMs,
      decision.outcome,
      decision.retryAt,
      decision.deadLetterId,
      failedReason,
      stacktrace,
    ]);
    const state: JobState | 'dead-lettered' =
      decision.outcome === 'dead' ? 'dead-lettered' : (STATE_NAMES[job.state] as JobState);
    return { id: job.id, state, retryAt: decision.outcome === 'retry' ? decision.retryAt : null };
  }

  private decideRedrive(
    request: Extract<QueueRequest, { op: 'redrive' }>,
    nowMs: number,
    records: RecordSink,
  ) {
    const queue = this.existing(request.queue);
    const count = checkCount(request.count, LIMITS.jobsPerPage, LIMITS.jobsPerAdminCall, 'count');
    const args: Array<string | number> = [queue.name, nowMs, 0];
    const moved: Array<{ from: string; queue: string; id: string }> = [];
    const taken = new Map<string, Set<string>>();
    const counters = new Map<string, number>();
    for (const state of [StateCode.Waiting, StateCode.Prioritized, StateCode.Delayed, StateCode.Failed]) {
      let scanned = 0;
      for (const key of queue.set(state).keys()) {
        if (moved.length >= count || scanned >= LIMITS.jobsPerAdminCall) break;
        scanned++;
        const job = key as Job;
        const origin = job.extra?.deadLetter;
        if (!origin) continue;
        const target = this.queues.get(origin.queue);
        let ids = taken.get(origin.queue);
        if (ids === undefined) {
          ids = new Set();
          taken.set(origin.queue, ids);
        }
        let id = origin.id;
        if (target?.jobs.has(id) || ids.has(id)) {
          const next = (counters.get(origin.queue) ?? target?.idCounter ?? 0) + 1;
          counters.set(origin.queue, next);
          id = String(next);
        }
        ids.add(id);
        moved.push({ from: job.id, queue: origin.queue, id });
        args.push(job.id, origin.queue, id);
      }
    }
    if (moved.length === 0) return { moved };
    args[2] = moved.length;
    this.commit(records, 'Q.REDRIVE', args);
    return { moved };
  }

  /** BullMQ's Job.retry: one failed (or, asked for, completed) job back to waiting, as one Q.RETRYJOB. */
  private decideRetryJob(
    request: Extract<QueueRequest, { op: 'retryJob' }>,
    records: RecordSink,
  ): ResultMap['retryJob'] {
    const queue = this.existing(request.queue);
    const job = this.jobOf(queue, request.id);
    const expected = request.state ?? 'failed';
    if (expected !== 'failed' && expected !== 'completed')
      throw requestInvalid("state must be 'failed' or 'completed'");
    const resetMade = checkFlag(request.resetAttemptsMade, 'resetAttemptsMade');
    const resetStarted = checkFlag(request.resetAttemptsStarted, 'resetAttemptsStarted');
    const current = STATE_NAMES[job.state] as JobState;
    if (current !== expected) {
      throw new AofqError('AOFQ_ERR_JOB_STATE', {
        id: job.id,
        state: current,
        reason:
          expected === 'failed'
            ? "only a failed job can be retried (a completed one with state 'completed')"
            : 'the job is not completed',
      });
    }
    if (queue.unfinished() + 1 > queue.config.maxJobs) {
      throw new AofqError('AOFQ_ERR_QUEUE_FULL', { queue: queue.name, maxJobs: queue.config.maxJobs });
    }
    this.commit(records, 'Q.RETRYJOB', [
      queue.name,
      job.id,
      stateCode(expected),
      resetMade ? 1 : 0,
      resetStarted ? 1 : 0,
    ]);
    return { id: job.id, state: STATE_NAMES[job.state] as JobState };
  }

  private listJobs(request: Extract<QueueRequest, { op: 'listJobs' }>): ResultMap['listJobs'] {
    const queue = this.existing(request.queue);
    const state = stateCode(checkStateName(request.state));
    const limit = checkCount(request.limit, 100, LIMITS.jobsPerPage, 'limit');
    let start: SetKey | undefined;
    if (request.cursor !== undefined && request.cursor !== '') {
      const match =
        typeof request.cursor === 'string' ? /^(-?\d{1,16}):(-?\d{1,16})$/.exec(request.cursor) : null;
      if (match === null) throw requestInvalid('bad cursor');
      // Just past the last key returned: orders are integers, so order + 0.5 sorts between them.
      start = { sortKey: Number(match[1]), order: Number(match[2]) + 0.5 };
    }
    const jobs: JobJson[] = [];
    let last: Job | undefined;
    let more = false;
    for (const key of queue.set(state).keys(start)) {
      if (jobs.length === limit) {
        more = true;
        break;
      }
      last = key as Job;
      jobs.push(last.toJson());
    }
    return { jobs, cursor: more && last ? `${last.sortKey}:${last.order}` : null };
  }

  /** Expires due leases (one record each) and promotes due delayed jobs of one queue. Bounded per call. */
  private runTimers(queue: QueueState, nowMs: number, records: RecordSink): void {
    for (let i = 0; i < LIMITS.jobsPerAdminCall; i++) {
      const job = queue.first(StateCode.Active);
      if (job === undefined || job.sortKey > nowMs) break;
      const decision = this.failureOutcome(queue, job, nowMs, true, undefined);
      this.commit(records, 'Q.EXPIRE', [
        queue.name,
        job.id,
        job.token,
        nowMs,
        decision.outcome,
        decision.retryAt,
        decision.deadLetterId,
      ]);
    }
    // Most calls (every lease) find nothing due: look at the first delayed job before iterating.
    const firstDelayed = queue.first(StateCode.Delayed);
    if (firstDelayed === undefined || firstDelayed.sortKey > nowMs) return;
    for (let round = 0; round < LIMITS.jobsPerAdminCall / LIMITS.jobsPerBulk; round++) {
      let due = 0;
      for (const key of queue.set(StateCode.Delayed).keys()) {
        if (due === LIMITS.jobsPerBulk || (key as Job).sortKey > nowMs) break;
        due++;
      }
      if (due === 0) break;
      this.commit(records, 'Q.DUE', [queue.name, nowMs, due]);
    }
  }

  // ---------------------------------------------------------------- apply (leader and replay)

  /** Turns event delivery on (a hook) or off (undefined). The node turns it on only while someone listens. */
  setEventHook(hook: ((queue: string, event: QueueEvent) => void) | undefined): void {
    this.eventHook = hook;
  }

  private apply(reader: RecordReader, wantResult: boolean): unknown {
    switch (reader.command) {
      case 'Q.CONFIG':
        return this.applyConfig(reader);
      case 'Q.ADD':
        return this.applyAdd(reader);
      case 'Q.LEASE':
        return this.applyLease(reader, wantResult);
      case 'Q.EXTEND':
        return this.applyExtend(reader);
      case 'Q.ACK':
        return this.applyAck(reader);
      case 'Q.NACK':
      case 'Q.EXPIRE':
        return this.applyFailure(reader, reader.command === 'Q.EXPIRE');
      case 'Q.RELEASE':
        return this.applyRelease(reader);
      case 'Q.PROGRESS':
        return this.applyProgress(reader);
      case 'Q.PAUSE':
      case 'Q.RESUME':
        return this.applyPause(reader, reader.command === 'Q.PAUSE');
      case 'Q.DRAIN':
        return this.applyDrain(reader);
      case 'Q.CLEAN':
        return this.applyClean(reader);
      case 'Q.OBLITERATE':
        return this.applyObliterate(reader);
      case 'Q.RETRY':
        return this.applyRetry(reader);
      case 'Q.RETRYJOB':
        return this.applyRetryJob(reader);
      case 'Q.PROMOTE':
      case 'Q.DUE':
        return this.applyPromote(reader, reader.command === 'Q.DUE');
      case 'Q.REMOVE':
        return this.applyRemove(reader);
      case 'Q.REDRIVE':
        return this.applyRedrive(reader);
      case 'Q.STATE':
        return this.applyState(reader);
      case 'Q.JOB':
        return this.applyJob(reader);
      default:
        throw reader.fail(`not a queue command (expected one of ${COMMANDS.length} Q.* commands)`);
    }
  }

  private readQueueName(reader: RecordReader): string {
    const name = reader.string('queue', LIMITS.queueNameMaxBytes);
    checkRecordQueueName(reader, name, this.queues.has(name));
    return name;
  }

  private readQueue(reader: RecordReader): QueueState {
    // One lookup: a queue that exists had its name checked when it was made.
    const name = reader.string('queue', LIMITS.queueNameMaxBytes);
    const queue = this.queues.get(name);
    if (queue === undefined) {
      checkRecordQueueName(reader, name, false);
      throw reader.fail(`queue '${name}' does not exist`);
    }
    // The record may pause it, drain it, obliterate it or restore its counters: all move its deadline.
    queue.markDirty();
    return queue;
  }

  private readJob(reader: RecordReader, queue: QueueState): Job {
    const id = reader.string('id', LIMITS.jobIdMaxBytes);
    const job = queue.jobs.get(id);
    if (job === undefined) throw reader.fail(`job '${id.slice(0, 64)}' does not exist`);
    return job;
  }

  private readLeased(reader: RecordReader, queue: QueueState): Job {
    const job = this.readJob(reader, queue);
    const token = reader.uint('token');
    if (job.state !== StateCode.Active || job.token !== token)
      throw reader.fail(`job '${job.id}' is not leased with that token`);
    return job;
  }

  private createQueue(name: string, config?: QueueConfig): QueueState {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = new QueueState(
        name,
        config ?? cloneConfig(QUEUE_CONFIG_DEFAULTS),
        ++this.queueOrdinal,
        this.markDirty,
      );
      this.queues.set(name, queue);
    }
    queue.markDirty();
    return queue;
  }

  /** waiting (lifo at the front) or prioritized, by the job's priority. */
  private makeReady(queue: QueueState, job: Job, prev: JobState | undefined): void {
    if (job.priority > 0) queue.place(job, StateCode.Prioritized, job.priority);
    else if (job.opts.lifo) {
      queue.lifoCounter--;
      queue.place(job, StateCode.Waiting, 0, queue.lifoCounter);
    } else queue.place(job, StateCode.Waiting, 0);
    if (this.eventHook !== undefined)
      this.eventHook(
        queue.name,
        prev === undefined ? { event: 'waiting', jobId: job.id } : { event: 'waiting', jobId: job.id, prev },
      );
  }

  private makeDelayed(queue: QueueState, job: Job, dueAt: number): void {
    queue.place(job, StateCode.Delayed, dueAt);
    if (this.eventHook !== undefined)
      this.eventHook(queue.name, { event: 'delayed', jobId: job.id, delay: dueAt });
  }

  private applyConfig(reader: RecordReader): null {
    const name = this.readQueueName(reader);
    const [, value] = reader.json('config', 64 * 1024);
    reader.end();
    const config = reader.check('config', () => checkQueueConfig(name, QUEUE_CONFIG_DEFAULTS, value));
    const queue = this.queues.get(name);
    if (queue === undefined) this.createQueue(name, config);
    else queue.config = config;
    return null;
  }

  private applyAdd(reader: RecordReader): null {
    // One lookup for the name's check and the queue (a queue that exists had its name checked).
    const name = reader.string('queue', LIMITS.queueNameMaxBytes);
    const existing = this.queues.get(name);
    checkRecordQueueName(reader, name, existing !== undefined);
    const count = reader.uint('count', LIMITS.jobsPerBulk);
    if (count === 0) throw reader.fail('no jobs');
    let idCounter = existing?.idCounter ?? 0;
    // Duplicates within the record: a Set only for a bulk (one job cannot repeat itself).
    const seen = count > 1 ? new Set<string>() : null;
    const jobs = new Array<Job>(count);
    for (let i = 0; i < count; i++) {
      const id = reader.string('id', LIMITS.jobIdMaxBytes);
      const jobName = reader.string('name', LIMITS.jobNameMaxBytes);
      const optsText = reader.string('opts', 64 * 1024);
      const data = reader.string('data', LIMITS.jobDataBytes);
      const timestamp = reader.uint('timestamp');
      // Server-assigned ids are integers and custom ids never are (validate.ts), so the id tells which it is.
      if (!allDigits(id)) {
        if (id.length === 0) throw reader.fail('a custom id cannot be empty');
      } else {
        const n = Number(id);
        if (id.length > 16 || n <= idCounter) throw reader.fail(`bad job id '${id.slice(0, 64)}'`);
        idCounter = n;
      }
      if (seen?.has(id) || existing?.jobs.has(id)) throw reader.fail(`job '${id.slice(0, 64)}' exists`);
      seen?.add(id);
      const opts = this.readOptions(reader, optsText);
      if (!this.trusted) checkJsonText(reader, data, 'data');
      jobs[i] = new Job(id, this.names.get(jobName), opts, data, timestamp);
    }
    reader.end();
    let queue = existing;
    if (queue === undefined) queue = this.createQueue(name);
    else queue.markDirty();
    queue.idCounter = idCounter;
    for (let i = 0; i < count; i++) {
      const job = jobs[i] as Job;
      queue.jobs.insert(job);
      if (this.eventHook !== undefined)
        this.eventHook(name, { event: 'added', jobId: job.id, name: job.name });
      job.delay = job.opts.delay;
      if (job.opts.delay > 0) this.makeDelayed(queue, job, job.timestamp + job.opts.delay);
      else this.makeReady(queue, job, undefined);
    }
    return null;
  }

  private readOptions(reader: RecordReader, text: string): JobOptions {
    // Validate first: only canonical, valid option texts reach the intern table.
    if (this.optionsChecked.has(text)) return this.optionTable.get(text);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw reader.fail('opts is not valid JSON');
    }
    const checked = reader.check('opts', () => checkJobsOptions(value));
    if (checked.json !== text || checked.jobId !== undefined || checked.timestamp !== undefined) {
      throw reader.fail('opts is not canonical');
    }
    if (this.optionsChecked.size < 4096) this.optionsChecked.add(text);
    return this.optionTable.get(text);
  }

  private readonly optionsChecked = new Set<string>();

  private applyLease(reader: RecordReader, wantResult: boolean): LeasedJob[] | null {
    const queue = this.readQueue(reader);
    const nowMs = reader.uint('nowMs');
    const leaseUntil = reader.uint('leaseUntil');
    const firstToken = reader.uint('firstToken');
    const count = reader.uint('count', LIMITS.jobsPerLease);
    const consumer = reader.remaining > 0 ? reader.string('consumer', CONSUMER_MAX_BYTES) : '';
    reader.end();
    if (count === 0 || leaseUntil <= nowMs) throw reader.fail('empty or past lease');
    if (firstToken !== queue.tokenCounter + 1) throw reader.fail('token does not follow the last one');
    if (queue.paused) throw reader.fail('queue is paused');
    if (count > queue.ready()) throw reader.fail('not enough ready jobs');
    const { allowed } = windowAllowance(queue, nowMs);
    if (count > allowed) throw reader.fail('over the rate limit');
    const limiter = queue.config.limiter;
    if (limiter) {
      if (queue.windowStart < 0 || nowMs >= queue.windowStart + limiter.duration) {
        queue.windowStart = nowMs;
        queue.windowCount = 0;
      }
      queue.windowCount += count;
    }
    const leased: LeasedJob[] | null = wantResult ? new Array<LeasedJob>(count) : null;
    for (let i = 0; i < count; i++) {
      // BullMQ's order: the waiting list first, then prioritized jobs (moveToActive).
      let job = queue.first(StateCode.Waiting);
      if (job === undefined) job = queue.first(StateCode.Prioritized);
      assert(job !== undefined, 'ready jobs were counted');
      const prev = STATE_NAMES[job.state] as JobState;
      queue.detach(job);
      queue.tokenCounter++;
      job.token = queue.tokenCounter;
      job.attemptsStarted++;
      job.processedOn = nowMs;
      if (consumer !== '') job.mutableExtra().processedBy = consumer;
      else if (job.extra !== null) job.extra.processedBy = '';
      queue.place(job, StateCode.Active, leaseUntil);
      if (this.eventHook !== undefined) this.eventHook(queue.name, { event: 'active', jobId: job.id, prev });
      if (leased !== null) leased[i] = { job: job.toJson(), token: job.token, leaseUntil };
    }
    if (this.eventHook !== undefined && queue.ready() === 0) this.eventHook(queue.name, { event: 'drained' });
    return leased;
  }

  private applyExtend(reader: RecordReader): null {
    const queue = this.readQueue(reader);
    const job = this.readLeased(reader, queue);
    const leaseUntil = reader.uint('leaseUntil');
    reader.end();
    queue.detach(job);
    queue.place(job, StateCode.Active, leaseUntil, job.order);
    return null;
  }

  private applyAck(reader: RecordReader): null {
    const queue = this.readQueue(reader);
    const job = this.readLeased(reader, queue);
    const nowMs = reader.uint('nowMs');
    const returnvalue = reader.remaining > 0 ? reader.string('returnvalue') : 'null';
    reader.end();
    if (!this.trusted) checkJsonText(reader, returnvalue, 'returnvalue');
    queue.detach(job);
    job.attemptsMade++;
    job.token = 0;
    job.finishedOn = nowMs;
    if (returnvalue !== 'null' || job.extra !== null) job.mutableExtra().returnvalue = returnvalue;
    const policy = job.opts.removeOnComplete ?? queue.config.retention.completed;
    this.enterFinished(queue, job, StateCode.Completed, policy, nowMs);
    if (this.eventHook !== undefined)
      this.eventHook(queue.name, { event: 'completed', jobId: job.id, returnvalue, prev: 'active' });
    this.retain(queue, job, StateCode.Completed, policy, nowMs);
    return null;
  }

  private applyFailure(reader: RecordReader, expired: boolean): null {
    const queue = this.readQueue(reader);
    const job = this.readLeased(reader, queue);
    const nowMs = reader.uint('nowMs');
    const outcome = reader.string('outcome', 8);
    const retryAt = reader.uint('retryAt');
    const deadLetterId = reader.string('deadLetterId', 16);
    const failedReason = expired ? EXPIRED_REASON : reader.string('failedReason', TEXT_MAX_BYTES);
    const stacktrace = expired ? '' : reader.string('stacktrace', TEXT_MAX_BYTES);
    reader.end();
    if (outcome !== 'retry' && outcome !== 'fail' && outcome !== 'dead') throw reader.fail('bad outcome');
    const attempts = job.opts.attempts || queue.config.maxAttempts;
    let target: QueueState | undefined;
    const deadLetterQueue = queue.config.deadLetterQueue;
    if (outcome === 'dead') {
      if (deadLetterQueue === null) throw reader.fail('the queue has no dead-letter queue');
      target = this.queues.get(deadLetterQueue);
      const idCounter = target?.idCounter ?? 0;
      if (!allDigits(deadLetterId) || Number(deadLetterId) <= idCounter || target?.jobs.has(deadLetterId)) {
        throw reader.fail('bad dead-letter job id');
      }
    }
    if (outcome === 'retry' && job.attemptsMade + 1 >= attempts)
      throw reader.fail('no attempts left to retry');

    queue.detach(job);
    job.attemptsMade++;
    job.token = 0;
    if (expired) {
      job.stalledCounter++;
      if (this.eventHook !== undefined) this.eventHook(queue.name, { event: 'stalled', jobId: job.id });
    }
    const extra = job.mutableExtra();
    extra.failedReason = failedReason;
    if (stacktrace !== '') {
      extra.stacktrace.push(stacktrace);
      if (extra.stacktrace.length > STACKTRACE_LIMIT) extra.stacktrace.shift();
    }
    if (outcome === 'retry') {
      job.delay = retryAt > nowMs ? retryAt - nowMs : 0;
      if (retryAt > nowMs) this.makeDelayed(queue, job, retryAt);
      else this.makeReady(queue, job, 'active');
      return null;
    }
    const exhausted = job.attemptsMade >= attempts;
    if (this.eventHook !== undefined)
      this.eventHook(queue.name, { event: 'failed', jobId: job.id, failedReason, prev: 'active' });
    if (exhausted)
      if (this.eventHook !== undefined)
        this.eventHook(queue.name, {
          event: 'retries-exhausted',
          jobId: job.id,
          attemptsMade: job.attemptsMade,
        });
    if (outcome === 'fail') {
      job.finishedOn = nowMs;
      const policy = job.opts.removeOnFail ?? queue.config.retention.failed;
      this.enterFinished(queue, job, StateCode.Failed, policy, nowMs);
      this.retain(queue, job, StateCode.Failed, policy, nowMs);
      return null;
    }
    // Dead-lettered: the job leaves this queue and a new job, carrying its history, enters the DLQ.
    queue.forget(job);
    const deadLetters = target ?? this.createQueue(deadLetterQueue as string);
    const moved = new Job(deadLetterId, job.name, job.opts, job.data, nowMs);
    const movedExtra = moved.mutableExtra();
    movedExtra.failedReason = failedReason;
    movedExtra.stacktrace = [...extra.stacktrace];
    movedExtra.deadLetter = {
      queue: queue.name,
      id: job.id,
      attemptsMade: job.attemptsMade,
      failedReason,
      stacktrace: [...extra.stacktrace],
    };
    deadLetters.idCounter = Number(deadLetterId);
    deadLetters.jobs.insert(moved);
    if (this.eventHook !== undefined)
      this.eventHook(deadLetters.name, { event: 'added', jobId: moved.id, name: moved.name });
    this.makeReady(deadLetters, moved, undefined);
    return null;
  }

  /**
   * A finished job enters its finished set, or, when its retention keeps none, only takes that
   * state: retain() removes it next, and an insert into the set followed by a delete of the same
   * key would be work for nothing (4.3 % of the in-memory queue cycle's instructions under
   * removeOnComplete: 16,653 to 15,943).
   */
  private enterFinished(
    queue: QueueState,
    job: Job,
    state: StateCode,
    policy: Retention,
    nowMs: number,
  ): void {
    if (policy === true) queue.assign(job, state, nowMs);
    else queue.place(job, state, nowMs);
  }

  /** Applies a retention policy to the finished set that `job` just entered (enterFinished). Bounded work per call. */
  private retain(queue: QueueState, job: Job, state: StateCode, policy: Retention, nowMs: number): void {
    if (policy === false) return;
    if (policy === true) {
      queue.forget(job);
      return;
    }
    const set = queue.set(state);
    const count = typeof policy === 'number' ? policy : policy.count;
    const age = typeof policy === 'number' ? undefined : (policy as { age?: number }).age;
    for (let i = 0; i < LIMITS.jobsPerAdminCall; i++) {
      const oldest = queue.first(state);
      if (oldest === undefined) break;
      const overCount = count !== undefined && set.size > count;
      const tooOld = age !== undefined && oldest.finishedOn < nowMs - age * 1000;
      if (!overCount && !tooOld) break;
      queue.remove(oldest);
    }
  }

  private applyRelease(reader: RecordReader): null {
    const queue = this.readQueue(reader);
    const job = this.readLeased(reader, queue);
    const nowMs = reader.uint('nowMs');
    const retryAt = reader.uint('retryAt');
    reader.end();
    queue.detach(job);
    job.token = 0;
    if (retryAt > nowMs) {
      job.delay = retryAt - nowMs;
      this.makeDelayed(queue, job, retryAt);
    } else this.makeReady(queue, job, 'active');
    return null;
  }

  private applyProgress(reader: RecordReader): null {
    const queue = this.readQueue(reader);
    const job = this.readJob(reader, queue);
    const progress = reader.string('progress');
    reader.end();
    const value = checkJsonText(reader, progress, 'progress');
    job.mutableExtra().progress = progress;
    if (this.eventHook !== undefined)
      this.eventHook(queue.name, { event: 'progress', jobId: job.id, data: value as JobJson['progress'] });
    return null;
  }

  private applyPause(reader: RecordReader, paused: boolean): null {
    const name = this.readQueueName(reader);
    reader.end();
    const queue = this.createQueue(name);
    queue.paused = paused;
    if (this.eventHook !== undefined)
      this.eventHook(name, paused ? { event: 'paused' } : { event: 'resumed' });
    return null;
  }

  private applyDrain(reader: RecordReader): number {
    const queue = this.readQueue(reader);
    reader.end();
    let removed = 0;
    for (const state of [StateCode.Waiting, StateCode.Prioritized, StateCode.Delayed]) {
      const set = queue.set(state);
      for (const key of set.keys()) {
        queue.jobs.delete((key as Job).id);
        removed++;
      }
      set.clear();
    }
    if (this.eventHook !== undefined) this.eventHook(queue.name, { event: 'drained' });
    return removed;
  }

  private applyClean(reader: RecordReader): string[] {
    const queue = this.readQueue(reader);
    const nowMs = reader.uint('nowMs');
    const graceMs = reader.uint('graceMs');
    const limit = reader.uint('limit', LIMITS.jobsPerAdminCall);
    const state = reader.uint('state', 5) as StateCode;
    reader.end();
    if (state === StateCode.Active) throw reader.fail('active jobs cannot be cleaned');
    const finished = state === StateCode.Completed || state === StateCode.Failed;
    const cutoff = nowMs - graceMs;
    const chosen: Job[] = [];
    let scanned = 0;
    for (const key of queue.set(state).keys()) {
      if (chosen.length >= limit || scanned >= LIMITS.jobsPerAdminCall) break;
      scanned++;
      const job = key as Job;
      const time = finished ? job.finishedOn : job.timestamp;
      if (time < cutoff) chosen.push(job);
      else if (finished) break; // finished sets are ordered by finish time
    }
    for (const job of chosen) queue.remove(job);
    if (this.eventHook !== undefined) this.eventHook(queue.name, { event: 'cleaned', count: chosen.length });
    return chosen.map((job) => job.id);
  }

  private applyObliterate(reader: RecordReader): number {
    const queue = this.readQueue(reader);
    reader.end();
    this.queues.delete(queue.name);
    return queue.jobs.size;
  }

  private applyRetry(reader: RecordReader): string[] {
    const queue = this.readQueue(reader);
    const nowMs = reader.uint('nowMs');
    const count = reader.uint('count', LIMITS.jobsPerAdminCall);
    reader.end();
    void nowMs;
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const job = queue.first(StateCode.Failed);
      if (job === undefined) break;
      queue.detach(job);
      job.attemptsMade = 0;
      job.stalledCounter = 0;
      job.processedOn = 0;
      job.finishedOn = 0;
      if (job.extra !== null) {
        job.extra.failedReason = '';
        job.extra.stacktrace = [];
      }
      this.makeReady(queue, job, 'failed');
      ids.push(job.id);
    }
    return ids;
  }

  /** Q.RETRYJOB queue id fromState resetAttemptsMade resetAttemptsStarted (BullMQ's reprocessJob). */
  private applyRetryJob(reader: RecordReader): null {
    const queue = this.readQueue(reader);
    const job = this.readJob(reader, queue);
    const from = reader.uint('state', StateCode.Failed) as StateCode;
    const resetMade = reader.uint('resetAttemptsMade', 1);
    const resetStarted = reader.uint('resetAttemptsStarted', 1);
    reader.end();
    if (from !== StateCode.Failed && from !== StateCode.Completed) throw reader.fail('not a finished state');
    if (job.state !== from) throw reader.fail(`job '${job.id}' is not ${STATE_NAMES[from]}`);
    queue.detach(job);
    if (resetMade === 1) job.attemptsMade = 0;
    if (resetStarted === 1) job.attemptsStarted = 0;
    job.processedOn = 0;
    job.finishedOn = 0;
    if (job.extra !== null) {
      if (from === StateCode.Failed) job.extra.failedReason = '';
      else job.extra.returnvalue = 'null';
    }
    this.makeReady(queue, job, STATE_NAMES[from]);
    return null;
  }

  private applyPromote(reader: RecordReader, dueOnly: boolean): string[] {
    const queue = this.readQueue(reader);
    let single: Job | undefined;
    let nowMs = 0;
    if (dueOnly) nowMs = reader.uint('nowMs');
    else {
      const id = reader.string('id', LIMITS.jobIdMaxBytes);
      if (id !== '') {
        single = queue.jobs.get(id);
        if (single === undefined || single.state !== StateCode.Delayed)
          throw reader.fail('job is not delayed');
      }
    }
    const count = reader.uint('count', LIMITS.jobsPerAdminCall);
    reader.end();
    const chosen: Job[] = [];
    if (single !== undefined) chosen.push(single);
    else {
      for (const key of queue.set(StateCode.Delayed).keys()) {
        if (chosen.length === count) break;
        chosen.push(key as Job);
      }
      if (dueOnly && (chosen.length !== count || chosen.some((job) => job.sortKey > nowMs))) {
        throw reader.fail('fewer due delayed jobs than the record promotes');
      }
    }
    for (const job of chosen) {
      queue.detach(job);
      if (!dueOnly) job.delay = 0;
      this.makeReady(queue, job, 'delayed');
    }
    return chosen.map((job) => job.id);
  }

  private applyRemove(reader: RecordReader): null {
    const queue = this.readQueue(reader);
    const job = this.readJob(reader, queue);
    reader.end();
    if (job.state === StateCode.Active) throw reader.fail('an active job cannot be removed');
    const prev = STATE_NAMES[job.state] as JobState;
    queue.remove(job);
    if (this.eventHook !== undefined) this.eventHook(queue.name, { event: 'removed', jobId: job.id, prev });
    return null;
  }

  private applyRedrive(reader: RecordReader): null {
    const queue = this.readQueue(reader);
    const nowMs = reader.uint('nowMs');
    const count = reader.uint('count', LIMITS.jobsPerAdminCall);
    if (count === 0) throw reader.fail('nothing to redrive');
    const moves: Array<{ job: Job; target: string; id: string }> = [];
    const taken = new Set<string>();
    for (let i = 0; i < count; i++) {
      const job = this.readJob(reader, queue);
      const target = this.readQueueName(reader);
      const id = reader.string('newId', LIMITS.jobIdMaxBytes);
      const origin = job.extra?.deadLetter;
      if (!origin || origin.queue !== target || job.state === StateCode.Active)
        throw reader.fail('not a dead-lettered job');
      if (id === '' || taken.has(`${target}\n${id}`) || this.queues.get(target)?.jobs.has(id)) {
        throw reader.fail('redriven id is taken');
      }
      if (taken.has(`\n${job.id}`)) throw reader.fail('job redriven twice');
      taken.add(`${target}\n${id}`);
      taken.add(`\n${job.id}`);
      if (allDigits(id) && id.length > 16) throw reader.fail('bad id');
      moves.push({ job, target, id });
    }
    reader.end();
    for (const { job, target, id } of moves) {
      const prev = STATE_NAMES[job.state] as JobState;
      queue.remove(job);
      if (this.eventHook !== undefined) this.eventHook(queue.name, { event: 'removed', jobId: job.id, prev });
      const destination = this.createQueue(target);
      const auto = allDigits(id);
      if (auto && Number(id) > destination.idCounter) destination.idCounter = Number(id);
      const fresh = new Job(id, job.name, job.opts, job.data, nowMs);
      destination.jobs.insert(fresh);
      if (this.eventHook !== undefined)
        this.eventHook(target, { event: 'added', jobId: id, name: fresh.name });
      fresh.delay = 0;
      this.makeReady(destination, fresh, undefined);
    }
    return null;
  }

  private applyState(reader: RecordReader): null {
    const queue = this.readQueue(reader);
    const [, value] = reader.json('state', 4096);
    reader.end();
    if (!isPlainObject(value)) throw reader.fail('state must be an object');
    const field = (name: string, min: number): number => {
      const n = value[name];
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) throw reader.fail(`state.${name}`);
      return n;
    };
    if (typeof value.paused !== 'boolean') throw reader.fail('state.paused');
    const counters = {
      idCounter: field('idCounter', 0),
      tokenCounter: field('tokenCounter', 0),
      orderCounter: field('orderCounter', 0),
      lifoCounter: field('lifoCounter', Number.MIN_SAFE_INTEGER),
      windowStart: field('windowStart', -1),
      windowCount: field('windowCount', 0),
    };
    if (counters.lifoCounter > 0) throw reader.fail('state.lifoCounter');
    queue.paused = value.paused;
    Object.assign(queue, counters);
    return null;
  }

  private applyJob(reader: RecordReader): null {
    const queue = this.readQueue(reader);
    const id = reader.string('id', LIMITS.jobIdMaxBytes);
    const jobName = reader.string('name', LIMITS.jobNameMaxBytes);
    const optsText = reader.string('opts', 64 * 1024);
    const data = reader.string('data');
    const [, fields] = reader.json('fields', 4 * TEXT_MAX_BYTES * (STACKTRACE_LIMIT + 2));
    reader.end();
    if (id === '' || queue.jobs.has(id)) throw reader.fail('job id is empty or exists');
    const opts = this.readOptions(reader, optsText);
    // Not parsed again: a snapshot holds only data that Q.ADD accepted as JSON, under the chunk's
    // CRC32C, and the server never interprets it (it is handed out as text). Parsing every job's
    // data made up a sixth of a snapshot load.
    const job = new Job(id, this.names.get(jobName), opts, data, 0);
    job.restoreMutableFields(fields, (reason) => reader.fail(reason));
    if (job.extra?.deadLetter) checkDeadLetter(job.extra.deadLetter, (reason) => reader.fail(reason));
    if (queue.set(job.state).has(job)) throw reader.fail('duplicate set key');
    queue.jobs.insert(job);
    queue.place(job, job.state, job.sortKey, job.order);
    return null;
  }
}

function queueCounters(queue: QueueState) {
  return {
    paused: queue.paused,
    idCounter: queue.idCounter,
    tokenCounter: queue.tokenCounter,
    orderCounter: queue.orderCounter,
    lifoCounter: queue.lifoCounter,
    windowStart: queue.windowStart,
    windowCount: queue.windowCount,
  };
}

/** Leases the rate limiter still allows at `nowMs`, and when its window reopens (fixed windows). */
/** A queue without a limiter: one shared answer (leases ask on every call). */
const UNLIMITED: Readonly<{ allowed: number; reopensAt: number | null }> = Object.freeze({
  allowed: Number.MAX_SAFE_INTEGER,
  reopensAt: null,
});

function windowAllowance(
  queue: QueueState,
  nowMs: number,
): Readonly<{ allowed: number; reopensAt: number | null }> {
  const limiter = queue.config.limiter;
  if (limiter === null) return UNLIMITED;
  if (queue.windowStart < 0 || nowMs >= queue.windowStart + limiter.duration) {
    return { allowed: limiter.max, reopensAt: nowMs + limiter.duration }; // a lease now opens a new window
  }
  return {
    allowed: Math.max(0, limiter.max - queue.windowCount),
    reopensAt: queue.windowStart + limiter.duration,
  };
}

/** A record's queue name: one that names an existing queue was checked when the queue was made. */
function checkRecordQueueName(reader: RecordReader, name: string, exists: boolean): void {
  if (!exists && !QUEUE_NAME.test(name)) throw reader.fail('bad queue name');
}

function checkStateName(state: unknown): JobState {
  if (typeof state !== 'string' || !STATE_NAMES.includes(state as JobState)) {
    throw requestInvalid(`state must be one of ${STATE_NAMES.join(', ')}`);
  }
  return state as JobState;
}

function checkText(value: unknown, what: string, optional: boolean): string {
  if (value === undefined && optional) return '';
  if (typeof value !== 'string' || hasLoneSurrogate(value))
    throw requestInvalid(`${what} must be a well-formed string`);
  if (overBytes(value, TEXT_MAX_BYTES))
    throw requestInvalid(`${what} is longer than ${TEXT_MAX_BYTES} bytes`);
  return value;
}

function checkJsonText(reader: RecordReader, text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw reader.fail(`${what} is not valid JSON`);
  }
}

function cloneConfig(config: QueueConfig): QueueConfig {
  return JSON.parse(JSON.stringify(config)) as QueueConfig;
}

/** When a full rate-limit window reopens, if ready jobs wait for it (and the queue is not paused); else null. */
function limiterReopening(queue: QueueState): number | null {
  const limiter = queue.config.limiter;
  if (limiter === null || queue.paused || queue.windowStart < 0 || queue.windowCount < limiter.max)
    return null;
  return queue.ready() > 0 ? queue.windowStart + limiter.duration : null;
}

/** A queue's next deadline: its first lease expiry, first delayed job, or an unreported window reopening. */
function queueDeadline(queue: QueueState): number | null {
  let at: number | null = null;
  const active = queue.first(StateCode.Active);
  if (active !== undefined) at = active.sortKey;
  const delayed = queue.first(StateCode.Delayed);
  if (delayed !== undefined && (at === null || delayed.sortKey < at)) at = delayed.sortKey;
  const reopensAt = limiterReopening(queue);
  if (reopensAt !== null && reopensAt !== queue.reportedReopening && (at === null || reopensAt < at)) {
    at = reopensAt;
  }
  return at;
}
