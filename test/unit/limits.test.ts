/**
 * The limits: frozen, sane, and their relations checked (the checker itself
 * is shown to fail on a bad set).
 */
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/util/assert.js';
import { checkLimitRelations, LIMITS, type Limits } from '../../src/util/limits.js';

type LimitChange = { [K in keyof Limits]?: number };

describe('LIMITS', () => {
  it('is frozen', () => {
    expect(Object.isFrozen(LIMITS)).toBe(true);
    expect(() => {
      (LIMITS as { respMaxDepth: number }).respMaxDepth = 100;
    }).toThrow(TypeError);
    expect(LIMITS.respMaxDepth).toBe(8);
  });

  it('holds positive safe integers only', () => {
    for (const [name, value] of Object.entries(LIMITS)) {
      expect(Number.isSafeInteger(value), name).toBe(true);
      expect(value, name).toBeGreaterThan(0);
    }
  });

  it('has the relations hold', () => {
    expect(() => checkLimitRelations(LIMITS)).not.toThrow();
    expect(LIMITS.jobDataBytes).toBeLessThanOrEqual(LIMITS.respMaxBulkBytes);
    expect(LIMITS.aofMaxBatchBytes).toBeGreaterThanOrEqual(2 * LIMITS.jobDataBytes);
    expect(LIMITS.leaseMsMin).toBeLessThan(LIMITS.leaseMsDefault);
    expect(LIMITS.leaseMsDefault).toBeLessThan(LIMITS.leaseMsMax);
    expect(LIMITS.jobsPerBulk * 4).toBeLessThanOrEqual(LIMITS.respMaxArrayLength);
  });

  const broken: Array<[string, LimitChange]> = [
    ['a job larger than a bulk string', { jobDataBytes: LIMITS.respMaxBulkBytes + 1 }],
    ['a body larger than a bulk string', { httpBodyBytes: LIMITS.respMaxBulkBytes + 1 }],
    ['a batch smaller than two jobs', { aofMaxBatchBytes: 2 * LIMITS.jobDataBytes - 1 }],
    ['lease default above max', { leaseMsDefault: LIMITS.leaseMsMax }],
    ['lease min at default', { leaseMsMin: LIMITS.leaseMsDefault }],
    ['a queue name longer than a line', { queueNameMaxBytes: LIMITS.respMaxLineBytes }],
    ['a lease larger than an array', { respMaxArrayLength: LIMITS.jobsPerLease - 1 }],
  ];
  for (const [name, change] of broken) {
    it(`the check fails for ${name}`, () => {
      expect(() => checkLimitRelations({ ...LIMITS, ...change })).toThrow(AssertionError);
    });
  }
});
