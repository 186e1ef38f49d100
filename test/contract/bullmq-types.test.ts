// Compile-time contract: aofq's queue types (src/queue/types.ts) are assignable
// to BullMQ's types of the same names where the shapes overlap. `tsc` checks the
// type-level assertions; the runtime expects keep vitest counting the file and
// pin the lists of BullMQ fields aofq deliberately leaves out.
// BullMQ 6 is a devDependency used only by this test: its own published
// declarations are what we check against.

import type * as BullMQ from 'bullmq';
import { describe, expect, it } from 'vitest';
import type {
  BackoffOptions,
  JobJson,
  JobProgress,
  JobState,
  JobsOptions,
  KeepJobs,
  RateLimiterOptions,
} from '../../src/queue/types.js';

/** `true` only if A is assignable to B. */
type Assignable<A, B> = [A] extends [B] ? true : false;

/** Compiles only when T is `true`: `holds<false>()` is a type error. */
function holds<T extends true>(): T {
  return true as T;
}

const contract = {
  BackoffOptions: holds<Assignable<BackoffOptions, BullMQ.BackoffOptions>>(),
  KeepJobs: holds<Assignable<KeepJobs, BullMQ.KeepJobs>>(),
  JobProgress: holds<Assignable<JobProgress, BullMQ.JobProgress>>(),
  JobState: holds<Assignable<JobState, BullMQ.JobState>>(),
  RateLimiterOptions: holds<Assignable<RateLimiterOptions, BullMQ.RateLimiterOptions>>(),
  JobsOptions: holds<Assignable<JobsOptions, BullMQ.JobsOptions>>(),
  JobJson: holds<Assignable<JobJson, BullMQ.JobJson>>(),
  // The other way where BullMQ's shape is the narrower one.
  RateLimiterOptionsBack: holds<Assignable<BullMQ.RateLimiterOptions, RateLimiterOptions>>(),
  JobProgressBack: holds<Assignable<BullMQ.JobProgress, JobProgress>>(),
} satisfies Record<string, true>;

/**
 * Every BullMQ JobJson field that aofq's JobJson leaves out, and why. The key set is
 * checked by tsc: a field BullMQ adds or aofq starts to implement breaks the build.
 */
const omittedJobJsonFields: Record<Exclude<keyof BullMQ.JobJson, keyof JobJson>, string> = {
  parent: 'flows (parent/child jobs) are not implemented',
  parentKey: 'flows (parent/child jobs) are not implemented',
  repeatJobKey: 'job schedulers (repeatable jobs) are not implemented',
  debounceId: 'debounce was removed in BullMQ 6 (replaced by deduplication)',
  deferredFailure: 'no deferred failures: a nack fails or retries the job at once',
};

/** Every BullMQ job option aofq rejects (AOFQ_ERR_JOB_INVALID), and why. */
const omittedJobOptions: Record<Exclude<keyof BullMQ.JobsOptions, keyof JobsOptions>, string> = {
  keepLogs: 'job logs are not implemented',
  stackTraceLimit: 'fixed at BullMQ’s default of 10 stack traces per job',
  sizeLimit: 'the data size limit is per queue (maxDataBytes), not per job',
  repeatJobKey: 'job schedulers (repeatable jobs) are not implemented',
  parent: 'flows (parent/child jobs) are not implemented',
  prevMillis: 'job schedulers (repeatable jobs) are not implemented',
  deduplication: 'deduplication windows are not implemented; opts.jobId gives idempotent enqueue',
  failParentOnFailure: 'flows (parent/child jobs) are not implemented',
  continueParentOnFailure: 'flows (parent/child jobs) are not implemented',
  ignoreDependencyOnFailure: 'flows (parent/child jobs) are not implemented',
  removeDependencyOnFailure: 'flows (parent/child jobs) are not implemented',
  telemetry: 'OpenTelemetry context propagation is not implemented',
};

/** BullMQ job states aofq does not have. */
const omittedStates: Record<Exclude<BullMQ.JobState, JobState>, string> = {
  'waiting-children': 'flows (parent/child jobs) are not implemented',
};

describe('BullMQ type contract (bullmq@6 declarations)', () => {
  it('our types are assignable to BullMQ’s', () => {
    expect(Object.values(contract).every((ok) => ok === true)).toBe(true);
  });

  it('lists every BullMQ field left out, with a reason', () => {
    expect(Object.keys(omittedJobJsonFields).sort()).toEqual([
      'debounceId',
      'deferredFailure',
      'parent',
      'parentKey',
      'repeatJobKey',
    ]);
    expect(Object.keys(omittedJobOptions)).toHaveLength(12);
    expect(Object.keys(omittedStates)).toEqual(['waiting-children']);
    for (const reason of [
      ...Object.values(omittedJobJsonFields),
      ...Object.values(omittedJobOptions),
      ...Object.values(omittedStates),
    ]) {
      expect(reason.length).toBeGreaterThan(10);
    }
  });
});
