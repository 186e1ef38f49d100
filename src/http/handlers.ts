/**
 * One handler per operationId of openapi.yaml. A handler turns a validated
 * request into queue requests on the backend and shapes the reply; it knows
 * nothing of fastify, so its inputs are already checked against api/*.json.
 */
import { AofqError } from '../errors/index.js';
import type { JobJson, JobState, LeasedJob, QueueConfigInput } from '../queue/types.js';
import type { InfoFields, QueueBackend, RuntimeConfig } from './backend.js';

export interface HandlerInput {
  readonly params: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, unknown>>;
  // biome-ignore lint/suspicious/noExplicitAny: validated against the operation's JSON Schema before it gets here
  readonly body: any;
  /** Aborted when the client goes away or the server shuts down. */
  readonly signal: AbortSignal;
  /** True once the client has disconnected (not when the server is closing). */
  readonly clientGone: () => boolean;
  /** The request's Accept header. */
  readonly accept: string;
}

export interface HandlerOutput {
  readonly status: number;
  readonly body: unknown;
  /** Set for non-JSON answers (INFO's text form). */
  readonly contentType?: string;
}

export interface HandlerContext {
  readonly backend: QueueBackend;
  readonly config: RuntimeConfig;
  /** INFO fields the HTTP layer owns (the `clients` section). */
  readonly clientsInfo: () => InfoFields;
}

export type Handler = (context: HandlerContext, input: HandlerInput) => Promise<HandlerOutput>;

const ok = (body: unknown): HandlerOutput => ({ status: 200, body });

function param(input: HandlerInput, name: string): string {
  const value = input.params[name];
  if (value === undefined) throw new AofqError('AOFQ_ERR_HTTP_VALIDATION', { reason: `missing ${name}` });
  return value;
}

/** A job as the API shows it: BullMQ's JobJson plus aofq's state (and lease end, when active). */
type JobView = JobJson & { state: JobState; leaseUntil?: number | null };

async function jobView(backend: QueueBackend, queue: string, id: string): Promise<JobView> {
  const { job, state, leaseUntil } = await backend.queue({ op: 'getJob', queue, id });
  return state === 'active' ? { ...job, state, leaseUntil } : { ...job, state };
}

function leasedView(leased: LeasedJob): object {
  return { ...leased.job, state: 'active', token: leased.token, leaseUntil: leased.leaseUntil };
}

async function queueView(backend: QueueBackend, queue: string): Promise<object> {
  const counts = await backend.queue({ op: 'getJobCounts', queue });
  const { config } = await backend.queue({ op: 'getConfig', queue });
  return { name: queue, counts, config };
}

/** Redis's INFO text form: `# Section\r\nfield:value\r\n`, sections separated by a blank line. */
export function formatInfo(sections: Record<string, InfoFields>): string {
  return Object.entries(sections)
    .map(([name, fields]) => {
      const title = name.charAt(0).toUpperCase() + name.slice(1);
      const lines = Object.entries(fields).map(([key, value]) => `${key}:${value}\r\n`);
      return `# ${title}\r\n${lines.join('')}`;
    })
    .join('\r\n');
}

export const HANDLERS: Readonly<Record<string, Handler>> = {
  listQueues: async ({ backend }) => ok({ queues: backend.listQueues() }),

  getQueue: async ({ backend }, input) => ok(await queueView(backend, param(input, 'queue'))),

  updateQueue: async ({ backend }, input) => {
    const queue = param(input, 'queue');
    await backend.queue({ op: 'setConfig', queue, config: input.body as QueueConfigInput });
    return ok(await queueView(backend, queue));
  },

  deleteQueue: async ({ backend }, input) => {
    const force = input.query.force === true;
    const { removed } = await backend.queue({ op: 'obliterate', queue: param(input, 'queue'), force });
    return ok({ removed });
  },

  pauseQueue: async ({ backend }, input) =>
    ok(await backend.queue({ op: 'pause', queue: param(input, 'queue') })),

  resumeQueue: async ({ backend }, input) =>
    ok(await backend.queue({ op: 'resume', queue: param(input, 'queue') })),

  drainQueue: async ({ backend }, input) =>
    ok(await backend.queue({ op: 'drain', queue: param(input, 'queue') })),

  cleanQueue: async ({ backend }, input) => {
    const { grace, limit, state } = input.body as { grace: number; limit: number; state: JobState };
    return ok(
      await backend.queue({ op: 'clean', queue: param(input, 'queue'), graceMs: grace, limit, state }),
    );
  },

  enqueueJob: async ({ backend }, input) => {
    const queue = param(input, 'queue');
    const { name, data, opts } = input.body as { name: string; data?: unknown; opts?: object };
    const { jobs } = await backend.queue({ op: 'add', queue, jobs: [{ name, data, opts }] });
    const added = jobs[0];
    if (added === undefined) throw new AofqError('AOFQ_ERR_INTERNAL');
    return { status: added.duplicate ? 200 : 201, body: await jobView(backend, queue, added.id) };
  },

  enqueueJobs: async ({ backend }, input) => {
    const queue = param(input, 'queue');
    const { jobs } = await backend.queue({ op: 'add', queue, jobs: input.body.jobs });
    const views = [];
    for (const added of jobs) views.push(await jobView(backend, queue, added.id));
    return { status: 201, body: { jobs: views } };
  },

  leaseJobs: async ({ backend }, input) => {
    const queue = param(input, 'queue');
    const { count, leaseMs, waitMs, consumer } = input.body as {
      count?: number;
      leaseMs?: number;
      waitMs?: number;
      consumer?: string;
    };
    const request = { op: 'lease' as const, queue, count: count ?? 1, leaseMs, consumer };
    const result =
      waitMs !== undefined && waitMs > 0
        ? await backend.leaseWait(request, waitMs, input.signal)
        : await backend.queue(request);
    if (input.clientGone() && result.jobs.length > 0) {
      // Nobody will receive these: give them back at once rather than at lease expiry (no attempt counted).
      for (const leased of result.jobs) {
        await backend
          .queue({ op: 'release', queue, id: leased.job.id, token: leased.token })
          .catch(() => undefined);
      }
    }
    return ok({
      jobs: result.jobs.map(leasedView),
      rateLimitedUntil: result.rateLimitedUntil,
      paused: result.paused,
    });
  },

  ackJob: async ({ backend }, input) => {
    const { token, returnvalue } = input.body as { token: number; returnvalue?: unknown };
    const queue = param(input, 'queue');
    const { id } = await backend.queue({ op: 'ack', queue, id: param(input, 'id'), token, returnvalue });
    return ok({ id, state: 'completed' });
  },

  nackJob: async ({ backend }, input) => {
    const body = input.body as {
      token: number;
      failedReason: string;
      stacktrace?: string;
      delayMs?: number;
      retry?: boolean;
    };
    return ok(
      await backend.queue({ op: 'nack', queue: param(input, 'queue'), id: param(input, 'id'), ...body }),
    );
  },

  extendLease: async ({ backend }, input) => {
    const { token, leaseMs } = input.body as { token: number; leaseMs?: number };
    const id = param(input, 'id');
    const { leaseUntil } = await backend.queue({
      op: 'extend',
      queue: param(input, 'queue'),
      id,
      token,
      leaseMs,
    });
    return ok({ id, state: 'active', leaseUntil });
  },

  releaseJob: async ({ backend }, input) => {
    const { token, delayMs } = input.body as { token: number; delayMs?: number };
    return ok(
      await backend.queue({
        op: 'release',
        queue: param(input, 'queue'),
        id: param(input, 'id'),
        token,
        delayMs,
      }),
    );
  },

  updateJobProgress: async ({ backend }, input) => {
    const { token, progress } = input.body as { token?: number; progress: object };
    return ok(
      await backend.queue({
        op: 'progress',
        queue: param(input, 'queue'),
        id: param(input, 'id'),
        token,
        progress,
      }),
    );
  },

  getJob: async ({ backend }, input) => ok(await jobView(backend, param(input, 'queue'), param(input, 'id'))),

  listJobs: async ({ backend }, input) => {
    const state = input.query.state as JobState;
    const cursor = input.query.cursor as string | undefined;
    const limit = (input.query.limit as number | undefined) ?? 100;
    const result = await backend.queue({
      op: 'listJobs',
      queue: param(input, 'queue'),
      state,
      cursor,
      limit,
    });
    return ok({ jobs: result.jobs.map((job) => ({ ...job, state })), cursor: result.cursor });
  },

  removeJob: async ({ backend }, input) =>
    ok(await backend.queue({ op: 'remove', queue: param(input, 'queue'), id: param(input, 'id') })),

  retryJob: async ({ backend }, input) =>
    ok(
      await backend.queue({
        op: 'retryJob',
        queue: param(input, 'queue'),
        id: param(input, 'id'),
        state: input.query.state as 'failed' | 'completed' | undefined,
        resetAttemptsMade: input.query.resetAttemptsMade as boolean | undefined,
        resetAttemptsStarted: input.query.resetAttemptsStarted as boolean | undefined,
      }),
    ),

  promoteJob: async ({ backend }, input) => {
    const id = param(input, 'id');
    const { ids } = await backend.queue({ op: 'promote', queue: param(input, 'queue'), id });
    if (!ids.includes(id))
      throw new AofqError('AOFQ_ERR_JOB_STATE', {
        id,
        state: 'not delayed',
        reason: 'only a delayed job can be promoted',
      });
    return ok({ id, state: 'waiting' });
  },

  redriveDeadLetters: async ({ backend }, input) => {
    const count = input.query.count as number | undefined;
    return ok(await backend.queue({ op: 'redrive', queue: param(input, 'queue'), count }));
  },

  getInfo: async ({ backend, clientsInfo }, input) => {
    const all: Record<string, InfoFields> = { ...backend.info(), clients: clientsInfo() };
    const section = input.query.section as string | undefined;
    let sections: Record<string, InfoFields> = all;
    if (section !== undefined && section !== 'all' && section !== 'everything' && section !== 'default') {
      const fields = all[section.toLowerCase()];
      sections = fields === undefined ? {} : { [section.toLowerCase()]: fields };
    }
    if (/\btext\/plain\b/.test(input.accept) && !/\bapplication\/json\b/.test(input.accept)) {
      return { status: 200, body: formatInfo(sections), contentType: 'text/plain; charset=utf-8' };
    }
    return ok(sections);
  },

  rewriteAof: async ({ backend }) => ({ status: 202, body: await backend.rewrite() }),

  getConfig: async ({ config }) => ok(config.get()),

  setConfig: async ({ config }, input) => {
    for (const [name, value] of Object.entries(input.body as Record<string, string>)) config.set(name, value);
    return ok(config.get());
  },
};
