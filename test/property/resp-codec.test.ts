/**
 * Properties of the RESP codec: encode -> decode under random chunking gives
 * back the values with exact offsets (frames, AOF annotations, commands,
 * inline commands), and any bytes at all give only RespProtocolErrors, within
 * bounded work.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type CommandEvent,
  type DecoderOptions,
  ErrorReply,
  encodeCommand,
  encodeValue,
  RespDecoder,
  type RespEvent,
  RespProtocolError,
  type RespValue,
  SimpleString,
} from '../../src/resp/index.js';

const RUNS = 300;

/** Text for a `+`/`-` line: anything but CR and LF. */
const lineText = fc.string({ unit: 'grapheme', maxLength: 20 }).map((text) => text.replace(/[\r\n]/g, ' '));

const respValue: fc.Arbitrary<RespValue> = fc.letrec<{ value: RespValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true, maxDepth: 7 },
    fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
    fc.constant(null),
    fc.maxSafeInteger(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).filter((n) => n > 2n ** 53n || n < -(2n ** 53n)),
    lineText.map((text) => new SimpleString(text)),
    lineText.map((text) => new ErrorReply(text)),
    fc.array(tie('value'), { maxLength: 5 }),
  ),
})).value;

/** Cut `input` into pieces at random points (copies, so no piece aliases another). */
function chop(input: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (input.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let last = 0;
  for (const point of points) {
    pieces.push(Buffer.from(input.subarray(last, point)));
    last = point;
  }
  pieces.push(Buffer.from(input.subarray(last)));
  return pieces;
}

type AnyEvent = RespEvent | CommandEvent;

function decodeChunks(pieces: readonly Buffer[], options: DecoderOptions, commands: boolean): AnyEvent[] {
  const decoder = new RespDecoder(options);
  const total = pieces.reduce((sum, piece) => sum + piece.length, 0);
  const events: AnyEvent[] = [];
  for (const piece of pieces) {
    decoder.push(piece);
    for (;;) {
      const event = commands ? decoder.nextCommand() : decoder.next();
      if (event === undefined) break;
      events.push(event);
      if (events.length > total) throw new Error('more events than bytes');
    }
  }
  expect(decoder.buffered).toBe(0);
  return events;
}

const cuts = fc.array(fc.nat(), { maxLength: 12 });

describe('RESP codec properties', () => {
  it('round-trips any values under any chunking, with exact offsets', () => {
    fc.assert(
      fc.property(
        fc.array(respValue, { minLength: 1, maxLength: 8 }),
        cuts,
        fc.nat(),
        (values, at, start) => {
          const encoded = values.map(encodeValue);
          const events = decodeChunks(chop(Buffer.concat(encoded), at), { startOffset: start }, false);
          expect(events.map((event) => (event.kind === 'frame' ? event.value : event))).toEqual(values);
          let offset = start;
          events.forEach((event, i) => {
            expect(event.start).toBe(offset);
            offset += encoded[i]!.length;
            expect(event.end).toBe(offset);
          });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('round-trips AOF streams of commands and annotations (CRLF or LF) through nextCommand', () => {
    const argv = fc.array(
      fc.uint8Array({ maxLength: 30 }).map((bytes) => Buffer.from(bytes)),
      { minLength: 1, maxLength: 6 },
    );
    const annotation = fc.record({
      text: fc
        .uint8Array({ maxLength: 30 })
        .map((bytes) =>
          Buffer.from(bytes.filter((byte) => byte !== 0x0a && byte !== 0x0d)).toString('latin1'),
        ),
      lfOnly: fc.boolean(),
    });
    const item = fc.oneof(argv, annotation);
    fc.assert(
      fc.property(
        fc.array(item, { minLength: 1, maxLength: 10 }),
        cuts,
        fc.boolean(),
        (items, at, copyBulks) => {
          const encoded = items.map((it) =>
            Array.isArray(it)
              ? encodeCommand(it)
              : Buffer.from(`#${it.text}${it.lfOnly ? '\n' : '\r\n'}`, 'latin1'),
          );
          const events = decodeChunks(
            chop(Buffer.concat(encoded), at),
            { annotations: true, copyBulks },
            true,
          );
          expect(events).toHaveLength(items.length);
          let offset = 0;
          events.forEach((event, i) => {
            const expected = items[i]!;
            if (Array.isArray(expected)) expect(event).toMatchObject({ kind: 'command', argv: expected });
            else expect(event).toMatchObject({ kind: 'annotation', text: expected.text });
            expect(event.start).toBe(offset);
            offset += encoded[i]!.length;
            expect(event.end).toBe(offset);
          });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('round-trips inline commands quoted with \\xHH escapes and single quotes', () => {
    const quote = (arg: Buffer, single: boolean): string => {
      if (single) return `'${arg.toString('latin1').replace(/'/g, "\\'")}'`;
      return `"${[...arg].map((byte) => `\\x${byte.toString(16).padStart(2, '0')}`).join('')}"`;
    };
    const singleSafe = fc
      .uint8Array({ maxLength: 10 })
      .map((bytes) => Buffer.from(bytes.filter((byte) => byte !== 0x0a && byte !== 0x0d && byte !== 0x5c)));
    const arg = fc.oneof(
      fc.record({
        bytes: fc.uint8Array({ maxLength: 10 }).map((x) => Buffer.from(x)),
        single: fc.constant(false),
      }),
      fc.record({ bytes: singleSafe, single: fc.constant(true) }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.array(arg, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 5 }),
        cuts,
        (lines, at) => {
          const text = lines
            .map((args) => `${args.map((a) => quote(a.bytes, a.single)).join(' \t')}\r\n`)
            .join('');
          const events = decodeChunks(chop(Buffer.from(text, 'latin1'), at), { inline: true }, true);
          expect(events.map((event) => (event as CommandEvent).argv)).toEqual(
            lines.map((args) => args.map((a) => a.bytes)),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  const modes: Array<[string, DecoderOptions]> = [
    ['default limits', {}],
    ['small limits', { maxBulkBytes: 16, maxArrayLength: 4, maxLineBytes: 12, maxDepth: 3 }],
    ['aof', { annotations: true, maxLineBytes: 20 }],
    ['server', { inline: true, maxLineBytes: 20 }],
  ];

  /** Bytes from the RESP alphabet, so that the decoder gets deep into its states. */
  const respish = fc
    .array(
      fc.oneof(
        fc.constantFrom(
          '*',
          '$',
          '+',
          '-',
          ':',
          '#',
          '\r\n',
          '\r',
          '\n',
          '-1',
          '0',
          '1',
          '3',
          '9',
          '"',
          "'",
          ' ',
          '\\x',
        ),
        fc.uint8Array({ maxLength: 4 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
      ),
      { maxLength: 60 },
    )
    .map((parts) => Buffer.from(parts.join(''), 'latin1'));
  /** Valid encodings with a few bytes changed. */
  const mutated = fc
    .tuple(
      fc.array(respValue, { minLength: 1, maxLength: 4 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
    )
    .map(([values, edits]) => {
      const bytes = Buffer.concat(values.map(encodeValue));
      for (const [at, byte] of edits) bytes[at % bytes.length] = byte;
      return bytes;
    });

  /** Events, then the error's code and offset if any: what a decoder makes of `pieces`. */
  function outcome(pieces: readonly Buffer[], options: DecoderOptions, commands: boolean): unknown[] {
    const decoder = new RespDecoder(options);
    const seen: unknown[] = [];
    try {
      for (const piece of pieces) {
        decoder.push(piece);
        for (let i = 0; i <= piece.length; i++) {
          const event = commands ? decoder.nextCommand() : decoder.next();
          if (event === undefined) break;
          seen.push(event);
        }
      }
    } catch (error) {
      const { code, offset } = error as RespProtocolError;
      seen.push({ code, offset });
    }
    return seen;
  }

  for (const [name, options] of modes) {
    it(`gives the same events and the same error whole or byte by byte (${name})`, () => {
      fc.assert(
        fc.property(fc.oneof(respish, mutated), fc.boolean(), (input, commands) => {
          const whole = outcome([input], options, commands);
          const bytewise = outcome(
            [...input].map((byte) => Buffer.from([byte])),
            options,
            commands,
          );
          expect(bytewise).toEqual(whole);
        }),
        { numRuns: 1000 },
      );
    });

    it(`gives only RespProtocolErrors on arbitrary bytes, with bounded work (${name})`, () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.uint8Array({ maxLength: 200 }).map((x) => Buffer.from(x)),
            respish,
            mutated,
          ),
          cuts,
          fc.boolean(),
          (input, at, commands) => {
            const decoder = new RespDecoder(options);
            let calls = 0;
            let failure: unknown;
            let last = 0;
            try {
              for (const piece of chop(input, at)) {
                decoder.push(piece);
                for (;;) {
                  calls++;
                  expect(calls).toBeLessThanOrEqual(2 * input.length + 20);
                  const event = commands ? decoder.nextCommand() : decoder.next();
                  if (event === undefined) break;
                  // Equal, except that server mode skips empty lines without an event.
                  if (options.inline) expect(event.start).toBeGreaterThanOrEqual(last);
                  else expect(event.start).toBe(last);
                  expect(event.end).toBeGreaterThan(event.start);
                  last = event.end;
                  expect(decoder.offset).toBe(last);
                }
              }
              expect(decoder.offset + decoder.buffered).toBe(input.length);
            } catch (error) {
              failure = error;
            }
            if (failure !== undefined) {
              expect(failure).toBeInstanceOf(RespProtocolError);
              const error = failure as RespProtocolError;
              expect(['AOFQ_ERR_RESP_PROTOCOL', 'AOFQ_ERR_RESP_LIMIT']).toContain(error.code);
              expect(error.offset).toBeGreaterThanOrEqual(last);
              expect(error.offset).toBeLessThanOrEqual(input.length);
              expect(() => decoder.next()).toThrow(error);
            }
          },
        ),
        { numRuns: 1500 },
      );
    });
  }
});
