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

  /** AOF: longest manifest line, as Redis's AOF manifest reader. */
  manifestMaxLineBytes: 1024,
  /** AOF: most bytes gathered into one group-commit batch before it is cut. */
  aofMaxBatchBytes: 64 * MiB,
  /** AOF: everysec postpones a write behind a pending fsync for at most this long. */
  aofMaxFsyncPostponeMs: 2000,
  /** AOF: after a write error, how often the writer retries. */
  aofWriteRetryMs: 1000,

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
  /** HTTP: longest long poll. */
  longPollMaxMs: 30_000,
});

export type Limits = typeof LIMITS;

// Relations that must hold whatever the numbers are tuned to.
assert(LIMITS.jobDataBytes <= LIMITS.respMaxBulkBytes, 'a job must fit in one RESP bulk string');
assert(LIMITS.httpBodyBytes <= LIMITS.respMaxBulkBytes, 'a request body must fit in one RESP bulk string');
assert(LIMITS.aofMaxBatchBytes >= 2 * LIMITS.jobDataBytes, 'a batch holds at least two maximal jobs');
assert(
  LIMITS.leaseMsMin < LIMITS.leaseMsDefault && LIMITS.leaseMsDefault < LIMITS.leaseMsMax,
  'lease bounds',
);
assert(LIMITS.queueNameMaxBytes < LIMITS.respMaxLineBytes, 'a queue name fits on one line');
assert(LIMITS.manifestMaxLineBytes < LIMITS.respMaxLineBytes, 'manifest lines are short');
assert(LIMITS.jobsPerLease <= LIMITS.respMaxArrayLength, 'a lease fits in one RESP array');
assert(LIMITS.jobsPerBulk * 4 <= LIMITS.respMaxArrayLength, 'a bulk enqueue fits in one RESP array');
