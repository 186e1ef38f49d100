/**
 * The fastify HTTP server: routes built from openapi.yaml, validation and
 * serialization from the api/*.json schemas, problem+json errors (also for
 * bad URLs and for requests Node's HTTP parser refuses), bearer-token
 * auth, health and readiness, long polls that end on disconnect or shutdown,
 * and on the same app the WebSocket API (`GET /v1/ws`, ws.ts), Prometheus
 * metrics (`GET /metrics`, metrics.ts) and the browsable docs (`GET /docs`,
 * docs.ts).
 *
 * It listens before the node has loaded its AOF: until `setBackend` is called
 * every route but the health ones, /metrics and /docs answers 503
 * AOFQ_ERR_SERVER_LOADING, and /readyz reports the load's progress.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import SerializerSelector from '@fastify/fast-json-stringify-compiler';
import { Ajv, type ValidateFunction } from 'ajv';
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { AofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import { LIMITS } from '../util/limits.js';
import { Authenticator, type Permission, type TokenEntry } from './auth.js';
import type { QueueBackend, RuntimeConfig } from './backend.js';
import { type Contract, loadContract, type Operation } from './contract.js';
import { DOCS_PREFIX, registerDocs } from './docs.js';
import { HANDLERS, type HandlerInput, type HandlerOutput } from './handlers.js';
import { LazyCompiles } from './lazy-compile.js';
import { METRICS_CONTENT_TYPE, type Metrics } from './metrics.js';
import { clientErrorOf, PROBLEM_CONTENT_TYPE, problemOf, retryAfterSeconds, toAofqError } from './problem.js';
import { registerWebSocket, type WebSocketHandle, type WsOptions } from './ws.js';
import { warmWsSchemas } from './ws-schemas.js';

export interface LoadProgress {
  loading: boolean;
  doneBytes: number;
  totalBytes: number;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  bodyLimit: number;
  tokens: readonly TokenEntry[];
  tls?: { cert: Buffer; key: Buffer } | null;
  logger: PinoLogger;
  config: RuntimeConfig;
  /** Progress of the AOF load while no backend is set. */
  loadProgress?: () => LoadProgress;
  contract?: Contract;
  /** Serve the WebSocket API at /v1/ws with these options (auth: the same tokens); attach the node later. */
  websocket?: Omit<WsOptions, 'authenticate' | 'logger'> | null;
  /** Serve GET /metrics from these metrics, and time every request into them. */
  metrics?: Metrics | null;
  /** Serve the browsable docs at /docs (default true). */
  docs?: boolean;
}

type Phase = 'loading' | 'ready' | 'closing';

declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: Permission;
    operationId?: string;
    /** Served while loading and closing too (after auth): /metrics. */
    ungated?: boolean;
  }
}

/** Longest path parameter fastify accepts (a job id is at most 256 bytes, URL-encoded up to 3x). */
const MAX_PARAM_LENGTH = 800;
/** Headers: Node's default cap is 16 KiB; we keep it explicit. */
const MAX_HEADER_BYTES = 16 * 1024;
/**
 * Node's server options, for HTTP and HTTPS alike. Node would answer an
 * HTTP/1.1 request without a Host header with a bare 400 of its own; the
 * onRequest hook below refuses it with a coded problem instead.
 */
const NODE_HTTP_OPTIONS = { maxHeaderSize: MAX_HEADER_BYTES, requireHostHeader: false } as const;
/** The signal of requests that nothing aborts (all but long polls). */
const NEVER_ABORTED = new AbortController().signal;
const PUBLIC_PATHS = new Set(['/healthz', '/readyz', '/openapi.json', '/openapi.yaml']);
/** Served by the server itself, not by a handler, although openapi.yaml describes them. */
const SERVER_PATHS = new Set([...PUBLIC_PATHS, '/metrics']);

function isDocsPath(url: string): boolean {
  return url === DOCS_PREFIX || url.startsWith(`${DOCS_PREFIX}/`);
}

/** Request bodies are UTF-8 JSON (RFC 8259): invalid bytes are refused, never replaced with U+FFFD. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Node's HTTP parser refused a request before any route saw it (the server's
 * `clientError` event): answer with a coded problem and close, as Node would
 * with its bare 400 / 431, unless a reply is already on its way on that socket.
 */
function answerClientError(logger: PinoLogger, err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || inFlight?.headersSent === true) {
    socket.destroy(err);
    return;
  }
  const error = clientErrorOf(err, MAX_HEADER_BYTES);
  logger.debug({ code: err.code, answer: error.code }, 'malformed HTTP request');
  const body = JSON.stringify(problemOf(error));
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function makeAjv(coerceTypes: boolean, contract: Contract): Ajv {
  const ajv = new Ajv({
    strict: true,
    // The schemas are checked against the meta-schema by the contract tests (and redocly lint);
    // compiling the meta-schema here cost about 0.1 s of every start.
    validateSchema: false,
    allowUnionTypes: true,
    allErrors: false,
    coerceTypes,
    removeAdditional: false,
    useDefaults: false,
  });
  for (const schema of contract.schemas) ajv.addSchema(schema);
  return ajv;
}

function isLongPoll(operationId: string, body: unknown): boolean {
  if (operationId !== 'leaseJobs' || body === null || typeof body !== 'object') return false;
  const waitMs = (body as { waitMs?: unknown }).waitMs;
  return typeof waitMs === 'number' && waitMs > 0;
}

function querySchema(operation: Operation): Record<string, unknown> | undefined {
  if (operation.query.length === 0) return undefined;
  const properties: Record<string, unknown> = {};
  for (const parameter of operation.query) properties[parameter.name] = parameter.schema;
  const required = operation.query.filter((p) => p.required).map((p) => p.name);
  return {
    type: 'object',
    additionalProperties: false,
    properties,
    ...(required.length > 0 ? { required } : {}),
  };
}

function paramsSchema(operation: Operation): Record<string, unknown> | undefined {
  const names = Object.keys(operation.pathParameters);
  if (names.length === 0) return undefined;
  const properties: Record<string, unknown> = {};
  for (const name of names) properties[name] = { $ref: operation.pathParameters[name] };
  return { type: 'object', additionalProperties: false, properties, required: names };
}

export class HttpServer {
  readonly app: FastifyInstance;
  private phase: Phase = 'loading';
  private backend: QueueBackend | null = null;
  /** Parked long polls, so that closing can answer them. */
  private readonly polls = new Set<AbortController>();
  private parkedPolls = 0;
  private connections = 0;
  private readonly pollsBySocket = new WeakMap<Socket, number>();
  private readonly authenticator: Authenticator;
  private readonly options: HttpServerOptions;
  /** The WebSocket API when enabled: `attach` the node once it has loaded. */
  websocket: WebSocketHandle | null = null;

  private constructor(
    app: FastifyInstance,
    options: HttpServerOptions,
    private readonly lazy: LazyCompiles,
  ) {
    this.app = app;
    this.options = options;
    this.authenticator = new Authenticator(options.tokens);
  }

  static create(options: HttpServerOptions): HttpServer {
    const contract = options.contract ?? loadContract();
    let server: HttpServer | null = null;
    const lazy = new LazyCompiles();
    const app = Fastify({
      loggerInstance: options.logger,
      bodyLimit: options.bodyLimit,
      routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
      http: NODE_HTTP_OPTIONS,
      ...(options.tls
        ? { https: { ...NODE_HTTP_OPTIONS, cert: options.tls.cert, key: options.tls.key } }
        : {}),
      requestIdHeader: 'x-request-id',
      genReqId: () => randomUUID(),
      // A path that is not valid percent-encoding, or a parameter over maxParamLength: coded problems too.
      frameworkErrors: (error: Error, request: FastifyRequest, reply: FastifyReply) =>
        server?.replyError(error, request, reply),
      clientErrorHandler: (err: NodeJS.ErrnoException, socket: Duplex) =>
        answerClientError(options.logger, err, socket),
      return503OnClosing: false,
      forceCloseConnections: 'idle',
      // One line per request at info is too much for a queue; requests are logged at debug below.
      logController: new LogController({ disableRequestLogging: true }),
      // Response serializers are built on first use or by warm() after start (lazy-compile.ts).
      schemaController: {
        compilersFactory: {
          buildSerializer: (...factory: Parameters<SerializerSelector.SerializerFactory>) => {
            const build = SerializerSelector()(...factory);
            return (route: SerializerSelector.RouteDefinition) => lazy.serializer(() => build(route));
          },
        },
      },
      // biome-ignore lint/suspicious/noExplicitAny: fastify's overloads pick the https flavour only for literal options
    } as any) as unknown as FastifyInstance;
    server = new HttpServer(app, options, lazy);
    server.install(contract);
    return server;
  }

  /** The node is loaded: start serving the API, and compile the schemas not used yet in idle turns. */
  setBackend(backend: QueueBackend): void {
    this.backend = backend;
    if (this.phase === 'loading') this.phase = 'ready';
    void this.lazy.warm().then(() => warmWsSchemas());
  }

  get ready(): boolean {
    return this.phase === 'ready';
  }

  async listen(): Promise<{ host: string; port: number }> {
    await this.app.listen({ host: this.options.host, port: this.options.port });
    const address = this.app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : this.options.port;
    return { host: this.options.host, port };
  }

  /**
   * Stop: refuse new requests, answer the long polls (empty), let in-flight
   * requests finish and close the listener. The caller closes the node after.
   */
  async close(): Promise<void> {
    this.phase = 'closing';
    for (const poll of this.polls) poll.abort();
    await this.app.close();
  }

  /** Redis's INFO clients fields that the HTTP layer knows: long polls are its blocked clients. */
  private clientsInfo(): { connected_clients: number; blocked_clients: number } {
    return { connected_clients: this.connections, blocked_clients: this.parkedPolls };
  }

  /** Count a long poll in, or refuse it: AOFQ_ERR_HTTP_TOO_MANY_POLLS (429). */
  private admitLongPoll(socket: Socket): void {
    const onSocket = this.pollsBySocket.get(socket) ?? 0;
    if (onSocket >= LIMITS.longPollsPerConnection || this.parkedPolls >= LIMITS.longPollsMax) {
      throw new AofqError('AOFQ_ERR_HTTP_TOO_MANY_POLLS');
    }
    this.pollsBySocket.set(socket, onSocket + 1);
    this.parkedPolls++;
  }

  private releaseLongPoll(socket: Socket): void {
    const onSocket = this.pollsBySocket.get(socket) ?? 0;
    assert(onSocket > 0 && this.parkedPolls > 0, 'long poll accounting');
    this.pollsBySocket.set(socket, onSocket - 1);
    this.parkedPolls--;
  }

  /**
   * Run a long poll: counted against the limits, aborted when the client goes
   * away or the server closes (the handler then answers with what it has).
   */
  private async longPoll(
    request: FastifyRequest,
    reply: FastifyReply,
    run: (signal: AbortSignal, clientGone: () => boolean) => Promise<HandlerOutput>,
  ): Promise<HandlerOutput> {
    const socket = request.raw.socket;
    this.admitLongPoll(socket);
    const controller = new AbortController();
    let clientGone = false;
    const onClose = (): void => {
      if (reply.raw.writableFinished) return;
      clientGone = true;
      controller.abort();
    };
    reply.raw.once('close', onClose);
    this.polls.add(controller);
    // Closing began after this request passed the gate: do not let it park.
    if (this.phase === 'closing') controller.abort();
    try {
      return await run(controller.signal, () => clientGone);
    } finally {
      this.polls.delete(controller);
      reply.raw.off('close', onClose);
      this.releaseLongPoll(socket);
    }
  }

  private sendProblem(request: FastifyRequest, reply: FastifyReply, error: AofqError): FastifyReply {
    const retryAfter = retryAfterSeconds(error.code);
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    reply.header('x-request-id', request.id);
    return reply
      .code(error.status)
      .type(PROBLEM_CONTENT_TYPE)
      .send(JSON.stringify(problemOf(error, request.url, request.id)));
  }

  /** Any error of a request, as its problem+json reply. */
  private replyError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const { error, internal } = toAofqError(err, {
      bodyLimit: this.options.bodyLimit,
      contentType: request.headers['content-type']?.slice(0, 100),
      maxParamLength: MAX_PARAM_LENGTH,
    });
    if (internal) request.log.error({ err }, 'internal error');
    else if (error.status >= 500) request.log.warn({ code: error.code }, error.message);
    return this.sendProblem(request, reply, error);
  }

  private install(contract: Contract): void {
    const { app } = this;
    for (const schema of contract.schemas) app.addSchema(schema);
    // JSON only: a text/plain body is 415, not a string that fails validation.
    app.removeContentTypeParser('text/plain');
    // fastify's own JSON parser (prototype poisoning refused), except that an empty body is no
    // body: `POST .../pause` with `Content-Type: application/json` and nothing else is fine.
    const parseJson = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      if (bytes.length === 0) {
        done(null, undefined);
        return;
      }
      let text: string;
      try {
        text = UTF8.decode(bytes);
      } catch {
        done(new AofqError('AOFQ_ERR_HTTP_BAD_JSON', { reason: 'the body is not valid UTF-8' }), undefined);
        return;
      }
      parseJson(request, text, done);
    });
    const bodyAjv = makeAjv(false, contract);
    const partAjv = makeAjv(true, contract);
    const compiled = new WeakMap<object, ValidateFunction>();
    app.setValidatorCompiler(({ schema, httpPart }) => {
      let validate = compiled.get(schema);
      if (!validate) {
        const ajv = httpPart === 'body' ? bodyAjv : partAjv;
        validate = this.lazy.validator(() => ajv.compile(schema));
        compiled.set(schema, validate);
      }
      return validate;
    });

    app.setErrorHandler((err, request, reply) => this.replyError(err, request, reply));
    app.setNotFoundHandler((request, reply) =>
      this.sendProblem(
        request,
        reply,
        new AofqError('AOFQ_ERR_HTTP_NOT_FOUND', {
          method: request.method,
          url: request.url.split('?')[0] ?? '',
        }),
      ),
    );
    app.addHook('onSend', async (request, reply, payload) => {
      reply.header('x-request-id', request.id);
      // While closing, do not keep the connection alive: close() waits for every connection to end.
      if (this.phase === 'closing') reply.header('connection', 'close');
      return payload;
    });
    const metrics = this.options.metrics ?? null;
    app.addHook('onResponse', async (request, reply) => {
      const elapsed = reply.elapsedTime;
      if (metrics !== null) {
        const url = request.routeOptions.url;
        const operation =
          request.routeOptions.config.operationId ??
          (url === undefined ? 'notFound' : isDocsPath(url) ? 'docs' : 'other');
        metrics.onHttpResponse(operation, reply.statusCode, elapsed);
      }
      request.log.debug(
        { method: request.method, url: request.url, statusCode: reply.statusCode, ms: elapsed },
        'request',
      );
    });
    // Auth first, then the loading / shutting-down gate; both before the body is read.
    // RFC 9112 §3.2: a server must refuse an HTTP/1.1 request without a Host header with 400.
    app.addHook('onRequest', async (request) => {
      if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
        throw new AofqError('AOFQ_ERR_HTTP_BAD_REQUEST', {
          reason: 'an HTTP/1.1 request needs a Host header',
        });
      }
    });
    app.addHook('onRequest', async (request) => {
      const config = request.routeOptions.config;
      const permission = config.permission ?? 'public';
      const url = request.routeOptions.url ?? '';
      if (permission === 'public' && (PUBLIC_PATHS.has(url) || isDocsPath(url))) return;
      this.authenticator.authorize(
        request.headers.authorization,
        permission,
        config.operationId ?? 'do this',
      );
      if (config.ungated === true) return;
      if (this.phase === 'loading') throw new AofqError('AOFQ_ERR_SERVER_LOADING');
      if (this.phase === 'closing') throw new AofqError('AOFQ_ERR_SERVER_SHUTTING_DOWN');
    });

    app.server.on('connection', (socket: Socket) => {
      this.connections++;
      socket.once('close', () => {
        this.connections--;
      });
    });
    this.installHealth(contract);
    this.installOperations(contract);
    if (this.options.docs !== false) registerDocs(app, contract);
    if (this.options.websocket !== undefined && this.options.websocket !== null) {
      const authenticator = this.authenticator;
      this.websocket = registerWebSocket(app, null, {
        ...this.options.websocket,
        logger: this.options.logger.child({ component: 'websocket' }),
        ...(authenticator.open
          ? {}
          : {
              authenticate: (token) =>
                token === undefined ? null : (authenticator.principalOf(token)?.role ?? null),
            }),
      });
    }
  }

  private readiness(): { status: number; body: object } {
    const backend = this.backend;
    if (this.phase === 'ready' && backend !== null) {
      const writable = backend.writable;
      return {
        status: writable ? 200 : 503,
        body: { ready: writable, loading: false, doneBytes: 0, totalBytes: 0, writable },
      };
    }
    const progress = this.options.loadProgress?.() ?? { loading: true, doneBytes: 0, totalBytes: 0 };
    return {
      status: 503,
      body: {
        ready: false,
        loading: this.phase === 'loading',
        doneBytes: progress.doneBytes,
        totalBytes: progress.totalBytes,
        writable: false,
      },
    };
  }

  private installHealth(contract: Contract): void {
    const { app } = this;
    app.get(
      '/healthz',
      {
        schema: { response: { 200: { $ref: 'Health.json' } } },
        config: { permission: 'public', operationId: 'healthz' },
      },
      async () => ({ status: 'ok' }),
    );
    app.get(
      '/readyz',
      {
        schema: { response: { 200: { $ref: 'Readiness.json' }, 503: { $ref: 'Readiness.json' } } },
        config: { permission: 'public', operationId: 'readyz' },
      },
      async (_request, reply) => {
        const { status, body } = this.readiness();
        return reply.code(status as 200 | 503).send(body);
      },
    );
    const json = JSON.stringify(contract.document);
    app.get(
      '/openapi.json',
      { config: { permission: 'public', operationId: 'getOpenApiJson' } },
      async (_request, reply) => reply.type('application/json; charset=utf-8').send(json),
    );
    app.get(
      '/openapi.yaml',
      { config: { permission: 'public', operationId: 'getOpenApiYaml' } },
      async (_request, reply) => reply.type('application/yaml; charset=utf-8').send(contract.yamlText),
    );
    const metrics = this.options.metrics;
    if (metrics !== undefined && metrics !== null) {
      // Admin only when tokens are configured (a scraper uses an admin token); served while loading too.
      app.get(
        '/metrics',
        { config: { permission: 'admin', operationId: 'getMetrics', ungated: true } },
        async (_request, reply) => reply.type(METRICS_CONTENT_TYPE).send(await metrics.text()),
      );
    }
  }

  private installOperations(contract: Contract): void {
    const { app } = this;
    const seen = new Set<string>();
    for (const operation of contract.operations) {
      if (SERVER_PATHS.has(operation.path)) continue;
      const handler = HANDLERS[operation.operationId];
      if (handler === undefined) throw new Error(`openapi.yaml: no handler for ${operation.operationId}`);
      seen.add(operation.operationId);
      const response: Record<number, unknown> = {};
      for (const [status, id] of Object.entries(operation.responses)) {
        if (id !== null) response[Number(status)] = { $ref: id };
      }
      const schema: Record<string, unknown> = { response };
      if (operation.body !== null) schema.body = { $ref: operation.body };
      const query = querySchema(operation);
      if (query) schema.querystring = query;
      const params = paramsSchema(operation);
      if (params) schema.params = params;
      app.route({
        method: operation.method,
        url: operation.route,
        schema,
        config: { permission: operation.permission, operationId: operation.operationId },
        handler: async (request, reply) => {
          const backend = this.backend;
          if (backend === null) throw new AofqError('AOFQ_ERR_SERVER_LOADING');
          const input: HandlerInput = {
            params: (request.params ?? {}) as Record<string, string>,
            query: (request.query ?? {}) as Record<string, unknown>,
            body: request.body,
            signal: NEVER_ABORTED,
            clientGone: () => false,
            accept: request.headers.accept ?? '',
          };
          const context = { backend, config: this.options.config, clientsInfo: () => this.clientsInfo() };
          const output = isLongPoll(operation.operationId, request.body)
            ? await this.longPoll(request, reply, (signal, clientGone) =>
                handler(context, { ...input, signal, clientGone }),
              )
            : await handler(context, input);
          reply.code(output.status);
          if (output.contentType !== undefined) reply.type(output.contentType);
          return reply.send(output.body);
        },
      });
    }
    for (const operationId of Object.keys(HANDLERS)) {
      if (!seen.has(operationId)) throw new Error(`handler ${operationId} is not in openapi.yaml`);
    }
  }
}
