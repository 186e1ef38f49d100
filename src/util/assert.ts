/**
 * Invariant checks. An assertion failure is a bug in aofq, never bad input:
 * bad input gets a coded AofqError instead. Assertions stay on in production,
 * as TigerBeetle's style asks; they are cheap and they stop corruption early.
 */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never, message = 'unreachable'): never {
  throw new AssertionError(`${message}: ${String(value)}`);
}

/** A non-negative safe integer, such as an LSN, an offset or a length. */
export function assertUint(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new AssertionError(`${what} must be a non-negative safe integer, got ${value}`);
  }
}
