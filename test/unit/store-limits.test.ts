/** APPEND stops at proto-max-bulk-len; the limit is shrunk here so that the test stays small. */
import { describe, expect, test, vi } from 'vitest';

vi.mock('../../src/util/limits.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/util/limits.js')>();
  return { ...original, LIMITS: Object.freeze({ ...original.LIMITS, respMaxBulkBytes: 10_000 }) };
});

const { Store } = await import('../../src/store/index.js');
const { isAofqError } = await import('../../src/errors/index.js');

describe('APPEND size limit', () => {
  test('refuses growth past respMaxBulkBytes with Redis’s error, changing nothing', () => {
    const store = new Store();
    const ctx = { nowMs: 1 };
    const key = Buffer.from('k');
    store.execute([Buffer.from('SET'), key, Buffer.alloc(6000)], ctx);
    const ok = store.execute([Buffer.from('APPEND'), key, Buffer.alloc(4000)], ctx);
    expect(ok.reply).toBe(10_000);
    const before = store.digestHex();
    let caught: unknown;
    try {
      store.execute([Buffer.from('APPEND'), key, Buffer.alloc(1)], ctx);
    } catch (err) {
      caught = err;
    }
    expect(isAofqError(caught, 'AOFQ_ERR_CMD_STRING_TOO_LONG')).toBe(true);
    expect((caught as { toResp(): string }).toResp()).toBe('ERR string exceeds maximum allowed size');
    expect(store.digestHex()).toBe(before);
  });
});
