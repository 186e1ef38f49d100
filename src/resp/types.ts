/**
 * RESP2 values as aofq holds them in memory. A bulk string is a Buffer, an
 * integer a number (a bigint only beyond 2^53), the null bulk and the null
 * array are both `null`, and arrays are plain arrays.
 */
export class SimpleString {
  constructor(readonly value: string) {}
}

export class ErrorReply {
  /** `message` is the whole error line without the leading '-', e.g. `ERR syntax error`. */
  constructor(readonly message: string) {}
}

export type RespValue = null | number | bigint | Buffer | SimpleString | ErrorReply | RespValue[];

export const OK = new SimpleString('OK');
