/**
 * Schema compilation off the start-up path. Compiling every route's request
 * validators (ajv) and response serializers (fast-json-stringify) and every
 * WebSocket message validator took about 0.4 s of a 1.1 s start, before the
 * AOF could even begin to load. Each one is wrapped here so that it compiles
 * on first use; `warm()` then compiles the rest one per event-loop turn once
 * the server is ready, so that a first request rarely pays for it.
 *
 * The schemas are still compiled, strictly, by the contract tests, so a bad
 * schema fails CI rather than a first request.
 */
import type { ValidateFunction } from 'ajv';

export class LazyCompiles {
  private pending: Array<() => void> = [];
  private warming = false;

  /** Register a compile step; it runs at most once (the caller makes it idempotent). */
  add(compile: () => void): void {
    this.pending.push(compile);
  }

  /** Compile everything still pending, one item per turn of the event loop. */
  warm(): Promise<void> {
    if (this.warming) return Promise.resolve();
    this.warming = true;
    return new Promise((resolve) => {
      const step = (): void => {
        const next = this.pending.pop();
        if (next === undefined) {
          this.warming = false;
          resolve();
          return;
        }
        next();
        setImmediate(step).unref();
      };
      setImmediate(step).unref();
    });
  }

  /** An ajv validator that compiles on its first call (or when warmed), with ajv's `errors` property. */
  validator(compile: () => ValidateFunction): ValidateFunction {
    let inner: ValidateFunction | null = null;
    const ensure = (): ValidateFunction => {
      inner ??= compile();
      return inner;
    };
    const validate = ((data: unknown): boolean => {
      const fn = ensure();
      const ok = fn(data) as boolean;
      validate.errors = fn.errors;
      return ok;
    }) as ValidateFunction;
    validate.errors = null;
    this.add(() => {
      ensure();
    });
    return validate;
  }

  /** A serializer that builds on its first call (or when warmed). */
  serializer(build: () => (data: unknown) => string): (data: unknown) => string {
    let inner: ((data: unknown) => string) | null = null;
    const ensure = (): ((data: unknown) => string) => {
      inner ??= build();
      return inner;
    };
    this.add(() => {
      ensure();
    });
    return (data: unknown) => ensure()(data);
  }
}
