/**
 * RESP encoding: writeValue for every value type, and the RespWriter fixes
 * (zero-sized writer, take() reuse, 64-bit integer bound).
 */
import { describe, expect, it } from 'vitest';
import {
  ErrorReply,
  encodeCommand,
  encodeValue,
  OK,
  RespDecoder,
  RespWriter,
  SimpleString,
  writeValue,
} from '../../src/resp/index.js';
import { AssertionError } from '../../src/util/assert.js';

const text = (value: Parameters<typeof encodeValue>[0]): string => encodeValue(value).toString('latin1');

describe('writeValue', () => {
  it('encodes each type', () => {
    expect(text(null)).toBe('$-1\r\n');
    expect(text(Buffer.from('hi'))).toBe('$2\r\nhi\r\n');
    expect(text(Buffer.alloc(0))).toBe('$0\r\n\r\n');
    expect(text(Buffer.from('a\r\nb'))).toBe('$4\r\na\r\nb\r\n');
    expect(text(0)).toBe(':0\r\n');
    expect(text(-42)).toBe(':-42\r\n');
    expect(text(Number.MAX_SAFE_INTEGER)).toBe(':9007199254740991\r\n');
    expect(text(-(2n ** 63n))).toBe(':-9223372036854775808\r\n');
    expect(text(OK)).toBe('+OK\r\n');
    expect(text(new SimpleString(''))).toBe('+\r\n');
    expect(text(new ErrorReply('ERR bad\r\nthing'))).toBe('-ERR bad thing\r\n');
    expect(text([])).toBe('*0\r\n');
    expect(encodeValue(new SimpleString('héllo'))).toEqual(Buffer.from('+héllo\r\n', 'utf8'));
  });

  it('encodes arrays recursively, null elements as $-1', () => {
    expect(text([Buffer.from('a'), null, [1, [new SimpleString('x')]], new ErrorReply('E')])).toBe(
      '*4\r\n$1\r\na\r\n$-1\r\n*2\r\n:1\r\n*1\r\n+x\r\n-E\r\n',
    );
  });

  it('appends to what the writer already holds', () => {
    const writer = new RespWriter(8);
    writer.simple('PONG');
    writeValue(writer, [Buffer.alloc(100, 'z'), 7]);
    const decoder = new RespDecoder();
    decoder.push(writer.toBuffer());
    expect(decoder.next()).toMatchObject({ value: new SimpleString('PONG') });
    expect(decoder.next()).toMatchObject({ value: [Buffer.alloc(100, 'z'), 7], end: writer.length });
  });

  it('refuses, as a bug, values the protocol cannot carry', () => {
    expect(() => encodeValue(1.5)).toThrow(AssertionError);
    expect(() => encodeValue(2n ** 63n)).toThrow(AssertionError);
    expect(() => encodeValue(new SimpleString('a\r\nb'))).toThrow(AssertionError);
    let deep: Parameters<typeof encodeValue>[0] = [];
    for (let i = 0; i < 8; i++) deep = [deep];
    expect(() => encodeValue(deep)).toThrow(AssertionError);
    expect(text([[[[[[[[]]]]]]]])).toBe(`${'*1\r\n'.repeat(7)}*0\r\n`);
  });
});

describe('RespWriter', () => {
  it('grows from a zero-sized buffer (this used to loop forever)', () => {
    const writer = new RespWriter(0);
    writer.bulk('x'.repeat(1000));
    expect(writer.length).toBe(1000 + 9);
  });

  it('take() hands over the bytes and later writes never touch them', () => {
    const writer = new RespWriter(16);
    writer.command(['SET', 'k', 'v']);
    const first = writer.take();
    expect(writer.length).toBe(0);
    writer.command(['DEL', 'key']);
    const second = writer.take();
    expect(first.toString()).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n');
    expect(second.toString()).toBe('*2\r\n$3\r\nDEL\r\n$3\r\nkey\r\n');
  });

  it('encodeCommand sizes its buffer once and is exact', () => {
    const encoded = encodeCommand(['SET', Buffer.from([0, 255]), 'ü']);
    expect(encoded).toEqual(Buffer.from('*3\r\n$3\r\nSET\r\n$2\r\n\x00\xff\r\n$2\r\n\xc3\xbc\r\n', 'latin1'));
  });

  it('writes integers, null bulk and null array', () => {
    const writer = new RespWriter();
    writer
      .integer(-1)
      .integer(2n ** 62n)
      .nullBulk()
      .nullArray()
      .arrayHeader(0);
    expect(writer.toBuffer().toString()).toBe(':-1\r\n:4611686018427387904\r\n$-1\r\n*-1\r\n*0\r\n');
    writer.reset();
    expect(writer.length).toBe(0);
  });
});
