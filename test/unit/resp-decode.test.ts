/**
 * The RESP decoder: events and offsets at every split point, annotations,
 * inline commands, every malformed input we know of, and the limits.
 */
import { describe, expect, it } from 'vitest';
import {
  type CommandEvent,
  type DecoderOptions,
  ErrorReply,
  RespDecoder,
  type RespEvent,
  RespProtocolError,
  SimpleString,
} from '../../src/resp/index.js';

type AnyEvent = RespEvent | CommandEvent;

/** Drain every event the decoder has; bounded by the byte count, so a hang fails the test. */
function drain(decoder: RespDecoder, commands: boolean, bound: number): AnyEvent[] {
  const events: AnyEvent[] = [];
  for (let i = 0; i <= bound; i++) {
    const event = commands ? decoder.nextCommand() : decoder.next();
    if (event === undefined) return events;
    events.push(event);
  }
  throw new Error('decoder returned more events than there are bytes');
}

/** Decode `input` pushed as the given pieces. */
function decodePieces(pieces: readonly Buffer[], options: DecoderOptions, commands: boolean): AnyEvent[] {
  const decoder = new RespDecoder(options);
  const total = pieces.reduce((sum, piece) => sum + piece.length, 0);
  const events: AnyEvent[] = [];
  for (const piece of pieces) {
    decoder.push(piece);
    events.push(...drain(decoder, commands, total));
  }
  expect(decoder.buffered).toBe(0);
  expect(decoder.offset).toBe((options.startOffset ?? 0) + total);
  return events;
}

/** Copies of the bytes, so that a decoder aliasing them cannot be affected by the test. */
function splitAt(input: Buffer, ...points: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  let last = 0;
  for (const point of points) {
    pieces.push(Buffer.from(input.subarray(last, point)));
    last = point;
  }
  pieces.push(Buffer.from(input.subarray(last)));
  return pieces;
}

function catchError(run: () => unknown): RespProtocolError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(RespProtocolError);
    return error as RespProtocolError;
  }
  throw new Error('expected a RespProtocolError');
}

function decodeAll(input: string | Buffer, options: DecoderOptions = {}, commands = false): AnyEvent[] {
  const decoder = new RespDecoder(options);
  decoder.push(Buffer.isBuffer(input) ? input : Buffer.from(input, 'latin1'));
  return drain(decoder, commands, 1 << 20);
}

const b = (text: string): Buffer => Buffer.from(text, 'latin1');

const MIXED =
  '+OK\r\n-ERR bad thing\r\n:0\r\n:-42\r\n:9223372036854775807\r\n:-9223372036854775808\r\n' +
  '$0\r\n\r\n$-1\r\n*0\r\n*-1\r\n$6\r\na\r\nb\nc\r\n*3\r\n*2\r\n:1\r\n$1\r\nx\r\n*0\r\n+in\r\n' +
  '*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n';

const AOF =
  '#aofq v=1 kind=incr lsn=0\r\n#TS:1700000000\n*3\r\n$3\r\nSET\r\n$3\r\nk:1\r\n$5\r\nhello\r\n' +
  '#\r\n*2\r\n$3\r\nDEL\r\n$3\r\nk:1\r\n#last line\r\n';

const SERVER =
  'PING\r\n\r\n   \r\nSET "a b" \'c d\' "\\x41\\n"\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nQUIT\n' +
  '*1\r\n$4\r\nPING\r\n';

describe('RespDecoder events', () => {
  it('decodes mixed types with exact values and offsets', () => {
    const events = decodeAll(MIXED);
    expect(events.map((event) => (event.kind === 'frame' ? event.value : event.kind))).toEqual([
      new SimpleString('OK'),
      new ErrorReply('ERR bad thing'),
      0,
      -42,
      9223372036854775807n,
      -9223372036854775808n,
      b(''),
      null,
      [],
      null,
      b('a\r\nb\nc'),
      [[1, b('x')], [], new SimpleString('in')],
      [b('GET'), b('key')],
    ]);
    expect(events.slice(0, 3).map((event) => [event.start, event.end])).toEqual([
      [0, 5],
      [5, 21],
      [21, 25],
    ]);
    for (let i = 1; i < events.length; i++) expect(events[i]!.start).toBe(events[i - 1]!.end);
    expect(events.at(-1)!.end).toBe(MIXED.length);
  });

  it('reports annotations in AOF mode, with CRLF or LF alone', () => {
    const events = decodeAll(AOF, { annotations: true }, true);
    expect(events.map((event) => event.kind)).toEqual([
      'annotation',
      'annotation',
      'command',
      'annotation',
      'command',
      'annotation',
    ]);
    expect(events[0]).toEqual({ kind: 'annotation', text: 'aofq v=1 kind=incr lsn=0', start: 0, end: 27 });
    expect(events[1]).toEqual({ kind: 'annotation', text: 'TS:1700000000', start: 27, end: 42 });
    expect(events[2]).toMatchObject({ kind: 'command', argv: [b('SET'), b('k:1'), b('hello')], start: 42 });
    expect(events[3]).toMatchObject({ kind: 'annotation', text: '' });
    expect(events[5]).toMatchObject({ kind: 'annotation', text: 'last line', end: AOF.length });
  });

  it('splits inline commands with Redis quoting and skips empty lines in server mode', () => {
    const events = decodeAll(SERVER, { inline: true }, true) as CommandEvent[];
    expect(events.map((event) => event.argv.map((arg) => arg.toString('latin1')))).toEqual([
      ['PING'],
      ['SET', 'a b', 'c d', 'A\n'],
      ['ECHO', 'hi'],
      ['QUIT'],
      ['PING'],
    ]);
    expect(events[0]).toMatchObject({ start: 0, end: 6 });
    expect(events[1]!.start).toBe(13); // the empty and blank lines between are consumed, not events
    expect(events[3]).toMatchObject({ start: SERVER.indexOf('QUIT'), end: SERVER.indexOf('QUIT') + 5 });
    // next() gives the same as arrays of bulk strings.
    const frames = decodeAll(SERVER, { inline: true });
    expect(frames.map((event) => (event.kind === 'frame' ? event.value : null))).toEqual(
      events.map((event) => event.argv),
    );
  });

  it('handles the inline quoting corner cases', () => {
    const argvOf = (line: string) =>
      (decodeAll(`${line}\r\n`, { inline: true }, true)[0] as CommandEvent).argv.map((arg) =>
        arg.toString('latin1'),
      );
    expect(argvOf('a"b c" d')).toEqual(['ab c', 'd']);
    expect(argvOf('x ""')).toEqual(['x', '']);
    expect(argvOf('"\\x4g\\t\\q"')).toEqual(['x4g\tq']);
    expect(argvOf("'a\\nb' '\\''")).toEqual(['a\\nb', "'"]);
    expect(argvOf('\tSET\t k  v ')).toEqual(['SET', 'k', 'v']);
    for (const bad of ['"abc', "'abc", '"a"b', "'a'b", 'x "a\\"', 'a""b']) {
      const error = catchError(() => decodeAll(`PING\r\n${bad}\r\n`, { inline: true }, true));
      expect(error.code).toBe('AOFQ_ERR_RESP_PROTOCOL');
      expect(error.offset).toBe(6);
      expect(error.message).toBe('Protocol error: unbalanced quotes in request');
    }
  });

  const cases: Array<[string, string, DecoderOptions, boolean]> = [
    ['mixed', MIXED, {}, false],
    ['aof', AOF, { annotations: true }, true],
    ['aof frames', AOF, { annotations: true }, false],
    ['server', SERVER, { inline: true }, true],
    ['offset', MIXED, { startOffset: 1_000_000 }, false],
  ];
  for (const [name, text, options, commands] of cases) {
    it(`gives the same events at every split point and byte by byte (${name})`, () => {
      const input = b(text);
      const whole = decodePieces([input], options, commands);
      expect(whole.length).toBeGreaterThan(4);
      if (options.startOffset) expect(whole[0]!.start).toBe(options.startOffset);
      for (let point = 0; point <= input.length; point++) {
        expect(decodePieces(splitAt(input, point), options, commands)).toEqual(whole);
      }
      for (let point = 1; point < input.length; point += 3) {
        expect(
          decodePieces(splitAt(input, point, Math.min(input.length, point + 7)), options, commands),
        ).toEqual(whole);
      }
      const bytes = [...input].map((byte) => Buffer.from([byte]));
      expect(decodePieces(bytes, options, commands)).toEqual(whole);
    });
  }

  it('keeps offset at the start of an incomplete frame and counts buffered bytes', () => {
    const decoder = new RespDecoder({ startOffset: 100 });
    decoder.push(b('+OK\r\n*2\r\n$3\r\nfoo\r\n$3\r\nb'));
    expect(decoder.next()).toMatchObject({ start: 100, end: 105 });
    expect(decoder.next()).toBeUndefined();
    expect(decoder.offset).toBe(105);
    expect(decoder.buffered).toBe(18);
    decoder.push(b('ar\r\n'));
    expect(decoder.next()).toEqual({ kind: 'frame', value: [b('foo'), b('bar')], start: 105, end: 127 });
    expect(decoder.offset).toBe(127);
    expect(decoder.buffered).toBe(0);
  });

  it('aliases bulks inside one chunk and copies bulks that straddle chunks', () => {
    const decoder = new RespDecoder();
    const chunk = b('*2\r\n$3\r\nGET\r\n$5\r\nab');
    decoder.push(chunk);
    decoder.push(b('cde\r\n'));
    const event = decoder.nextCommand() as CommandEvent;
    expect(event.argv).toEqual([b('GET'), b('abcde')]);
    // Scribbling on the pushed chunk (which callers must not do) shows which argv alias it.
    chunk.fill(0x2e);
    expect(event.argv).toEqual([b('...'), b('abcde')]);
  });

  it('with copyBulks, never aliases pushed chunks (fast path, general path, next())', () => {
    const decoder = new RespDecoder({ copyBulks: true });
    const chunk = b('*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nDEL\r\n$5\r\nab');
    const tail = b('cde\r\n$2\r\nhi\r\n');
    decoder.push(chunk);
    decoder.push(tail);
    const fast = decoder.nextCommand() as CommandEvent;
    const general = decoder.nextCommand() as CommandEvent;
    const bulk = decoder.next();
    chunk.fill(0x2e);
    tail.fill(0x2e);
    expect(fast.argv).toEqual([b('GET'), b('k')]);
    expect(general.argv).toEqual([b('DEL'), b('abcde')]);
    expect(bulk).toMatchObject({ value: b('hi') });
  });

  it('is linear on tiny chunks: a long line and a large bulk pushed one byte at a time', () => {
    const started = Date.now();
    const decoder = new RespDecoder({ annotations: true });
    const line = b(`#${'a'.repeat(60_000)}\r\n`);
    for (const byte of line) decoder.push(Buffer.from([byte]));
    expect(decoder.next()).toMatchObject({ kind: 'annotation', end: line.length });
    const payload = Buffer.alloc(200_000, 7);
    decoder.push(b(`$${payload.length}\r\n`));
    for (let at = 0; at < payload.length; at++) {
      decoder.push(payload.subarray(at, at + 1));
      if (at % 50_000 === 0) expect(decoder.next()).toBeUndefined();
    }
    decoder.push(b('\r\n'));
    const event = decoder.next();
    expect(event?.kind === 'frame' && Buffer.isBuffer(event.value) && event.value.equals(payload)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('gives an empty argv for *0 and *-1 in nextCommand', () => {
    const events = decodeAll('*0\r\n*-1\r\n', {}, true);
    expect(events).toEqual([
      { kind: 'command', argv: [], start: 0, end: 4 },
      { kind: 'command', argv: [], start: 4, end: 9 },
    ]);
  });

  it('finishes in nextCommand a frame that next() began, and checks it', () => {
    const decoder = new RespDecoder();
    decoder.push(b('*2\r\n$1\r\na\r\n'));
    expect(decoder.next()).toBeUndefined();
    decoder.push(b('$1\r\nb\r\n*1\r\n'));
    expect(decoder.nextCommand()).toEqual({ kind: 'command', argv: [b('a'), b('b')], start: 0, end: 18 });
    expect(decoder.next()).toBeUndefined();
    decoder.push(b(':1\r\n'));
    const error = catchError(() => decoder.nextCommand());
    expect(error.offset).toBe(18);
  });
});

describe('RespDecoder errors', () => {
  const protocolCases: Array<[string, string, number, DecoderOptions?, boolean?]> = [
    ['bad type byte', '?x\r\n', 0],
    ['bad type byte after a frame', '+OK\r\n!\r\n', 5],
    ['bad type byte inside an array', '*2\r\n:1\r\n~\r\n', 8],
    ['empty line', '\r\n', 0],
    ['annotation without annotations', '#x\r\n', 0],
    ['annotation inside an array', '*1\r\n#x\r\n', 4, { annotations: true }],
    ['bulk length letters', '$abc\r\n', 0],
    ['bulk length empty', '$\r\n', 0],
    ['bulk length leading zero', '$01\r\nx\r\n', 0],
    ['bulk length plus sign', '$+1\r\nx\r\n', 0],
    ['bulk length -2', '$-2\r\n', 0],
    ['bulk length -0', '$-0\r\n', 0],
    ['array length -5', '*-5\r\n', 0],
    ['array length space', '* 1\r\n', 0],
    ['missing CRLF after payload', '$3\r\nfooXY', 7],
    ['LF alone after payload', '*1\r\n$3\r\nfoo\n\r', 11],
    ['line ended by LF alone', '+OK\n', 0],
    ['CR inside a simple string', '+a\rb\r\n', 0],
    ['integer leading zero', ':01\r\n', 0],
    ['integer minus zero', ':-0\r\n', 0],
    ['integer empty', ':\r\n', 0],
    ['integer minus only', ':-\r\n', 0],
    ['integer beyond 64 bits', ':9223372036854775808\r\n', 0],
    ['integer 20 digits', ':12345678901234567890\r\n', 0],
    ['integer letters', ':1a\r\n', 0],
    ['command not an array', '+OK\r\n', 0, {}, true],
    ['command element not a bulk', '*2\r\n$1\r\na\r\n:1\r\n', 11, {}, true],
    ['command element null', '*1\r\n$-1\r\n', 4, {}, true],
    ['command element array', '*1\r\n*0\r\n', 4, {}, true],
    ['command top-level bulk', '$1\r\na\r\n', 0, { inline: true }, true],
    ['inline when not server mode', 'PING\r\n', 0, {}, true],
  ];
  for (const [name, input, offset, options, commands] of protocolCases) {
    it(`refuses ${name} at offset ${offset}`, () => {
      const error = catchError(() => decodeAll(input, options ?? {}, commands ?? false));
      expect(error.code).toBe('AOFQ_ERR_RESP_PROTOCOL');
      expect(error.offset).toBe(offset);
      expect(error.status).toBe(400);
      expect(error.toResp()).toMatch(/^ERR Protocol error: /);
      // The same error when the input comes one byte at a time.
      const decoder = new RespDecoder(options ?? {});
      let bytewise: unknown;
      try {
        for (const byte of b(input)) {
          decoder.push(Buffer.from([byte]));
          drain(decoder, commands ?? false, input.length);
        }
      } catch (caught) {
        bytewise = caught;
      }
      expect(bytewise).toBeInstanceOf(RespProtocolError);
      expect((bytewise as RespProtocolError).offset).toBe(offset);
      expect((bytewise as RespProtocolError).code).toBe(error.code);
    });
  }

  it('reports error offsets from startOffset', () => {
    const error = catchError(() => decodeAll('+OK\r\n?\r\n', { startOffset: 5000 }));
    expect(error.offset).toBe(5005);
  });

  it('is poisoned after an error: every later call rethrows the same error', () => {
    const decoder = new RespDecoder();
    decoder.push(b('+OK\r\n?\r\n+OK\r\n'));
    expect(decoder.next()).toBeDefined();
    const error = catchError(() => decoder.next());
    expect(() => decoder.next()).toThrow(error);
    expect(() => decoder.nextCommand()).toThrow(error);
    expect(() => decoder.push(b('+OK\r\n'))).toThrow(error);
    try {
      decoder.next();
    } catch (again) {
      expect(again).toBe(error);
    }
  });
});

describe('RespDecoder limits', () => {
  it('refuses $600000000 as soon as the length line is read, before allocating or awaiting', () => {
    const before = process.memoryUsage().arrayBuffers;
    const decoder = new RespDecoder({ startOffset: 10 });
    decoder.push(b('+OK\r\n$600000000\r\nabc'));
    expect(decoder.next()).toBeDefined();
    const error = catchError(() => decoder.next());
    expect(error.code).toBe('AOFQ_ERR_RESP_LIMIT');
    expect(error.offset).toBe(15);
    expect(error.message).toBe('Protocol error: bulk length 600000000 is over the limit of 536870912');
    expect(decoder.buffered).toBeLessThan(32);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });

  it('refuses *2000000 at once, top-level or nested, and in the command fast path', () => {
    for (const [input, offset] of [
      ['*2000000\r\n', 0],
      ['*1\r\n*2000000\r\n', 4],
    ] as const) {
      for (const commands of [false, true]) {
        const decoder = new RespDecoder();
        decoder.push(b(input));
        const error = catchError(() => (commands ? decoder.nextCommand() : decoder.next()));
        expect(error.code).toBe(commands && offset === 4 ? 'AOFQ_ERR_RESP_PROTOCOL' : 'AOFQ_ERR_RESP_LIMIT');
        expect(error.offset).toBe(offset);
        expect(decoder.buffered).toBe(input.length);
      }
    }
  });

  it('refuses lengths with absurd digit counts as over the limit', () => {
    const error = catchError(() => decodeAll(`$${'9'.repeat(400)}\r\n`));
    expect(error.code).toBe('AOFQ_ERR_RESP_LIMIT');
    expect(error.message).toContain('too many digits');
  });

  it('applies custom limits exactly: at the limit passes, one over fails', () => {
    const options = { maxBulkBytes: 4, maxArrayLength: 2, maxLineBytes: 8, maxDepth: 2 };
    expect(decodeAll('$4\r\nabcd\r\n*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n+1234567\r\n', options)).toHaveLength(3);
    for (const [input, offset] of [
      ['$5\r\nabcde\r\n', 0],
      ['*3\r\n', 0],
      ['*1\r\n*1\r\n*1\r\n:1\r\n', 8],
      ['+12345678\r\n', 0],
      [':1\r\n-ERR 1234567890', 4],
    ] as const) {
      const error = catchError(() => decodeAll(input, options));
      expect(error.code).toBe('AOFQ_ERR_RESP_LIMIT');
      expect(error.offset).toBe(offset);
    }
  });

  it('refuses an over-long line before its end arrives, in one chunk or many', () => {
    for (const pieces of [1, 100]) {
      const decoder = new RespDecoder({ annotations: true });
      const size = 64 * 1024 + 2;
      let error: RespProtocolError | undefined;
      for (let i = 0; i < pieces && !error; i++) {
        decoder.push(Buffer.alloc(Math.ceil(size / pieces), 0x23));
        try {
          decoder.next();
        } catch (caught) {
          error = caught as RespProtocolError;
        }
      }
      expect(error).toBeInstanceOf(RespProtocolError);
      expect(error!.code).toBe('AOFQ_ERR_RESP_LIMIT');
      expect(error!.offset).toBe(0);
    }
  });

  it('refuses nesting deeper than maxDepth (default 8)', () => {
    expect(decodeAll(`${'*1\r\n'.repeat(7)}*0\r\n`)).toHaveLength(1);
    expect(decodeAll(`${'*1\r\n'.repeat(8)}:1\r\n`)).toHaveLength(1);
    const error = catchError(() => decodeAll(`${'*1\r\n'.repeat(9)}:1\r\n`));
    expect(error.code).toBe('AOFQ_ERR_RESP_LIMIT');
    expect(error.offset).toBe(32);
    const deep = catchError(() => decodeAll('*1\r\n'.repeat(100_000)));
    expect(deep.offset).toBe(32);
  });
});
