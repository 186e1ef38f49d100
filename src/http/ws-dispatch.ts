/**
 * Credit-based job pushes of the WebSocket API, one dispatcher per queue.
 * A subscription has `prefetch` credits; each job pushed to its connection
 * takes one, and the credit returns when the job leaves the lease (ack,
 * nack, release, expiry: seen as queue events, so at once). A dispatcher
 * leases for all its subscriptions with credit at once, in one lease record,
 * and deals the jobs out one at a time in round-robin order, starting after
 * the subscription served last: several consumers share a queue fairly.
 *
 * No polling: it runs when a subscription is added, when a credit returns,
 * when a connection's send buffer drains, and on the queue events after
 * which a job may be ready ('added', 'waiting', 'resumed', 'stalled'); a
 * rate-limited queue sets one timer for its window's reopening. A connection
 * whose send buffer is above the high-water mark takes no jobs (its
 * `pushAllowance` is 0), so a consumer that does not read holds a bounded
 * number of leases.
 */
import type { AofqNode } from '../node/node.js';
import type { LeasedJob, QueueEvent } from '../queue/types.js';
import { assert } from '../util/assert.js';
import { ChurnMap } from '../util/churn-map.js';
import { LIMITS } from '../util/limits.js';
import type { Logger } from '../util/logger.js';

/** What a dispatcher needs from a connection. */
export interface DispatchTarget {
  /** Consumer name recorded on leased jobs (BullMQ's processedBy). */
  readonly name: string;
  readonly open: boolean;
  /** Jobs that may be pushed now, by the send buffer's room (0 while congested). */
  pushAllowance(): number;
  push(queue: string, leased: LeasedJob): void;
  /** Several leases of one round at once (subscriptions made with `batch`). */
  pushMany(queue: string, leased: readonly LeasedJob[]): void;
  /** Leases this connection holds: queue → job id → token. */
  readonly holds: Map<string, ChurnMap<string, number>>;
}

export class Subscription {
  active = true;
  constructor(
    readonly target: DispatchTarget,
    readonly queue: string,
    readonly prefetch: number,
    readonly leaseMs: number | undefined,
    /** Push each round's jobs as one `jobs` message. */
    readonly batch: boolean = false,
  ) {
    assert(Number.isSafeInteger(prefetch) && prefetch >= 1 && prefetch <= LIMITS.jobsPerLease, 'prefetch');
  }

  get credit(): number {
    return this.prefetch - (this.target.holds.get(this.queue)?.size ?? 0);
  }
}

/** Events after which a lease may find a job. */
const WAKING_EVENTS: ReadonlySet<string> = new Set(['added', 'waiting', 'resumed', 'stalled']);
/** Events after which a job is no longer under the lease it had. */
const LEASE_ENDING_EVENTS: ReadonlySet<string> = new Set([
  'completed',
  'failed',
  'stalled',
  'waiting',
  'delayed',
  'removed',
]);
/** Lease rounds in one run before yielding to the event loop. */
const ROUNDS_PER_RUN = 64;
/** After a failed lease (the disk refuses writes, ...), the next try waits this long. */
const RETRY_AFTER_ERROR_MS = 1000;

type QueueRunner = Pick<AofqNode, 'queue'>;

/** processedBy of one lease: the connection's name when one connection gets all its jobs, else 'ws'. */
function consumerName(group: readonly Subscription[]): string {
  const first = group[0]?.target;
  return first !== undefined && group.every((slot) => slot.target === first) ? first.name : 'ws';
}

export class QueueDispatcher {
  private readonly subscribers: Subscription[] = [];
  /** Index in `subscribers` of the one served first in the next round. */
  private cursor = 0;
  private readonly holders = new ChurnMap<string, { target: DispatchTarget; token: number }>();
  private running = false;
  private again = false;
  private scheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopped = false;

  constructor(
    readonly queue: string,
    private readonly node: QueueRunner,
    private readonly logger: Logger,
  ) {}

  get idle(): boolean {
    return this.subscribers.length === 0 && this.holders.size === 0 && !this.running;
  }

  get subscriberCount(): number {
    return this.subscribers.length;
  }

  add(subscription: Subscription): void {
    assert(subscription.queue === this.queue, 'subscription queue');
    this.subscribers.push(subscription);
    this.schedule();
  }

  remove(subscription: Subscription): void {
    subscription.active = false;
    const index = this.subscribers.indexOf(subscription);
    if (index < 0) return;
    this.subscribers.splice(index, 1);
    if (index < this.cursor) this.cursor--;
    if (this.cursor >= this.subscribers.length) this.cursor = 0;
  }

  /** Forget a job's lease (it ended); its credit returns. */
  unhold(id: string, token?: number): void {
    const holder = this.holders.get(id);
    if (holder === undefined || (token !== undefined && holder.token !== token)) return;
    this.holders.delete(id);
    const held = holder.target.holds.get(this.queue);
    held?.delete(id);
    if (held !== undefined && held.size === 0) holder.target.holds.delete(this.queue);
    if (this.subscribers.length > 0) this.schedule();
  }

  /** The leases `target` holds here, forgotten; returned so the caller may release them. */
  dropTarget(target: DispatchTarget): Array<{ id: string; token: number }> {
    const held = target.holds.get(this.queue);
    target.holds.delete(this.queue);
    const dropped: Array<{ id: string; token: number }> = [];
    for (const [id, token] of held ?? []) {
      if (this.holders.get(id)?.target === target) this.holders.delete(id);
      dropped.push({ id, token });
    }
    return dropped;
  }

  /** A queue event of this queue, applied live (synchronously inside apply: no commands here). */
  onEvent(event: QueueEvent): void {
    if ('jobId' in event && LEASE_ENDING_EVENTS.has(event.event)) this.unhold(event.jobId);
    if (WAKING_EVENTS.has(event.event) && this.subscribers.length > 0) this.schedule();
  }

  /**
   * Run soon (coalesced): once the current callback's synchronous work is done
   * (a whole socket read of enqueues or acks), in the same event-loop turn. The
   * lease then joins the same AOF batch as the adds or acks that woke it, so
   * the pushes leave with their replies, one write and one fsync for both.
   */
  schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    process.nextTick(this.scheduledRun);
  }

  private readonly scheduledRun = (): void => {
    this.scheduled = false;
    void this.run();
  };

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private wakeAt(at: number): void {
    if (this.timer !== null && at >= this.timerAt) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.schedule();
      },
      Math.max(1, at - Date.now()),
    );
    this.timer.unref();
  }

  private async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      for (let round = 0; round < ROUNDS_PER_RUN && !this.stopped; round++) {
        this.again = false;
        const slots = this.plan();
        if (slots.length === 0) return;
        const granted = await this.leaseFor(slots);
        if (granted < slots.length && !this.again) return;
      }
      this.again = true;
    } catch (err) {
      this.logger.warn({ queue: this.queue, err: String(err) }, 'websocket push: lease failed');
      this.again = false;
      this.wakeAt(Date.now() + RETRY_AFTER_ERROR_MS);
    } finally {
      this.running = false;
      if (this.again) this.schedule();
    }
  }

  /**
   * One round's slots: subscriptions in round-robin order from the cursor, one
   * slot each per pass, each up to min(credit, allowance), at most one lease's worth.
   */
  private plan(): Subscription[] {
    const count = this.subscribers.length;
    const room: number[] = [];
    const order: Subscription[] = [];
    for (let i = 0; i < count; i++) {
      const subscription = this.subscribers[(this.cursor + i) % count] as Subscription;
      if (!subscription.active || !subscription.target.open) continue;
      const allowance = Math.min(subscription.credit, subscription.target.pushAllowance());
      if (allowance <= 0) continue;
      order.push(subscription);
      room.push(allowance);
    }
    const slots: Subscription[] = [];
    for (let pass = 0; slots.length < LIMITS.jobsPerLease && pass < LIMITS.jobsPerLease; pass++) {
      let added = false;
      for (let i = 0; i < order.length && slots.length < LIMITS.jobsPerLease; i++) {
        if ((room[i] as number) <= 0) continue;
        room[i] = (room[i] as number) - 1;
        slots.push(order[i] as Subscription);
        added = true;
      }
      if (!added) break;
    }
    return slots;
  }

  /** Lease jobs for the slots (one lease per distinct leaseMs) and deal them out. Returns jobs granted. */
  private async leaseFor(slots: Subscription[]): Promise<number> {
    const groups = new Map<number | undefined, Subscription[]>();
    for (const slot of slots) {
      const group = groups.get(slot.leaseMs);
      if (group === undefined) groups.set(slot.leaseMs, [slot]);
      else group.push(slot);
    }
    let granted = 0;
    for (const [leaseMs, group] of groups) {
      const result = await this.node.queue({
        op: 'lease',
        queue: this.queue,
        count: group.length,
        ...(leaseMs === undefined ? {} : { leaseMs }),
        consumer: consumerName(group),
      });
      if (result.rateLimitedUntil !== null) this.wakeAt(result.rateLimitedUntil);
      // Batch subscriptions collect their jobs of this round and get them in one message.
      let batches: Map<Subscription, LeasedJob[]> | null = null;
      result.jobs.forEach((leased, index) => {
        const slot = group[index] as Subscription;
        if (!this.deal(slot, leased) || !slot.batch) return;
        batches ??= new Map();
        const list = batches.get(slot);
        if (list === undefined) batches.set(slot, [leased]);
        else list.push(leased);
      });
      if (batches !== null)
        for (const [slot, list] of batches as Map<Subscription, LeasedJob[]>)
          slot.target.pushMany(this.queue, list);
      granted += result.jobs.length;
      const last = group[result.jobs.length - 1];
      if (last !== undefined) {
        const at = this.subscribers.indexOf(last);
        if (at >= 0) this.cursor = (at + 1) % this.subscribers.length;
      }
      if (result.jobs.length < group.length) break;
    }
    return granted;
  }

  /** Record the lease as held by the subscription's connection and push it (unless `batch`: the caller does). False when given back. */
  private deal(subscription: Subscription, leased: LeasedJob): boolean {
    const target = subscription.target;
    if (!subscription.active || !target.open) {
      // Unsubscribed or gone while the lease was being made durable: give the job back.
      this.giveBack(leased.job.id, leased.token);
      return false;
    }
    let held = target.holds.get(this.queue);
    if (held === undefined) {
      held = new ChurnMap();
      target.holds.set(this.queue, held);
    }
    held.set(leased.job.id, leased.token);
    this.holders.set(leased.job.id, { target, token: leased.token });
    if (!subscription.batch) target.push(this.queue, leased);
    return true;
  }

  /** Release a lease nobody will work on; errors (the lease ended anyway, shutdown) are logged. */
  giveBack(id: string, token: number): void {
    this.node.queue({ op: 'release', queue: this.queue, id, token }).catch((err: unknown) => {
      this.logger.debug({ queue: this.queue, id, err: String(err) }, 'websocket: release failed');
    });
  }
}
