/**
 * Property: whatever commands a leader runs, with its clock moving (past TTLs
 * included), a fresh Store that replays the logged records ends with the same
 * digest. A command that fails logs nothing and changes nothing. And the
 * snapshot records of the final state rebuild it.
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { isAofqError } from '../../src/errors/index.js';
import { Store } from '../../src/store/index.js';

const T0 = 1_700_000_000_000;

const key = fc.constantFrom('a', 'b', 'c', 'h', 'n', 'k\u0000\u00ff');
const field = fc.constantFrom('f', 'g', 'x');
const integerText = fc.oneof(
  fc.integer({ min: -20, max: 20 }).map(String),
  fc.constantFrom('9223372036854775807', '-9223372036854775808', '9223372036854775806', '1.5', 'abc', '007'),
);
const value = fc.oneof(integerText, fc.constantFrom('v', '', 'hello'), fc.string({ maxLength: 6 }));
const seconds = fc.oneof(
  fc.integer({ min: -2, max: 5 }).map(String),
  fc.constantFrom('x', '9223372036854775807'),
);
const millis = fc.oneof(fc.integer({ min: -100, max: 4000 }).map(String), fc.constantFrom('0', 'y'));
const setOptions = fc.subarray(['NX', 'XX', 'GET', 'KEEPTTL', 'EX', 'PX', 'EXAT', 'PXAT'], { maxLength: 3 });
const expireFlag = fc.constantFrom([], [], ['NX'], ['XX'], ['GT'], ['LT'], ['NX', 'GT'], ['BAD']);

/** One step: how far the clock moves, then a command or an active expiry cycle. */
type Step = { advanceMs: number; argv: string[] | 'active-expire' };

const command: fc.Arbitrary<string[]> = fc.oneof(
  fc
    .tuple(key, value, setOptions, seconds, millis)
    .map(([k, v, options, s, ms]) => [
      'SET',
      k,
      v,
      ...options.flatMap((option) =>
        option === 'EX'
          ? ['EX', s]
          : option === 'PX'
            ? ['PX', ms]
            : option === 'EXAT'
              ? ['EXAT', String(Math.floor(T0 / 1000) + 3)]
              : option === 'PXAT'
                ? ['PXAT', String(T0 + Number(ms) * 5)]
                : [option],
      ),
    ]),
  key.map((k) => ['GET', k]),
  fc.array(key, { minLength: 1, maxLength: 3 }).map((keys) => ['DEL', ...keys]),
  fc.array(key, { minLength: 1, maxLength: 3 }).map((keys) => ['EXISTS', ...keys]),
  key.map((k) => ['INCR', k]),
  key.map((k) => ['DECR', k]),
  fc.tuple(key, integerText).map(([k, n]) => ['INCRBY', k, n]),
  fc.tuple(key, integerText).map(([k, n]) => ['DECRBY', k, n]),
  fc.tuple(key, value).map(([k, v]) => ['APPEND', k, v]),
  key.map((k) => ['STRLEN', k]),
  fc
    .tuple(key, fc.array(fc.tuple(field, value), { minLength: 1, maxLength: 3 }))
    .map(([k, pairs]) => ['HSET', k, ...pairs.flat()]),
  fc.tuple(key, field).map(([k, f]) => ['HGET', k, f]),
  fc.tuple(key, fc.array(field, { minLength: 1, maxLength: 2 })).map(([k, fs]) => ['HDEL', k, ...fs]),
  key.map((k) => ['HGETALL', k]),
  key.map((k) => ['HLEN', k]),
  fc.tuple(key, field, integerText).map(([k, f, n]) => ['HINCRBY', k, f, n]),
  fc.tuple(key, seconds, expireFlag).map(([k, s, flags]) => ['EXPIRE', k, s, ...flags]),
  fc.tuple(key, millis, expireFlag).map(([k, ms, flags]) => ['PEXPIRE', k, ms, ...flags]),
  fc
    .tuple(key, fc.integer({ min: -1000, max: 30_000 }))
    .map(([k, offset]) => ['PEXPIREAT', k, String(T0 + offset)]),
  key.map((k) => ['PERSIST', k]),
  key.map((k) => ['TTL', k]),
  key.map((k) => ['PTTL', k]),
  key.map((k) => ['TYPE', k]),
  fc.constant<string[]>(['DBSIZE']),
  fc.constantFrom<string[]>(['FLUSHALL'], ['FLUSHALL', 'ASYNC'], ['FLUSHALL', 'BAD']),
  fc
    .tuple(fc.integer({ min: 0, max: 8 }), fc.constantFrom('*', 'a*', '[ab]', '?'))
    .map(([cursor, pattern]) => ['SCAN', String(cursor), 'MATCH', pattern, 'COUNT', '2']),
  fc.constantFrom<string[]>(
    ['SELECT', '0'],
    ['SELECT', '1'],
    ['PING'],
    ['NOSUCH', 'x'],
    ['GET'],
    ['HSET', 'a', 'f'],
  ),
);

const step: fc.Arbitrary<Step> = fc.record({
  advanceMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3000 })),
  argv: fc.oneof(
    { weight: 12, arbitrary: command },
    { weight: 1, arbitrary: fc.constant('active-expire' as const) },
  ),
});

function bytes(args: readonly string[]): Buffer[] {
  return args.map((arg) => Buffer.from(arg, 'latin1'));
}

test('replaying the logged records reproduces the leader; failed commands change nothing', () => {
  let errors = 0;
  let records = 0;
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }), (steps) => {
      const leader = new Store();
      const log: Buffer[][] = [];
      let now = T0;
      for (const { advanceMs, argv } of steps) {
        now += advanceMs;
        if (argv === 'active-expire') {
          log.push(...leader.activeExpireCycle({ nowMs: now }, 2));
          continue;
        }
        const before = leader.digestHex();
        try {
          const result = leader.execute(bytes(argv), { nowMs: now });
          log.push(...result.records);
        } catch (err) {
          if (!isAofqError(err)) throw err;
          errors++;
          expect(leader.digestHex()).toBe(before);
        }
      }
      records += log.length;
      const follower = new Store();
      for (const record of log) follower.replay(record);
      expect(follower.digestHex()).toBe(leader.digestHex());

      // The snapshot of the final state rebuilds it, once the leader has expired what is due.
      const rebuilt = new Store();
      for (const record of leader.snapshotRecords(now)) rebuilt.replay(record);
      leader.activeExpireCycle({ nowMs: now }, 1_000_000);
      expect(rebuilt.digestHex()).toBe(leader.digestHex());
    }),
    { numRuns: 400 },
  );
  // The generators must reach both paths, or the property proves little.
  expect(errors).toBeGreaterThan(500);
  expect(records).toBeGreaterThan(2000);
});
