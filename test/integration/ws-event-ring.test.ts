/**
 * The WebSocket event ring against a model: after random events over a few
 * queues, resuming any queue after any id yields exactly the events of that
 * queue the ring still holds after that id, and a gap exactly when an event
 * of that queue newer than the id was evicted. (A pure test of
 * src/http/ws-events.ts; it sits with the WebSocket tests it supports.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventRing, eventMessageText } from '../../src/http/ws-events.js';

/** Follow a stream the way the hub does: resume, then nextFor until the end. */
function replay(ring: EventRing, queue: string, lastEventId: number): { gap: string | null; ids: number[] } {
  const { lastSeen, gap } = ring.resume(queue, lastEventId);
  const ids: number[] = [];
  let seen = lastSeen;
  for (let i = 0; i <= ring.capacity; i++) {
    const entry = ring.nextFor(queue, seen);
    if (entry === undefined) break;
    ids.push(entry.id);
    seen = entry.id;
  }
  return { gap, ids };
}

describe('EventRing', () => {
  it('resumes exactly, and reports a gap exactly when events of that queue were evicted', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.constantFrom('a', 'b', 'c'), { maxLength: 60 }),
        fc.constantFrom('a', 'b', 'c'),
        fc.nat({ max: 70 }),
        (capacity, queues, queue, lastEventId) => {
          const ring = new EventRing(capacity);
          queues.forEach((name) => {
            ring.push(name, { event: 'drained' });
          });
          const all = queues.map((name, index) => ({ id: index + 1, name }));
          const newest = queues.length;
          const oldest = Math.max(1, newest - capacity + 1);
          const held = all.filter((e) => e.id >= oldest && e.name === queue).map((e) => e.id);
          const result = replay(ring, queue, lastEventId);
          if (lastEventId > newest) {
            expect(result.gap).toBe('unknown-id');
            expect(result.ids).toEqual(held);
            return;
          }
          const evictedNewer = all.some((e) => e.id < oldest && e.id > lastEventId && e.name === queue);
          expect(result.gap).toBe(evictedNewer ? 'evicted' : null);
          expect(result.ids).toEqual(evictedNewer ? held : held.filter((id) => id > lastEventId));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('serializes an event message once, with BullMQ fields', () => {
    const ring = new EventRing(4);
    const entry = ring.push('q', { event: 'completed', jobId: '1', returnvalue: '2', prev: 'active' });
    const text = eventMessageText(entry);
    expect(JSON.parse(text)).toEqual({
      type: 'event',
      queue: 'q',
      id: 1,
      event: 'completed',
      jobId: '1',
      returnvalue: '2',
      prev: 'active',
    });
    expect(eventMessageText(entry)).toBe(text);
  });
});
