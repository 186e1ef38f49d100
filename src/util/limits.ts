/**
 * Every limit in aofq lives here, so that the relations between them can be
 * checked once, at load time. Sizes are in bytes, times in milliseconds.
 * A limit that an operator can raise is the default of a config directive.
 */
import { assert } from './assert.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export const LIMITS = Object.freeze({
  /** RESP: largest bulk string, as Redis's proto-max-bulk-len (default 512mb). */
  respMaxBulkBytes: 512 * MiB,
  /** RESP: most elements in one array (multibulk), as Redis's 1024*1024 cap for a request. */
  respMaxArrayLength: 1024 * 1024,
  /** RESP: longest line (length prefixes, simple strings, errors, inline commands, annotations). */
  respMaxLineBytes: 64 * KiB,
  /** RESP: deepest nesting of arrays in a reply. Commands are one level deep. */
  respMaxDepth: 8,
  /** RESP port: unparsed bytes held for one client (Redis's client-query-buffer-limit, 1gb there). */
  respPortQueryBufferBytes: 64 * MiB,
  /** RESP port: connected clients (Redis's maxclients). */
  respPortMaxClients: 10_000,
  /** RESP port: commands of one client awaiting their replies; beyond it, reading that client pauses. */
  respPortMaxPendingReplies: 64 * 1024,

  /** AOF: longest manifest line, as Redis's AOF manifest reader. */
  manifestMaxLineBytes: 1024,
  /** AOF: largest manifest file the loader reads. */
  manifestMaxBytes: 16 * MiB,
  /** AOF load: records buffered inside one MULTI ... EXEC of a Redis-written file. */
  aofMaxMultiRecords: 1024 * 1024,
  /** AOF load: bytes read from disk at a time. */
  aofLoadChunkBytes: 1 * MiB,
  /** AOF: most bytes gathered into one group-commit batch before it is cut. */
  aofMaxBatchBytes: 64 * MiB,
  /** AOF: everysec postpones a write behind a pending fsync for at most this long. */
  aofMaxFsyncPostponeMs: 2000,
  /** AOF: after a write error, how often the writer retries. */
  aofWriteRetryMs: 1000,
  /** AOF: everysec's background fdatasync runs at most once per this period. */
  aofEverysecIntervalMs: 1000,
  /** AOF: a repeated write/fsync error is logged at most once per this period (Redis: 30 s). */
  aofWriteErrorLogMs: 30_000,
  /** AOF: the writer's arena gathers batches in chunks of this size (a larger batch gets its own). */
  aofArenaChunkBytes: 1 * MiB,
  /** AOF: the writer keeps at most this many bytes of spare arena chunks for reuse (trimmed to what it used). */
  aofArenaSpareBytes: 64 * MiB,
  /** AOF: how often the spare chunks are trimmed to as many as the writer took in that time. */
  aofArenaSpareTrimMs: 2000,

  /** HTTP: default request body cap (config: body-limit). */
  httpBodyBytes: 1 * MiB,
  /** Queue: default cap on a job's serialized data (per queue). */
  jobDataBytes: 1 * MiB,
  /** Queue: names and ids. */
  queueNameMaxBytes: 128,
  jobIdMaxBytes: 256,
  jobNameMaxBytes: 256,
  /** Queue: jobs handed out by one lease call, and jobs in one bulk enqueue. */
  jobsPerLease: 1000,
  jobsPerBulk: 1000,
  /** Queue: lease duration bounds and default. */
  leaseMsMin: 100,
  leaseMsDefault: 30_000,
  leaseMsMax: 24 * 60 * 60 * 1000,
  /** Queue: BullMQ's priority range: 0 is none, 1 the highest, up to 2^21. */
  priorityMax: 2_097_152,
  /** Queue: delays and backoff are capped at one year. */
  delayMsMax: 365 * 24 * 60 * 60 * 1000,
  /** Queue: most attempts a job may be given, and default cap on a queue's unfinished jobs. */
  jobAttemptsMax: 1_000_000,
  queueMaxJobsDefault: 10_000_000,
  /** Queue: most jobs one listing page, clean, retry or redrive call touches. */
  jobsPerPage: 1000,
  jobsPerAdminCall: 10_000,
  /** HTTP: longest long poll. */
  longPollMaxMs: 30_000,
  /** HTTP: long polls parked at once on one connection (pipelined requests), and on the whole server. */
  longPollsPerConnection: 4,
  longPollsMax: 10_000,

  /** WebSocket: largest message a client may send (option maxPayload); larger ones close with 1009. */
  wsMaxPayloadBytes: 1 * MiB,
  /** WebSocket: queue events kept for resume with lastEventId, over all queues (option eventRingSize). */
  wsEventRingSize: 10_000,
  /** WebSocket: pushes to a connection pause while its send buffer holds more (option bufferedHighWater). */
  wsBufferedHighWaterBytes: 1 * MiB,
  /** WebSocket: ping interval; a peer that has not answered the previous ping is dropped (option pingIntervalMs). */
  wsPingIntervalMs: 30_000,
  /** WebSocket: bad messages tolerated on one connection before it is closed with 1008. */
  wsMaxErrorsBeforeClose: 10,
  /** WebSocket: job and event subscriptions one connection may hold. */
  wsSubscriptionsPerConnection: 256,
  /** WebSocket: requests of one connection awaiting their replies; beyond it, reading that client pauses. */
  wsPendingRequestsPerConnection: 1024,
  /** WebSocket: time a connection without a bearer token has to send its auth message. */
  wsAuthTimeoutMs: 10_000,
  /** WebSocket: on shutdown, time clients have to answer the close frame before they are cut. */
  wsCloseGraceMs: 1000,
});

export type Limits = typeof LIMITS;

/**
 * Relations that must hold whatever the numbers are tuned to. Throws an
 * AssertionError naming the first that fails. Run on LIMITS at load time;
 * exported so that a test can feed it a bad set.
 */
export function checkLimitRelations(limits: { readonly [K in keyof Limits]: number }): void {
  assert(limits.jobDataBytes <= limits.respMaxBulkBytes, 'a job must fit in one RESP bulk string');
  assert(limits.httpBodyBytes <= limits.respMaxBulkBytes, 'a request body must fit in one RESP bulk string');
  assert(limits.aofMaxBatchBytes >= 2 * limits.jobDataBytes, 'a batch holds at least two maximal jobs');
  assert(
    limits.leaseMsMin < limits.leaseMsDefault && limits.leaseMsDefault < limits.leaseMsMax,
    'lease bounds',
  );
  assert(limits.queueNameMaxBytes < limits.respMaxLineBytes, 'a queue name fits on one line');
  assert(limits.respPortQueryBufferBytes > limits.respMaxLineBytes, 'a query buffer holds a longest line');
  assert(limits.manifestMaxLineBytes < limits.respMaxLineBytes, 'manifest lines are short');
  assert(limits.jobsPerLease <= limits.respMaxArrayLength, 'a lease fits in one RESP array');
  assert(limits.jobsPerBulk * 4 <= limits.respMaxArrayLength, 'a bulk enqueue fits in one RESP array');
}

checkLimitRelations(LIMITS);
