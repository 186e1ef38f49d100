/**
 * One queue's in-memory state: its configuration, counters (ids, fencing
 * tokens, set order, rate-limit window), the job table and one ordered set per
 * job state. It owns only the structural moves (insert, detach, remove); the
 * semantics of each operation live in queues.ts.
 */
import BTreeImport from 'sorted-btree';
import { assert } from '../util/assert.js';
import { compareJobs, type Job, type SetKey, StateCode } from './job.js';
import type { QueueConfig } from './types.js';

const BTree = ((BTreeImport as unknown as { default?: unknown }).default ??
  BTreeImport) as typeof BTreeImport.default;

export type JobSet = InstanceType<typeof BTree<SetKey, undefined>>;

/** B+tree node size: small nodes keep inserts cheap; 64 keys per leaf keeps the per-job overhead low. */
const NODE_SIZE = 64;

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
  readonly jobs = new Map<string, Job>();
  readonly sets: readonly JobSet[];

  constructor(
    readonly name: string,
    public config: QueueConfig,
  ) {
    const sets: JobSet[] = [];
    for (let state = 0; state < 6; state++)
      sets.push(new BTree<SetKey, undefined>(undefined, compareJobs, NODE_SIZE));
    this.sets = sets;
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
    job.state = state;
    job.sortKey = sortKey;
    job.order = order;
    const added = this.set(state).set(job, undefined, false);
    assert(added, 'job keys are unique within a set');
  }

  /** Takes `job` out of its set (it stays in the job table). */
  detach(job: Job): void {
    const removed = this.set(job.state).delete(job);
    assert(removed, 'job is in the set of its state');
  }

  /** Removes `job` from the queue entirely. */
  remove(job: Job): void {
    this.detach(job);
    const removed = this.jobs.delete(job.id);
    assert(removed, 'job is in the job table');
  }

  first(state: StateCode): Job | undefined {
    return this.set(state).minKey() as Job | undefined;
  }
}
