/**
 * The job queue's public types: BullMQ's names where BullMQ has them (JobsOptions,
 * JobJson, JobState, BackoffOptions, KeepJobs, JobProgress, RateLimiterOptions),
 * the request union that `Queues.execute` accepts, its typed results, queue
 * configuration and the events `Queues` reports from apply.
 */

/** BullMQ's job states (v6: no `paused` state; a paused queue's jobs count as `waiting`). */
export type JobState = 'waiting' | 'prioritized' | 'delayed' | 'active' | 'completed' | 'failed';

export const JOB_STATES: readonly JobState[] = [
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'completed',
  'failed',
];

/** BullMQ's JobProgress. */
export type JobProgress = string | boolean | number | object;

/**
 * BullMQ's BackoffOptions, built-in strategies only. `delay` in ms; `jitter` in 0..1:
 * the leader picks the delay uniformly in [delay * (1 - jitter), delay].
 */
export interface BackoffOptions {
  type: 'fixed' | 'exponential';
  delay?: number;
  jitter?: number;
}

/** BullMQ's KeepJobs: keep the newest `count` jobs, and/or those finished less than `age` seconds ago. */
export type KeepJobs = { count: number } | { age: number; count?: number };

/** BullMQ's RateLimiterOptions: at most `max` leases per `duration` ms (a fixed window). */
export interface RateLimiterOptions {
  max: number;
  duration: number;
}

/** The subset of BullMQ's JobsOptions that aofq implements. Any other key is AOFQ_ERR_JOB_INVALID. */
export interface JobsOptions {
  jobId?: string;
  delay?: number;
  priority?: number;
  lifo?: boolean;
  attempts?: number;
  backoff?: number | BackoffOptions;
  removeOnComplete?: boolean | number | KeepJobs;
  removeOnFail?: boolean | number | KeepJobs;
  timestamp?: number;
}

/** Where a dead-lettered job came from (aofq's addition to JobJson). */
export interface DeadLetterOrigin {
  queue: string;
  id: string;
  attemptsMade: number;
  failedReason: string;
  stacktrace: string[];
}

/**
 * BullMQ's JobJson: `data`, `returnvalue` and `stacktrace` are JSON texts, as
 * BullMQ stores them. `deadLetter` is aofq's addition.
 */
export interface JobJson {
  id: string;
  name: string;
  data: string;
  opts: JobsOptions;
  progress: JobProgress;
  attemptsMade: number;
  attemptsStarted: number;
  stalledCounter: number;
  timestamp: number;
  processedOn?: number;
  finishedOn?: number;
  delay: number;
  priority: number;
  returnvalue: string;
  failedReason: string;
  stacktrace: string;
  processedBy?: string;
  deduplicationId?: string;
  deadLetter?: DeadLetterOrigin;
}

export type Durability = 'default' | 'fsync' | 'replicated';

/** What to keep of finished jobs: `true` removes at once, `false` keeps all, a number keeps the newest N. */
export type Retention = boolean | number | KeepJobs;

/**
 * A queue's configuration. Defaults (QUEUE_CONFIG_DEFAULTS): leaseMs 30,000; maxAttempts 1 (a job's
 * `attempts` option overrides it); no backoff; no dead-letter queue; no rate limiter; retention keeps
 * the newest 1,000 completed and 10,000 failed jobs (bounded by default); maxJobs 1,000,000 unfinished
 * jobs; maxDataBytes LIMITS.jobDataBytes (1 MiB); durability 'default'.
 */
export interface QueueConfig {
  leaseMs: number;
  maxAttempts: number;
  backoff: BackoffOptions | null;
  deadLetterQueue: string | null;
  limiter: RateLimiterOptions | null;
  retention: { completed: Retention; failed: Retention };
  maxJobs: number;
  maxDataBytes: number;
  durability: Durability;
}

export type QueueConfigInput = Partial<QueueConfig>;

export interface AddJobInput {
  name: string;
  /** Any JSON value; `undefined` is stored as `{}`. */
  data?: unknown;
  opts?: JobsOptions;
}

/** Requests, discriminated by `op`. Every request names its queue. */
export type QueueRequest =
  | { op: 'add'; queue: string; jobs: AddJobInput[] }
  | { op: 'lease'; queue: string; count?: number; leaseMs?: number; consumer?: string }
  | { op: 'extend'; queue: string; id: string; token: number; leaseMs?: number }
  | { op: 'ack'; queue: string; id: string; token: number; returnvalue?: unknown }
  | {
      op: 'nack';
      queue: string;
      id: string;
      token: number;
      failedReason: string;
      stacktrace?: string;
      delayMs?: number;
      /** false: BullMQ's UnrecoverableError, the job fails at once. */
      retry?: boolean;
    }
  | { op: 'release'; queue: string; id: string; token: number; delayMs?: number }
  | { op: 'progress'; queue: string; id: string; token?: number; progress: JobProgress }
  | { op: 'getJob'; queue: string; id: string }
  | { op: 'listJobs'; queue: string; state: JobState; cursor?: string; limit?: number }
  | { op: 'getJobCounts'; queue: string }
  | { op: 'pause'; queue: string }
  | { op: 'resume'; queue: string }
  | { op: 'drain'; queue: string }
  | { op: 'clean'; queue: string; graceMs: number; limit: number; state: JobState }
  | { op: 'obliterate'; queue: string; force?: boolean }
  | { op: 'retryJobs'; queue: string; count?: number }
  | {
      /** BullMQ's Job.retry: one finished job back to waiting (or prioritized). */
      op: 'retryJob';
      queue: string;
      id: string;
      /** The state the job must be in: 'failed' (default, as BullMQ) or 'completed'. */
      state?: 'failed' | 'completed';
      /** Start counting attempts again (BullMQ's resetAttemptsMade; default false). */
      resetAttemptsMade?: boolean;
      /** BullMQ's resetAttemptsStarted; default false. */
      resetAttemptsStarted?: boolean;
    }
  | { op: 'promote'; queue: string; id?: string; count?: number }
  | { op: 'remove'; queue: string; id: string }
  | { op: 'redrive'; queue: string; count?: number }
  | { op: 'setConfig'; queue: string; config: QueueConfigInput }
  | { op: 'getConfig'; queue: string };

export type QueueOp = QueueRequest['op'];

export interface LeasedJob {
  job: JobJson;
  token: number;
  leaseUntil: number;
}

export interface JobCounts {
  waiting: number;
  prioritized: number;
  delayed: number;
  active: number;
  completed: number;
  failed: number;
  paused: boolean;
}

export interface ResultMap {
  add: { jobs: Array<{ id: string; duplicate: boolean }> };
  lease: { jobs: LeasedJob[]; rateLimitedUntil: number | null; paused: boolean };
  extend: { leaseUntil: number };
  ack: { id: string };
  nack: { id: string; state: JobState | 'dead-lettered'; retryAt: number | null };
  release: { id: string; state: JobState };
  progress: { id: string };
  getJob: { job: JobJson; state: JobState; leaseUntil: number | null };
  listJobs: { jobs: JobJson[]; cursor: string | null };
  getJobCounts: JobCounts;
  pause: { paused: true };
  resume: { paused: false };
  drain: { removed: number };
  clean: { ids: string[] };
  obliterate: { removed: number };
  retryJobs: { ids: string[] };
  retryJob: { id: string; state: JobState };
  promote: { ids: string[] };
  remove: { id: string };
  redrive: { moved: Array<{ from: string; queue: string; id: string }> };
  setConfig: { config: QueueConfig };
  getConfig: { config: QueueConfig };
}

export type QueueResult<R extends QueueRequest> = ResultMap[R['op']];

/** Events reported from apply (also on replay), with BullMQ's QueueEvents names. */
export type QueueEvent =
  | { event: 'added'; jobId: string; name: string }
  | { event: 'waiting'; jobId: string; prev?: JobState }
  | { event: 'active'; jobId: string; prev: JobState }
  | { event: 'progress'; jobId: string; data: JobProgress }
  | { event: 'completed'; jobId: string; returnvalue: string; prev: 'active' }
  | { event: 'failed'; jobId: string; failedReason: string; prev: JobState }
  | { event: 'delayed'; jobId: string; delay: number }
  | { event: 'stalled'; jobId: string }
  | { event: 'removed'; jobId: string; prev: JobState }
  | { event: 'drained' }
  | { event: 'paused' }
  | { event: 'resumed' }
  | { event: 'cleaned'; count: number }
  | { event: 'retries-exhausted'; jobId: string; attemptsMade: number };
