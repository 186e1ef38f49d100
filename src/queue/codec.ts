/**
 * Queue records as bytes: building them (leader) and reading them back with
 * validation (replay). Records come from disk and are untrusted: every read
 * checks its type and bounds and throws AOFQ_ERR_QUEUE_RECORD_INVALID, never a
 * TypeError. Arguments are plain text (decimal integers, names) or JSON texts.
 */
import { AofqError, isAofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import type { RecordArg } from '../util/state.js';

/** Record command names. The `Q.` prefix keeps them apart from Redis commands. */
export const COMMANDS = [
  'Q.CONFIG',
  'Q.ADD',
  'Q.LEASE',
  'Q.EXTEND',
  'Q.ACK',
  'Q.NACK',
  'Q.EXPIRE',
  'Q.RELEASE',
  'Q.PROGRESS',
  'Q.PAUSE',
  'Q.RESUME',
  'Q.DRAIN',
  'Q.CLEAN',
  'Q.OBLITERATE',
  'Q.RETRY',
  'Q.RETRYJOB',
  'Q.PROMOTE',
  'Q.DUE',
  'Q.REMOVE',
  'Q.REDRIVE',
  'Q.STATE',
  'Q.JOB',
] as const;

export type Command = (typeof COMMANDS)[number];

const COMMAND_SET: ReadonlySet<string> = new Set(COMMANDS);

export function isCommand(name: string): name is Command {
  return COMMAND_SET.has(name);
}

/** Each command's name as one shared Buffer (an object: a property load is cheaper than Map.get). */
const COMMAND_BYTES: Readonly<Record<Command, Buffer>> = Object.freeze(
  Object.fromEntries(COMMANDS.map((name) => [name, Buffer.from(name, 'latin1')])) as Record<Command, Buffer>,
);

/** A command's name as the shared Buffer that records begin with (read-only: the AOF writer copies it). */
export function commandBytes(command: Command): Buffer {
  return COMMAND_BYTES[command];
}

const QUEUE_NAME_BYTES = new Map<string, Buffer>();
const QUEUE_NAME_BYTES_MAX = 10_000;

/**
 * Builds one record: every argument becomes one bulk string. The first argument is always a
 * queue name; command and queue-name Buffers are shared between records, so a record's Buffers
 * must be treated as read-only (the AOF writer copies them). Texts stay strings and numbers stay
 * numbers: the AOF writer encodes them (UTF-8, decimal) straight into its buffer.
 */
export function buildRecord(command: Command, args: ReadonlyArray<string | number>): RecordArg[] {
  const record = new Array<RecordArg>(args.length + 1);
  record[0] = commandBytes(command);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string | number;
    if (i === 0 && typeof arg === 'string') {
      let name = QUEUE_NAME_BYTES.get(arg);
      if (name === undefined) {
        name = Buffer.from(arg, 'latin1');
        if (QUEUE_NAME_BYTES.size < QUEUE_NAME_BYTES_MAX) QUEUE_NAME_BYTES.set(arg, name);
      }
      record[1] = name;
    } else {
      record[i + 1] = arg;
    }
  }
  return record;
}

/** A leader's record as the bytes that replay reads back from the AOF (for tests and tools). */
export function recordToBytes(record: ReadonlyArray<RecordArg>): Buffer[] {
  return record.map((part) =>
    typeof part === 'string'
      ? Buffer.from(part, 'utf8')
      : typeof part === 'number'
        ? Buffer.from(String(part), 'latin1')
        : part,
  );
}

/**
 * Lone UTF-16 surrogates do not survive UTF-8: texts that hold one are refused before they reach
 * a record. `String.prototype.isWellFormed` (ES2024, in every Node this project supports, checked
 * at load) answers a one-byte string, which cannot hold a surrogate, without reading it: the
 * regex it replaces cost a call into the regex engine for every job name and consumer.
 */
type IsWellFormed = (this: string) => boolean;
const isWellFormed = (String.prototype as unknown as { isWellFormed?: IsWellFormed })
  .isWellFormed as IsWellFormed;
assert(typeof isWellFormed === 'function', 'String.prototype.isWellFormed exists (Node >= 20)');

export function hasLoneSurrogate(text: string): boolean {
  return !isWellFormed.call(text);
}

type Part = Buffer | string | number;

/**
 * Reads a record's arguments in order; every method validates. It reads either the bytes of a
 * record (replay) or, on the leader, the very arguments the record was built from, which spares
 * converting them back from bytes; both give the same values (numbers are safe integers, texts
 * are well-formed UTF-16), and the same apply code runs on them.
 */
export class RecordReader {
  private index = 0;

  private constructor(
    private commandName: string,
    private parts: ReadonlyArray<Part>,
  ) {}

  get command(): string {
    return this.commandName;
  }

  static fromRecord(record: readonly Buffer[]): RecordReader {
    if (!Array.isArray(record) || record.length === 0) throw recordInvalid('?', 'empty record');
    for (const part of record) {
      if (!Buffer.isBuffer(part)) throw recordInvalid('?', 'record parts must be byte strings');
    }
    const command = (record[0] as Buffer).toString('latin1', 0, 32).toUpperCase();
    const reader = new RecordReader(command, record);
    reader.index = 1;
    return reader;
  }

  /** A reader for the leader's own records, re-aimed at each one by reset(). */
  static forLeader(): RecordReader {
    return new RecordReader('', []);
  }

  /** Reads the leader's `record` (built by the queue layer: its command, then texts and numbers) from its first argument. */
  reset(command: Command, record: ReadonlyArray<RecordArg>): this {
    this.commandName = command;
    this.parts = record;
    this.index = 1;
    return this;
  }

  /** A record decoded to text (a snapshot chunk's): the command name, then its arguments. Validated like bytes. */
  static fromTexts(command: string, args: readonly string[]): RecordReader {
    return new RecordReader(command, args);
  }

  fail(reason: string): AofqError {
    return recordInvalid(this.command, reason);
  }

  get remaining(): number {
    return this.parts.length - this.index;
  }

  private next(what: string): Part {
    const part = this.parts[this.index];
    if (part === undefined) throw this.fail(`missing ${what}`);
    this.index++;
    return part;
  }

  string(what: string, maxBytes: number = LIMITS.jobDataBytes): string {
    const part = this.next(what);
    if (typeof part === 'number') return String(part);
    if (typeof part === 'string') {
      if (part.length > maxBytes || (part.length * 3 > maxBytes && Buffer.byteLength(part) > maxBytes)) {
        throw this.fail(`${what} is longer than ${maxBytes} bytes`);
      }
      return part;
    }
    if (part.length > maxBytes) throw this.fail(`${what} is longer than ${maxBytes} bytes`);
    return part.toString('utf8');
  }

  /** A non-negative safe integer in decimal. */
  uint(what: string, max: number = Number.MAX_SAFE_INTEGER): number {
    const part = this.next(what);
    let value = 0;
    if (typeof part === 'number') value = part;
    else {
      if (part.length === 0 || part.length > 16) throw this.fail(`${what} is not an integer`);
      for (let i = 0; i < part.length; i++) {
        const digit = (typeof part === 'string' ? part.charCodeAt(i) : (part[i] as number)) - 0x30;
        if (digit < 0 || digit > 9) throw this.fail(`${what} is not an integer`);
        value = value * 10 + digit;
      }
    }
    if (!Number.isSafeInteger(value) || value < 0 || value > max) throw this.fail(`${what} is out of range`);
    return value;
  }

  /** A JSON text, parsed; returns [text, value]. */
  json(what: string, maxBytes: number = LIMITS.jobDataBytes): [string, unknown] {
    const text = this.string(what, maxBytes);
    try {
      return [text, JSON.parse(text) as unknown];
    } catch {
      throw this.fail(`${what} is not valid JSON`);
    }
  }

  /** Runs a validator and turns its coded error into a record error. */
  check<T>(what: string, validate: () => T): T {
    try {
      return validate();
    } catch (err) {
      if (isAofqError(err)) throw this.fail(`${what}: ${err.message}`);
      throw err;
    }
  }

  end(): void {
    if (this.index !== this.parts.length) throw this.fail('too many arguments');
  }
}

export function recordInvalid(command: string, reason: string): AofqError {
  return new AofqError('AOFQ_ERR_QUEUE_RECORD_INVALID', { command: command.slice(0, 32), reason });
}
