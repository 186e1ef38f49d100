/**
 * The WebSocket API's event ring: the last N queue events of this server
 * process, over all queues, each with an id that increases by one per event
 * (global, not per queue; ids restart at 1 with the process). A client that
 * reconnects with `lastEventId` is sent what it missed from here; when the
 * ring has evicted an event of that queue newer than `lastEventId`, the
 * client is told of the gap first. Entries of one queue are chained, so a
 * stream follows its queue without scanning the others' events. Memory is
 * bounded by the ring size, plus one number per queue that has had an event
 * evicted (itself bounded).
 */
import type { QueueEvent } from '../queue/types.js';
import { assert, assertUint } from '../util/assert.js';

export interface RingEntry {
  readonly id: number;
  readonly queue: string;
  readonly event: QueueEvent;
  /** Id of the next event of the same queue (0: none yet). */
  nextInQueue: number;
  /** The `event` message's JSON text, built on first send and shared by every stream. */
  text: string | null;
}

export type GapReason = 'evicted' | 'unknown-id' | 'slow-consumer';

/** How many queues the eviction map remembers before it falls back to a conservative floor. */
const MAX_EVICTED_QUEUES = 10_000;

export class EventRing {
  private readonly entries: Array<RingEntry | undefined>;
  /** Id the next event gets. */
  private nextId = 1;
  /** Newest id per queue among the events the ring holds. */
  private readonly newestByQueue = new Map<string, number>();
  /** Newest evicted id per queue: a client behind it has missed events. */
  private readonly evicted = new Map<string, number>();
  /** For queues the eviction map forgot: any id below this floor may have missed events. */
  private evictedFloor = 0;

  constructor(readonly capacity: number) {
    assert(Number.isSafeInteger(capacity) && capacity >= 1, 'event ring capacity');
    this.entries = new Array(capacity);
  }

  /** Id of the newest event (0 when none yet). */
  get newestId(): number {
    return this.nextId - 1;
  }

  /** Id of the oldest event the ring holds (newestId + 1 when empty). */
  get oldestId(): number {
    return Math.max(1, this.nextId - this.capacity);
  }

  push(queue: string, event: QueueEvent): RingEntry {
    const slot = this.nextId % this.capacity;
    const old = this.entries[slot];
    if (old !== undefined) {
      if (this.evicted.size >= MAX_EVICTED_QUEUES && !this.evicted.has(old.queue)) {
        // Forget the per-queue detail; every id up to here now counts as possibly missed.
        this.evicted.clear();
        this.evictedFloor = old.id;
      }
      this.evicted.set(old.queue, old.id);
      if (this.newestByQueue.get(old.queue) === old.id) this.newestByQueue.delete(old.queue);
    }
    const entry: RingEntry = { id: this.nextId, queue, event, nextInQueue: 0, text: null };
    const previous = this.newestByQueue.get(queue);
    if (previous !== undefined) {
      const before = this.get(previous);
      assert(before !== undefined && before.queue === queue, 'event ring chain');
      before.nextInQueue = entry.id;
    }
    this.newestByQueue.set(queue, entry.id);
    this.entries[slot] = entry;
    this.nextId++;
    return entry;
  }

  /** The entry with this id, if the ring still holds it. */
  get(id: number): RingEntry | undefined {
    if (id < this.oldestId || id > this.newestId) return undefined;
    const entry = this.entries[id % this.capacity];
    assert(entry !== undefined && entry.id === id, 'event ring slot');
    return entry;
  }

  /** Were events of `queue` newer than `lastSeen` evicted? */
  lostAfter(queue: string, lastSeen: number): boolean {
    return lastSeen < (this.evicted.get(queue) ?? this.evictedFloor);
  }

  /**
   * Where a stream of `queue` resumes after `lastEventId`: the id it has seen,
   * and why events are lost, if they are ('evicted': the ring dropped some;
   * 'unknown-id': this process never gave out that id, as after a restart).
   */
  resume(queue: string, lastEventId: number): { lastSeen: number; gap: GapReason | null } {
    assertUint(lastEventId, 'lastEventId');
    if (lastEventId > this.newestId) return { lastSeen: this.oldestId - 1, gap: 'unknown-id' };
    if (this.lostAfter(queue, lastEventId)) return { lastSeen: this.oldestId - 1, gap: 'evicted' };
    return { lastSeen: lastEventId, gap: null };
  }

  /** The first event of `queue` after `lastSeen` that the ring holds, or undefined. */
  nextFor(queue: string, lastSeen: number): RingEntry | undefined {
    const seen = this.get(lastSeen);
    if (seen !== undefined && seen.queue === queue) {
      return seen.nextInQueue === 0 ? undefined : this.get(seen.nextInQueue);
    }
    // Not on the chain (a fresh cursor): scan forward once; bounded by the ring size.
    for (let id = Math.max(lastSeen + 1, this.oldestId); id <= this.newestId; id++) {
      const entry = this.get(id);
      if (entry !== undefined && entry.queue === queue) return entry;
    }
    return undefined;
  }
}

/** The `event` message for one entry, as JSON text (cached on the entry). */
export function eventMessageText(entry: RingEntry): string {
  if (entry.text === null) {
    entry.text = JSON.stringify({ type: 'event', queue: entry.queue, id: entry.id, ...entry.event });
  }
  return entry.text;
}
