/** Replay of effect records, snapshots, digests, and the store's small parsers (glob, integers). */
import { describe, expect, test } from 'vitest';
import { isAofqError } from '../../src/errors/index.js';
import { globMatch, SNAPSHOT_HSET_PAIRS, Store } from '../../src/store/index.js';
import { parseInt64, parseScanCursor } from '../../src/store/integers.js';

const T0 = 1_700_000_000_000;

function bytes(args: readonly string[]): Buffer[] {
  return args.map((arg) => Buffer.from(arg, 'latin1'));
}

/** Executes commands on a leader and replays every record into a follower. */
function leaderAndFollower() {
  const leader = new Store();
  const follower = new Store();
  const logged: string[] = [];
  const exec = (nowMs: number, ...args: string[]) => {
    const result = leader.execute(bytes(args), { nowMs });
    for (const record of result.records) {
      logged.push(record.map(String).join(' '));
      follower.replay(record);
    }
    return result.reply;
  };
  return { leader, follower, exec, logged };
}

describe('replay', () => {
  test('a follower that replays the records has the same digest', () => {
    const { leader, follower, exec } = leaderAndFollower();
    exec(T0, 'SET', 'a', '1', 'EX', '10');
    exec(T0, 'INCRBY', 'a', '5');
    exec(T0, 'APPEND', 'a', 'x');
    exec(T0, 'HSET', 'h', 'f', '1', 'g', '2');
    exec(T0, 'HINCRBY', 'h', 'f', '10');
    exec(T0, 'HDEL', 'h', 'g');
    exec(T0, 'SET', 'b', 'v', 'PX', '5');
    exec(T0, 'PEXPIRE', 'h', '100000');
    exec(T0, 'PERSIST', 'h');
    exec(T0 + 5, 'GET', 'b'); // lazily expired: DEL b
    exec(T0 + 5, 'SET', 'c', 'v', 'KEEPTTL');
    exec(T0 + 5, 'EXPIRE', 'c', '-1');
    expect(follower.digestHex()).toBe(leader.digestHex());
    expect(leader.size).toBe(2);
    exec(T0 + 5, 'FLUSHALL');
    expect(follower.size).toBe(0);
    expect(follower.digestHex()).toBe(leader.digestHex());
  });

  test('replay never expires by itself: expiry arrives as DEL', () => {
    const follower = new Store();
    follower.replay(bytes(['SET', 'k', 'v', 'PXAT', '1']));
    follower.replay(bytes(['HSET', 'h', 'f', 'v']));
    follower.replay(bytes(['PEXPIREAT', 'h', '2']));
    expect(follower.keyspaceInfo()).toEqual({ keys: 2, expires: 2 });
    follower.replay(bytes(['DEL', 'k']));
    expect(follower.keyspaceInfo()).toEqual({ keys: 1, expires: 1 });
    // PEXPIREAT and PERSIST of a missing key do nothing.
    follower.replay(bytes(['PEXPIREAT', 'missing', '5']));
    follower.replay(bytes(['PERSIST', 'missing']));
    expect(follower.keyspaceInfo()).toEqual({ keys: 1, expires: 1 });
  });

  test('malformed records are refused with a coded error', () => {
    const store = new Store();
    store.replay(bytes(['SET', 's', 'v']));
    store.replay(bytes(['HSET', 'h', 'f', 'v']));
    const bad = [
      [],
      ['GET', 'k'],
      ['SET', 'k'],
      ['SET', 'k', 'v', 'EX', '10'],
      ['SET', 'k', 'v', 'NX'],
      ['SET', 'k', 'v', 'PXAT', 'soon'],
      ['PEXPIREAT', 'k', '99999999999999999999'],
      ['PEXPIREAT', 's'],
      ['HSET', 'h', 'f'],
      ['HSET', 's', 'f', 'v'],
      ['HDEL', 's', 'f'],
      ['APPEND', 'h', 'x'],
      ['DEL'],
    ];
    const before = store.digestHex();
    for (const record of bad) {
      let caught: unknown;
      try {
        store.replay(bytes(record));
      } catch (err) {
        caught = err;
      }
      expect(isAofqError(caught, 'AOFQ_ERR_STORE_BAD_RECORD'), record.join(' ')).toBe(true);
    }
    expect(store.digestHex()).toBe(before);
  });
});

describe('digest', () => {
  test('independent of insertion order, sensitive to values, types and expiry', () => {
    const a = new Store();
    const b = new Store();
    a.replay(bytes(['SET', 'x', '1']));
    a.replay(bytes(['HSET', 'h', 'f', '1', 'g', '2']));
    b.replay(bytes(['HSET', 'h', 'g', '2', 'f', '1']));
    b.replay(bytes(['SET', 'x', '1']));
    expect(a.digestHex()).toBe(b.digestHex());
    b.replay(bytes(['PEXPIREAT', 'x', String(T0)]));
    expect(a.digestHex()).not.toBe(b.digestHex());
    b.replay(bytes(['PERSIST', 'x']));
    expect(a.digestHex()).toBe(b.digestHex());
    b.replay(bytes(['SET', 'x', '2']));
    expect(a.digestHex()).not.toBe(b.digestHex());
    const c = new Store();
    c.replay(bytes(['HSET', 'x', '1', '1']));
    const d = new Store();
    d.replay(bytes(['SET', 'x', '1']));
    expect(c.digestHex()).not.toBe(d.digestHex());
    expect(new Store().digestHex()).toBe(new Store().digestHex());
  });
});

describe('snapshotRecords', () => {
  test('rebuilds an equal store, skipping expired keys, chunking big hashes', () => {
    const store = new Store();
    const now = T0;
    store.execute(bytes(['SET', 'plain', 'v']), { nowMs: now });
    store.execute(bytes(['SET', 'ttl', 'v', 'PX', '1000']), { nowMs: now });
    store.execute(bytes(['SET', 'gone', 'v', 'PX', '10']), { nowMs: now });
    store.execute([Buffer.from('SET'), Buffer.from([0, 255, 13, 10]), Buffer.alloc(5000, 7)], { nowMs: now });
    const fields: string[] = [];
    for (let i = 0; i < 150; i++) fields.push(`f${i}`, `v${i}`);
    store.execute(bytes(['HSET', 'big', ...fields]), { nowMs: now });
    store.execute(bytes(['PEXPIRE', 'big', '50000']), { nowMs: now });
    store.execute(bytes(['HSET', 'small', 'a', '1']), { nowMs: now });

    const records = [...store.snapshotRecords(now + 10)];
    const text = records.map((record) => `${record[0]} ${record[1]}`);
    expect(text.filter((line) => line === 'HSET big')).toHaveLength(3); // 64 + 64 + 22 pairs
    expect(records.every((record) => record.length <= 2 + 2 * SNAPSHOT_HSET_PAIRS)).toBe(true);
    expect(text).not.toContain('SET gone');
    expect(text).toContain('PEXPIREAT ttl');
    expect(text).toContain('PEXPIREAT big');

    const rebuilt = new Store();
    for (const record of records) rebuilt.replay(record);
    // The source still holds the not-yet-deleted 'gone'; expire it the way the leader would.
    store.activeExpireCycle({ nowMs: now + 10 }, 100);
    expect(rebuilt.digestHex()).toBe(store.digestHex());
    expect(rebuilt.size).toBe(5);
  });
});

describe('globMatch', () => {
  const cases: [string, string, boolean][] = [
    ['*', '', true],
    ['*', 'anything', true],
    ['', '', true],
    ['', 'a', false],
    ['a*', 'abc', true],
    ['a*', 'bac', false],
    ['*c', 'abc', true],
    ['a*c', 'ac', true],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['**x', 'aax', true],
    ['h?llo', 'hello', true],
    ['h?llo', 'hllo', false],
    ['h[ae]llo', 'hallo', true],
    ['h[ae]llo', 'hillo', false],
    ['h[^e]llo', 'hallo', true],
    ['h[^e]llo', 'hello', false],
    ['h[a-c]llo', 'hbllo', true],
    ['h[c-a]llo', 'hbllo', true],
    ['h[a-c]llo', 'hdllo', false],
    ['h\\*llo', 'h*llo', true],
    ['h\\*llo', 'hello', false],
    ['[\\]]', ']', true],
    ['a\\', 'a\\', true],
    ['[abc', 'b', true],
    ['user:*:name', 'user:42:name', true],
    ['user:*:name', 'user:42:names', false],
    ['*a*a*a*a*a*b', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', false],
  ];
  test.each(cases)('%s ~ %s → %s', (pattern, subject, expected) => {
    expect(globMatch(pattern, subject)).toBe(expected);
  });
});

describe('integer parsing', () => {
  test('parseInt64 follows string2ll', () => {
    expect(parseInt64('0')).toBe(0n);
    expect(parseInt64('-1')).toBe(-1n);
    expect(parseInt64('9223372036854775807')).toBe(9223372036854775807n);
    expect(parseInt64('-9223372036854775808')).toBe(-9223372036854775808n);
    for (const bad of ['', '-', '+1', '01', '-0', ' 1', '1 ', '1.0', '9223372036854775808', '1e3', '0x10']) {
      expect(parseInt64(bad), bad).toBeUndefined();
    }
  });

  test('parseScanCursor follows strtoul', () => {
    expect(parseScanCursor('')).toBe(0n);
    expect(parseScanCursor('17')).toBe(17n);
    expect(parseScanCursor('+17')).toBe(17n);
    expect(parseScanCursor('-1')).toBe(18446744073709551615n);
    expect(parseScanCursor('18446744073709551616')).toBeUndefined();
    expect(parseScanCursor('1a')).toBeUndefined();
    expect(parseScanCursor(' 1')).toBeUndefined();
  });
});
