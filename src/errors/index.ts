export {
  AofqError,
  ERRORS,
  type ErrorCode,
  type ErrorParams,
  type ErrorSpec,
  isAofqError,
} from './registry.js';
