/**
 * The JSON texts of the WebSocket API's hottest messages, written by hand:
 * the `job` and `jobs` pushes and the `ok` reply. JSON.stringify of a whole message walks
 * a fresh object graph per message; these concatenate the known fields in the
 * order Job.toJson creates them and give JSON.stringify only the strings and
 * small objects. The result parses to exactly what JSON.stringify would give
 * (test/unit/ws-text.test.ts checks it over random jobs).
 */
import type { JobJson, LeasedJob } from '../queue/types.js';

const text = JSON.stringify;

/** JSON.stringify(job) for a JobJson made by Job.toJson. */
export function jobJsonText(job: JobJson): string {
  let out =
    `{"id":${text(job.id)},"name":${text(job.name)},"data":${text(job.data)},"opts":${text(job.opts)}` +
    `,"progress":${text(job.progress)},"attemptsMade":${job.attemptsMade}` +
    `,"attemptsStarted":${job.attemptsStarted},"stalledCounter":${job.stalledCounter}` +
    `,"timestamp":${job.timestamp},"delay":${job.delay},"priority":${job.priority}` +
    `,"returnvalue":${text(job.returnvalue)},"failedReason":${text(job.failedReason)}` +
    `,"stacktrace":${text(job.stacktrace)}`;
  if (job.processedOn !== undefined) out += `,"processedOn":${job.processedOn}`;
  if (job.finishedOn !== undefined) out += `,"finishedOn":${job.finishedOn}`;
  if (job.processedBy !== undefined) out += `,"processedBy":${text(job.processedBy)}`;
  if (job.deduplicationId !== undefined) out += `,"deduplicationId":${text(job.deduplicationId)}`;
  if (job.deadLetter !== undefined) out += `,"deadLetter":${text(job.deadLetter)}`;
  return `${out}}`;
}

/** The `job` message that pushes a lease to a consumer. */
export function jobMessageText(queue: string, leased: LeasedJob): string {
  return `{"type":"job","queue":${text(queue)},"job":${jobJsonText(leased.job)},"token":${leased.token},"leaseUntil":${leased.leaseUntil}}`;
}

/** The `jobs` message: the leases of one round for a subscription made with `batch`. */
export function jobsMessageText(queue: string, leased: readonly LeasedJob[]): string {
  let out = `{"type":"jobs","queue":${text(queue)},"jobs":[`;
  for (let i = 0; i < leased.length; i++) {
    const one = leased[i] as LeasedJob;
    out += `${i === 0 ? '' : ','}{"job":${jobJsonText(one.job)},"token":${one.token},"leaseUntil":${one.leaseUntil}}`;
  }
  return `${out}]}`;
}

/**
 * The `ok` reply `{type: 'ok', rid, ...result}` as text. A result that names
 * `type` or `rid` itself (none does) goes through the general path, which
 * keeps the spread's semantics.
 */
export function okMessageText(rid: string | number, result: object): string {
  if ('type' in result || 'rid' in result) return text({ type: 'ok', rid, ...result });
  const rest = text(result);
  return rest === '{}'
    ? `{"type":"ok","rid":${text(rid)}}`
    : `{"type":"ok","rid":${text(rid)},${rest.slice(1)}`;
}
