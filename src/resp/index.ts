/**
 * The RESP layer's public surface: values, the encoder and the decoder.
 * Other layers import from here.
 */
export {
  type AnnotationEvent,
  type CommandEvent,
  type DecoderOptions,
  type FrameEvent,
  RespDecoder,
  type RespErrorCode,
  type RespEvent,
  RespProtocolError,
  splitInline,
} from './decode.js';
export { type Arg, encodeCommand, encodeValue, RespWriter, writeValue } from './encode.js';
export { ErrorReply, OK, type RespValue, SimpleString } from './types.js';
