/**
 * One queue's in-memory state: its configuration, counters (ids, fencing
 * tokens, set order, rate-limit window), the job table and one ordered set per
 * job state. It owns only the structural moves (insert, detach, remove); the
 * semantics of each operation live in queues.ts. Every move marks the queue
 * for Queues' deadline index, which then looks again at this queue alone.
 */
import { assert } from '../util/assert.js';
import { type Job, StateCode } from './job.js';
import { JobSet } from './job-set.js';
import { JobTable } from './job-table.js';
import type { QueueConfig } from './types.js';

export class QueueState {
  paused = false;
  /** Last server-assigned job id. */
  idCounter = 0;
  /** Last fencing token handed out. */
  tokenCounter = 0;
  /** Last `order` given to a job entering a set (FIFO), and the last (negative) one given to a lifo job. */
  orderCounter = 0;
  lifoCounter = 0;
  /** Rate limiter: start of the current fixed window (-1: none yet) and leases granted in it. */
  windowStart = -1;
  windowCount = 0;
  readonly jobs = new JobTable();
  readonly sets: readonly JobSet[];
  /** Queues' deadline index: this queue's entry in it (null when it has no deadline), and whether to recompute it. */
  deadlineEntry: DeadlineEntry | null = null;
  deadlineDirty = false;
  /** The last rate-limit reopening that a tick reported (leader only, not logged): no deadline any more. */
  reportedReopening = -1;

  constructor(
    readonly name: string,
    public config: QueueConfig,
    /** Unique per Queues instance: orders index entries with equal deadlines. */
    readonly ordinal: number,
    private readonly onDirty: (queue: QueueState) => void,
  ) {
    const sets: JobSet[] = [];
    for (let state = 0; state < 6; state++) sets.push(new JobSet());
    this.sets = sets;
  }

  /** Something that may move this queue's deadline changed: the index recomputes it before its next use. */
  markDirty(): void {
    if (this.deadlineDirty) return;
    this.deadlineDirty = true;
    this.onDirty(this);
  }

  set(state: StateCode): JobSet {
    const set = this.sets[state];
    assert(set !== undefined, 'state set');
    return set;
  }

  /** Jobs not yet finished: what maxJobs bounds. */
  unfinished(): number {
    return (
      this.set(StateCode.Waiting).size +
      this.set(StateCode.Prioritized).size +
      this.set(StateCode.Delayed).size +
      this.set(StateCode.Active).size
    );
  }

  ready(): number {
    return this.set(StateCode.Waiting).size + this.set(StateCode.Prioritized).size;
  }

  nextOrder(): number {
    this.orderCounter++;
    return this.orderCounter;
  }

  /** Puts `job` into the set of `state` under (sortKey, order). */
  place(job: Job, state: StateCode, sortKey: number, order: number = this.nextOrder()): void {
    this.assign(job, state, sortKey, order);
    const added = this.set(state).add(job);
    assert(added, 'job keys are unique within a set');
    this.markDirty();
  }

  /**
   * Gives `job` the state and keys that place() would, without entering the set: for a job that
   * finishes under a retention that keeps none, removed right after (forget()). The counters move
   * as place() moves them, so the state evolves exactly as if the job had passed through its set.
   */
  assign(job: Job, state: StateCode, sortKey: number, order: number = this.nextOrder()): void {
    job.state = state;
    job.sortKey = sortKey;
    job.order = order;
  }

  /** Takes `job` out of its set (it stays in the job table). */
  detach(job: Job): void {
    const removed = this.set(job.state).delete(job);
    assert(removed, 'job is in the set of its state');
    this.markDirty();
  }

  /** Removes `job` from the queue entirely. */
  remove(job: Job): void {
    this.detach(job);
    this.forget(job);
  }

  /** Removes a job that is in no set (detached, or never placed) from the job table. */
  forget(job: Job): void {
    const removed = this.jobs.delete(job.id);
    assert(removed, 'job is in the job table');
  }

  first(state: StateCode): Job | undefined {
    return this.set(state).minKey() as Job | undefined;
  }
}

/** A queue's entry in the deadline index: keyed like a job (sortKey = the deadline, order = the queue's ordinal). */
export interface DeadlineEntry {
  readonly sortKey: number;
  readonly order: number;
  readonly queue: QueueState;
}
