/**
 * The small logging interface that every layer below http logs through. The
 * server fills it with pino; tests and tools use the silent or console one.
 * Shape: pino's (an optional object of fields first, then a message).
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => {};
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** Writes one line per message to stderr. For the CLI tools. */
export const stderrLogger: Logger = {
  debug: noop,
  info: (obj, msg) => process.stderr.write(`${format(obj, msg)}\n`),
  warn: (obj, msg) => process.stderr.write(`WARN ${format(obj, msg)}\n`),
  error: (obj, msg) => process.stderr.write(`ERROR ${format(obj, msg)}\n`),
};

function format(obj: object, msg?: string): string {
  const fields = Object.keys(obj).length > 0 ? ` ${JSON.stringify(obj)}` : '';
  return `${msg ?? ''}${fields}`;
}
