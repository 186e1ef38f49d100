/**
 * One job in memory, kept compact: a fixed-shape class, its data as JSON text,
 * its name and options shared between jobs (interned), and the rarely used
 * fields (progress, result, failure, dead-letter origin) in one optional object.
 * A job sits in exactly one ordered set of its queue; `sortKey` and `order` are
 * its key there (see STATE_SORT_KEY), so the sets need no key objects of their own.
 */
import type { AofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import type {
  BackoffOptions,
  DeadLetterOrigin,
  JobJson,
  JobProgress,
  JobState,
  JobsOptions,
  Retention,
} from './types.js';

/** A job's state as a small integer (a Smi field), indexes into STATE_NAMES. */
export enum StateCode {
  Waiting = 0,
  Prioritized = 1,
  Delayed = 2,
  Active = 3,
  Completed = 4,
  Failed = 5,
}

export const STATE_NAMES: readonly JobState[] = [
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'completed',
  'failed',
];

export function stateCode(state: JobState): StateCode {
  const code = STATE_NAMES.indexOf(state);
  assert(code >= 0, 'state name');
  return code as StateCode;
}

/**
 * What `sortKey` means in each state: waiting 0 (then `order`, negative for lifo jobs);
 * prioritized the priority; delayed the due time; active the lease deadline; completed and
 * failed the finish time. `order` is a per-queue sequence number, unique within a set.
 */
export const STATE_SORT_KEY: readonly string[] = [
  '0',
  'priority',
  'dueAt',
  'leaseUntil',
  'finishedOn',
  'finishedOn',
];

/** Job options shared by every job with the same canonical options text. Immutable. */
export class JobOptions {
  readonly attempts: number;
  readonly backoff: BackoffOptions | null;
  readonly delay: number;
  readonly priority: number;
  readonly lifo: boolean;
  readonly removeOnComplete: Retention | null;
  readonly removeOnFail: Retention | null;

  /** The parsed options, deeply frozen; toJson copies it shallowly. */
  readonly template: Readonly<JobsOptions>;

  constructor(readonly json: string) {
    const opts = JSON.parse(json) as JobsOptions;
    this.template = deepFreeze(JSON.parse(json) as JobsOptions);
    this.attempts = opts.attempts ?? 0;
    this.backoff =
      typeof opts.backoff === 'number' ? { type: 'fixed', delay: opts.backoff } : (opts.backoff ?? null);
    this.delay = opts.delay ?? 0;
    this.priority = opts.priority ?? 0;
    this.lifo = opts.lifo ?? false;
    this.removeOnComplete = opts.removeOnComplete ?? null;
    this.removeOnFail = opts.removeOnFail ?? null;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Bounded intern tables: equal strings share one copy; beyond the bound, values are simply not shared. */
export class Interner<T> {
  private readonly table = new Map<string, T>();
  constructor(
    private readonly make: (key: string) => T,
    private readonly maxEntries: number,
  ) {}

  get(key: string): T {
    const found = this.table.get(key);
    if (found !== undefined) return found;
    const made = this.make(key);
    if (this.table.size < this.maxEntries) this.table.set(key, made);
    return made;
  }
}

/** The rarely set fields of a job, allocated on first use. */
export class JobExtra {
  progress = '0';
  returnvalue = 'null';
  failedReason = '';
  stacktrace: string[] = [];
  processedBy = '';
  deadLetter: DeadLetterOrigin | null = null;
}

/**
 * Is `text` a non-empty run of ASCII digits? A loop, not /^[0-9]+$/: ids are short, and the regex
 * builtin's call costs more than the loop (it ran four times per queue cycle).
 */
export function allDigits(text: string): boolean {
  const n = text.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** BullMQ's default stackTraceLimit: a job keeps its last 10 stack traces. */
export const STACKTRACE_LIMIT = 10;

export class Job {
  state: StateCode = StateCode.Waiting;
  sortKey = 0;
  order = 0;
  delay = 0;
  attemptsMade = 0;
  attemptsStarted = 0;
  stalledCounter = 0;
  processedOn = 0;
  finishedOn = 0;
  token = 0;
  extra: JobExtra | null = null;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly opts: JobOptions,
    readonly data: string,
    public timestamp: number,
  ) {}

  /** Server-assigned ids are integers; a custom id (opts.jobId) never is. */
  get customId(): boolean {
    return !allDigits(this.id);
  }

  get priority(): number {
    return this.opts.priority;
  }

  mutableExtra(): JobExtra {
    if (this.extra === null) this.extra = new JobExtra();
    return this.extra;
  }

  toJson(): JobJson {
    const opts: JobsOptions = { ...this.opts.template };
    if (this.customId) opts.jobId = this.id;
    opts.timestamp = this.timestamp;
    const extra = this.extra;
    const json: JobJson = {
      id: this.id,
      name: this.name,
      data: this.data,
      opts,
      progress: extra === null ? 0 : (JSON.parse(extra.progress) as JobProgress),
      attemptsMade: this.attemptsMade,
      attemptsStarted: this.attemptsStarted,
      stalledCounter: this.stalledCounter,
      timestamp: this.timestamp,
      delay: this.delay,
      priority: this.priority,
      returnvalue: extra === null ? 'null' : extra.returnvalue,
      failedReason: extra === null ? '' : extra.failedReason,
      stacktrace: extra === null ? '[]' : JSON.stringify(extra.stacktrace),
    };
    if (this.processedOn !== 0) json.processedOn = this.processedOn;
    if (this.finishedOn !== 0) json.finishedOn = this.finishedOn;
    if (extra !== null && extra.processedBy !== '') json.processedBy = extra.processedBy;
    if (extra?.deadLetter)
      json.deadLetter = { ...extra.deadLetter, stacktrace: [...extra.deadLetter.stacktrace] };
    return json;
  }

  /** The mutable fields, for snapshots and digests, in a fixed order. */
  mutableFields(): unknown[] {
    return [
      this.state,
      this.sortKey,
      this.order,
      this.timestamp,
      this.delay,
      this.attemptsMade,
      this.attemptsStarted,
      this.stalledCounter,
      this.processedOn,
      this.finishedOn,
      this.token,
      this.extraFields(),
    ];
  }

  /** Restores the fields written by mutableFields (snapshot records); `fail` reports malformed input. */
  restoreMutableFields(fields: unknown, fail: (reason: string) => AofqError): void {
    if (!Array.isArray(fields) || fields.length !== 12) throw fail('job fields must be an array of 12');
    this.restoreNumbers(fields, fail);
    this.restoreExtra(fields[11], fail);
  }

  /**
   * The first JOB_NUMBER_FIELDS entries of mutableFields, from any array-like
   * (a parsed JSON array, or a binary snapshot's numbers): every one a safe
   * integer, the state a known code.
   */
  restoreNumbers(numbers: ArrayLike<unknown>, fail: (reason: string) => AofqError): void {
    for (let i = 0; i < JOB_NUMBER_FIELDS; i++) {
      const n = numbers[i];
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw fail('job fields must be integers');
    }
    const n = numbers as ArrayLike<number>;
    const state = n[0] as number;
    if (state < 0 || state > 5) throw fail('bad job state');
    this.state = state as StateCode;
    this.sortKey = n[1] as number;
    this.order = n[2] as number;
    this.timestamp = n[3] as number;
    this.delay = n[4] as number;
    this.attemptsMade = n[5] as number;
    this.attemptsStarted = n[6] as number;
    this.stalledCounter = n[7] as number;
    this.processedOn = n[8] as number;
    this.finishedOn = n[9] as number;
    this.token = n[10] as number;
  }

  /** The last entry of mutableFields: null, or [progress, returnvalue, failedReason, stacktrace, processedBy, deadLetter]. */
  restoreExtra(extra: unknown, fail: (reason: string) => AofqError): void {
    if (extra === null) {
      this.extra = null;
      return;
    }
    if (!Array.isArray(extra) || extra.length !== 6) throw fail('job extra must be an array of 6');
    const [progress, returnvalue, failedReason, stacktrace, processedBy, deadLetter] = extra;
    if (typeof progress !== 'string' || typeof returnvalue !== 'string' || typeof failedReason !== 'string') {
      throw fail('job extra texts');
    }
    if (!Array.isArray(stacktrace) || !stacktrace.every((s) => typeof s === 'string'))
      throw fail('stacktrace');
    if (typeof processedBy !== 'string') throw fail('processedBy');
    const restored = new JobExtra();
    restored.progress = progress;
    restored.returnvalue = returnvalue;
    restored.failedReason = failedReason;
    restored.stacktrace = stacktrace as string[];
    restored.processedBy = processedBy;
    restored.deadLetter = deadLetter === null ? null : checkDeadLetter(deadLetter, fail);
    this.extra = restored;
  }

  /** mutableFields' last entry (the rare fields), or null. */
  extraFields(): unknown[] | null {
    const extra = this.extra;
    return extra === null
      ? null
      : [
          extra.progress,
          extra.returnvalue,
          extra.failedReason,
          extra.stacktrace,
          extra.processedBy,
          extra.deadLetter,
        ];
  }
}

/** How many of mutableFields' entries are numbers (all but the last). */
export const JOB_NUMBER_FIELDS = 11;

export function checkDeadLetter(value: unknown, fail: (reason: string) => AofqError): DeadLetterOrigin {
  if (typeof value !== 'object' || value === null) throw fail('deadLetter must be an object');
  const origin = value as Record<string, unknown>;
  if (
    typeof origin.queue !== 'string' ||
    typeof origin.id !== 'string' ||
    typeof origin.attemptsMade !== 'number' ||
    typeof origin.failedReason !== 'string' ||
    !Array.isArray(origin.stacktrace) ||
    !origin.stacktrace.every((s) => typeof s === 'string')
  ) {
    throw fail('deadLetter fields');
  }
  return {
    queue: origin.queue,
    id: origin.id,
    attemptsMade: origin.attemptsMade,
    failedReason: origin.failedReason,
    stacktrace: origin.stacktrace as string[],
  };
}

/** The one comparator of every job set: sortKey, then order. */
export function compareJobs(a: SetKey, b: SetKey): number {
  return a.sortKey - b.sortKey || a.order - b.order;
}

/** What the ordered sets compare: a Job, or a probe built from a cursor. */
export interface SetKey {
  readonly sortKey: number;
  readonly order: number;
}
