/**
 * The job-queue core's public surface: the Queues state machine, its request
 * and result types (BullMQ's names), the config defaults and the record names.
 */
export { COMMANDS, type Command, recordToBytes } from './codec.js';
export { backoffDelay, type Executed, Queues, type QueuesOptions, type RecordSink } from './queues.js';
export type * from './types.js';
export { JOB_STATES } from './types.js';
export { QUEUE_CONFIG_DEFAULTS } from './validate.js';
