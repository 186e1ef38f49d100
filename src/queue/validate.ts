/**
 * Validation of everything a caller (or a record read from disk) can hand the
 * queue core: queue names, job names, ids, job options and queue configuration.
 * Each check throws a coded AofqError; none of them touches state. The same
 * functions normalize options into a canonical JSON text, so that a record's
 * options decode to exactly what the leader validated.
 */
import { AofqError } from '../errors/index.js';
import { jsonText } from '../util/json.js';
import { LIMITS } from '../util/limits.js';
import { hasLoneSurrogate } from './codec.js';
import { allDigits } from './job.js';
import type {
  BackoffOptions,
  Durability,
  JobsOptions,
  KeepJobs,
  QueueConfig,
  RateLimiterOptions,
  Retention,
} from './types.js';

const QUEUE_NAME = /^[A-Za-z0-9._:-]{1,128}$/;

/** Is `text` longer than `max` bytes in UTF-8? (A UTF-16 unit is 1 to 3 bytes: most texts need no count.) */
export function overBytes(text: string, max: number): boolean {
  return text.length > max || (text.length * 3 > max && Buffer.byteLength(text) > max);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function checkQueueName(name: unknown): string {
  if (typeof name !== 'string' || !QUEUE_NAME.test(name)) {
    throw new AofqError('AOFQ_ERR_QUEUE_INVALID_NAME');
  }
  return name;
}

function jobInvalid(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_JOB_INVALID', { reason });
}

export function checkJobName(name: unknown): string {
  if (typeof name !== 'string' || hasLoneSurrogate(name))
    throw jobInvalid('name must be a well-formed string');
  if (overBytes(name, LIMITS.jobNameMaxBytes)) {
    throw jobInvalid(`name is longer than ${LIMITS.jobNameMaxBytes} bytes`);
  }
  return name;
}

/** A job id as a caller names it (any string within the limit). */
export function checkJobId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || hasLoneSurrogate(id)) {
    throw jobInvalid('id must be a non-empty, well-formed string');
  }
  if (overBytes(id, LIMITS.jobIdMaxBytes)) {
    throw jobInvalid(`id is longer than ${LIMITS.jobIdMaxBytes} bytes`);
  }
  return id;
}

function integerIn(value: unknown, min: number, max: number, what: string, fail: (r: string) => AofqError) {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw fail(`${what} must be an integer in ${min}..${max}`);
  }
  return value;
}

function checkKeys(
  object: Record<string, unknown>,
  allowed: readonly string[],
  what: string,
  fail: (r: string) => AofqError,
) {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw fail(`unknown ${what} '${key.slice(0, 64)}'`);
  }
}

export function checkBackoff(value: unknown, fail: (r: string) => AofqError): BackoffOptions {
  if (typeof value === 'number') {
    return { type: 'fixed', delay: integerIn(value, 0, LIMITS.delayMsMax, 'backoff', fail) };
  }
  if (!isPlainObject(value)) throw fail('backoff must be a number or {type, delay, jitter}');
  checkKeys(value, ['type', 'delay', 'jitter'], 'backoff option', fail);
  if (value.type !== 'fixed' && value.type !== 'exponential') {
    throw fail("backoff.type must be 'fixed' or 'exponential'");
  }
  const backoff: BackoffOptions = { type: value.type };
  if (value.delay !== undefined)
    backoff.delay = integerIn(value.delay, 0, LIMITS.delayMsMax, 'backoff.delay', fail);
  if (value.jitter !== undefined) {
    if (typeof value.jitter !== 'number' || !(value.jitter >= 0 && value.jitter <= 1)) {
      throw fail('backoff.jitter must be a number in 0..1');
    }
    backoff.jitter = value.jitter;
  }
  return backoff;
}

export function checkRetention(value: unknown, what: string, fail: (r: string) => AofqError): Retention {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return integerIn(value, 0, Number.MAX_SAFE_INTEGER, what, fail);
  if (!isPlainObject(value)) throw fail(`${what} must be a boolean, a count or {age, count}`);
  checkKeys(value, ['age', 'count'], `${what} option`, fail);
  const keep: { age?: number; count?: number } = {};
  if (value.age !== undefined)
    keep.age = integerIn(value.age, 0, Number.MAX_SAFE_INTEGER, `${what}.age`, fail);
  if (value.count !== undefined) {
    keep.count = integerIn(value.count, 0, Number.MAX_SAFE_INTEGER, `${what}.count`, fail);
  }
  if (keep.age === undefined && keep.count === undefined) throw fail(`${what} needs age or count`);
  return keep as KeepJobs;
}

const JOB_OPTION_KEYS = [
  'jobId',
  'delay',
  'priority',
  'lifo',
  'attempts',
  'backoff',
  'removeOnComplete',
  'removeOnFail',
  'timestamp',
] as const;

/** Validated job options, split into what every job stores (canonical JSON) and the per-job parts. */
export interface CheckedJobOptions {
  /** Canonical JSON of the options without jobId and timestamp; equal options give equal texts. */
  json: string;
  jobId: string | undefined;
  timestamp: number | undefined;
}

/** Validates BullMQ job options. Unknown keys are AOFQ_ERR_JOB_INVALID. */
export function checkJobsOptions(value: unknown): CheckedJobOptions {
  if (value === undefined) return { json: '{}', jobId: undefined, timestamp: undefined };
  if (!isPlainObject(value)) throw jobInvalid('opts must be an object');
  checkKeys(value, JOB_OPTION_KEYS, 'job option', jobInvalid);
  const canonical: JobsOptions = {};
  let jobId: string | undefined;
  let timestamp: number | undefined;
  if (value.jobId !== undefined) {
    jobId = checkJobId(value.jobId);
    if (allDigits(jobId)) throw jobInvalid('a custom jobId cannot be an integer (those are server-assigned)');
  }
  if (value.timestamp !== undefined) {
    timestamp = integerIn(value.timestamp, 0, Number.MAX_SAFE_INTEGER, 'timestamp', jobInvalid);
  }
  if (value.delay !== undefined)
    canonical.delay = integerIn(value.delay, 0, LIMITS.delayMsMax, 'delay', jobInvalid);
  if (value.priority !== undefined) {
    canonical.priority = integerIn(value.priority, 0, LIMITS.priorityMax, 'priority', jobInvalid);
  }
  if (value.lifo !== undefined) {
    if (typeof value.lifo !== 'boolean') throw jobInvalid('lifo must be a boolean');
    canonical.lifo = value.lifo;
  }
  if (value.attempts !== undefined) {
    canonical.attempts = integerIn(value.attempts, 1, LIMITS.jobAttemptsMax, 'attempts', jobInvalid);
  }
  if (value.backoff !== undefined) canonical.backoff = checkBackoff(value.backoff, jobInvalid);
  if (value.removeOnComplete !== undefined) {
    canonical.removeOnComplete = checkRetention(value.removeOnComplete, 'removeOnComplete', jobInvalid);
  }
  if (value.removeOnFail !== undefined) {
    canonical.removeOnFail = checkRetention(value.removeOnFail, 'removeOnFail', jobInvalid);
  }
  return { json: JSON.stringify(canonical), jobId, timestamp };
}

/**
 * Defaults of a queue's configuration. Retention is bounded by default: the newest 1,000 completed
 * and 10,000 failed jobs are kept. maxJobs bounds unfinished jobs (waiting, prioritized, delayed, active).
 */
export const QUEUE_CONFIG_DEFAULTS: Readonly<QueueConfig> = Object.freeze({
  leaseMs: LIMITS.leaseMsDefault,
  maxAttempts: 1,
  backoff: null,
  deadLetterQueue: null,
  limiter: null,
  retention: { completed: 1000, failed: 10_000 },
  maxJobs: LIMITS.queueMaxJobsDefault,
  maxDataBytes: LIMITS.jobDataBytes,
  durability: 'default',
});

const CONFIG_KEYS = [
  'leaseMs',
  'maxAttempts',
  'backoff',
  'deadLetterQueue',
  'limiter',
  'retention',
  'maxJobs',
  'maxDataBytes',
  'durability',
] as const;

function configInvalid(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_QUEUE_INVALID_CONFIG', { reason });
}

/** Merges `input` over `base` and validates the result; returns a fresh, canonical config. */
export function checkQueueConfig(queue: string, base: QueueConfig, input: unknown): QueueConfig {
  if (!isPlainObject(input)) throw configInvalid('config must be an object');
  checkKeys(input, CONFIG_KEYS, 'config key', configInvalid);
  const next: QueueConfig = { ...base, retention: { ...base.retention } };
  if (input.leaseMs !== undefined) {
    next.leaseMs = integerIn(input.leaseMs, LIMITS.leaseMsMin, LIMITS.leaseMsMax, 'leaseMs', configInvalid);
  }
  if (input.maxAttempts !== undefined) {
    next.maxAttempts = integerIn(input.maxAttempts, 1, LIMITS.jobAttemptsMax, 'maxAttempts', configInvalid);
  }
  if (input.backoff !== undefined) {
    next.backoff = input.backoff === null ? null : checkBackoff(input.backoff, configInvalid);
  }
  if (input.deadLetterQueue !== undefined) {
    if (input.deadLetterQueue === null) next.deadLetterQueue = null;
    else {
      if (typeof input.deadLetterQueue !== 'string' || !QUEUE_NAME.test(input.deadLetterQueue)) {
        throw configInvalid('deadLetterQueue must be a valid queue name');
      }
      if (input.deadLetterQueue === queue) throw configInvalid('a queue cannot be its own dead-letter queue');
      next.deadLetterQueue = input.deadLetterQueue;
    }
  }
  if (input.limiter !== undefined) {
    if (input.limiter === null) next.limiter = null;
    else {
      if (!isPlainObject(input.limiter)) throw configInvalid('limiter must be {max, duration} or null');
      checkKeys(input.limiter, ['max', 'duration'], 'limiter key', configInvalid);
      const limiter: RateLimiterOptions = {
        max: integerIn(input.limiter.max, 1, LIMITS.respMaxArrayLength, 'limiter.max', configInvalid),
        duration: integerIn(input.limiter.duration, 1, LIMITS.delayMsMax, 'limiter.duration', configInvalid),
      };
      next.limiter = limiter;
    }
  }
  if (input.retention !== undefined) {
    if (!isPlainObject(input.retention)) throw configInvalid('retention must be {completed, failed}');
    checkKeys(input.retention, ['completed', 'failed'], 'retention key', configInvalid);
    if (input.retention.completed !== undefined) {
      next.retention.completed = checkRetention(
        input.retention.completed,
        'retention.completed',
        configInvalid,
      );
    }
    if (input.retention.failed !== undefined) {
      next.retention.failed = checkRetention(input.retention.failed, 'retention.failed', configInvalid);
    }
  }
  if (input.maxJobs !== undefined) {
    next.maxJobs = integerIn(input.maxJobs, 1, Number.MAX_SAFE_INTEGER, 'maxJobs', configInvalid);
  }
  if (input.maxDataBytes !== undefined) {
    next.maxDataBytes = integerIn(input.maxDataBytes, 2, LIMITS.jobDataBytes, 'maxDataBytes', configInvalid);
  }
  if (input.durability !== undefined) {
    const durability = input.durability as Durability;
    if (durability !== 'default' && durability !== 'fsync' && durability !== 'replicated') {
      throw configInvalid("durability must be 'default', 'fsync' or 'replicated'");
    }
    next.durability = durability;
  }
  return next;
}

export function leaseInvalid(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_LEASE_INVALID', { reason });
}

export function requestInvalid(reason: string): AofqError {
  return new AofqError('AOFQ_ERR_QUEUE_INVALID_REQUEST', { reason });
}

export function checkCount(value: unknown, fallback: number, max: number, what: string): number {
  if (value === undefined) return fallback;
  return integerIn(value, 1, max, what, requestInvalid);
}

/** An optional boolean flag of a request; absent is false. */
export function checkFlag(value: unknown, what: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw requestInvalid(`${what} must be a boolean`);
  return value;
}

export function checkDelay(value: unknown, what: string): number {
  if (value === undefined) return 0;
  return integerIn(value, 0, LIMITS.delayMsMax, what, requestInvalid);
}

export function checkLeaseMs(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  return integerIn(value, LIMITS.leaseMsMin, LIMITS.leaseMsMax, 'leaseMs', leaseInvalid);
}

export function checkToken(value: unknown): number {
  return integerIn(value, 1, Number.MAX_SAFE_INTEGER, 'token', leaseInvalid);
}

/** Serializes a JSON value for storage; throws AOFQ_ERR_JOB_INVALID on values JSON cannot hold. */
export function toJsonText(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = jsonText(value);
  } catch {
    throw jobInvalid(`${what} is not serializable as JSON`);
  }
  if (text === undefined) throw jobInvalid(`${what} is not a JSON value`);
  return text;
}
