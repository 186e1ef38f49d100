/**
 * `aofq server`: load the configuration, start the listeners (the HTTP server
 * with the WebSocket API, /metrics and /docs on it, and the RESP port), all
 * before the AOF has loaded, so /readyz can say how far the load is and a bind
 * failure shows at once; then open the node, attach it to every listener,
 * serve, and on SIGTERM/SIGINT shut down in order: refuse new requests,
 * answer long polls, close WebSocket clients with a 1001 close frame (their
 * leases released), finish in-flight requests, close the RESP port, and last
 * close the node (flush + fsync).
 *
 * Exit codes: 0 after a clean shutdown, 1 when the node or a listener fails,
 * 2 for a configuration error (nothing was started).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import type { AppendFsync } from '../aof/config.js';
import { isAofqError } from '../errors/index.js';
import type { QueueBackend, RuntimeConfig } from '../http/backend.js';
import { Metrics, type MetricsSource } from '../http/metrics.js';
import { type RespPort, startRespPort } from '../http/resp-port.js';
import { HttpServer } from '../http/server.js';
import { AofqNode, type NodeOptions } from '../node/node.js';
import {
  checkRuntimeDirective,
  type LoadedConfig,
  loadConfig,
  redactedDirectives,
  toLogLevel,
} from './config.js';

export interface ServerIo {
  stderr: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  /** Resolves when the process is asked to stop; defaults to SIGTERM/SIGINT. */
  stopSignal?: Promise<string>;
}

const STARTED_AT_MS = Date.now();
/** After a shutdown the process exits by itself; if a stray handle keeps it alive, this ends it. */
const EXIT_GRACE_MS = 3000;

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (signal: string): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** Bytes of AOF files on disk: the total the load will read (progress before the node reports). */
function aofBytesOnDisk(dir: string): number {
  let total = 0;
  try {
    for (const name of readdirSync(dir)) {
      if (name.endsWith('.aof')) total += statSync(join(dir, name)).size;
    }
  } catch {
    return 0;
  }
  return total;
}

/** The thin adapter from the node to what the HTTP layer needs. */
export function backendOf(node: AofqNode, port: number): QueueBackend {
  return {
    queue: (request) => node.queue(request),
    leaseWait: (request, waitMs, signal) => node.leaseWait(request, waitMs, signal),
    listQueues: () => node.queues.listQueues(),
    info: () => ({
      server: {
        aofq_version: process.env.npm_package_version ?? '0.1.0',
        process_id: process.pid,
        tcp_port: port,
        uptime_in_seconds: Math.floor((Date.now() - STARTED_AT_MS) / 1000),
      },
      persistence: node.aof.info(),
    }),
    rewrite: () => node.rewrite(),
    get writable() {
      return node.aof.writable;
    },
    close: () => node.close(),
  };
}

function runtimeConfigOf(
  loaded: LoadedConfig,
  logger: pino.Logger,
  getNode: () => AofqNode | null,
  getResp: () => RespPort | null,
): RuntimeConfig {
  const directives: Record<string, string> = { ...loaded.directives };
  return {
    get: () => {
      // What the RESP port's CONFIG SET may have changed is read live.
      const live: Record<string, string> = { ...directives };
      const node = getNode();
      if (node !== null) live.appendfsync = node.aof.appendFsync;
      const resp = getResp();
      if (resp !== null) {
        live.maxclients = String(resp.maxClients);
        live['client-query-buffer-limit'] = String(resp.queryBufferLimit);
      }
      return redactedDirectives(live);
    },
    set: (name, value) => {
      const normalized = checkRuntimeDirective(name, value);
      if (name === 'appendfsync') getNode()?.aof.setAppendFsync(normalized as AppendFsync);
      if (name === 'loglevel') logger.level = toLogLevel(normalized);
      directives[name] = normalized;
      logger.info({ directive: name, value: normalized }, 'config set');
    },
  };
}

export async function runServer(args: string[], io?: Partial<ServerIo>): Promise<number> {
  const stderr = io?.stderr ?? ((text: string) => process.stderr.write(text));
  let loaded: LoadedConfig;
  let tls: { cert: Buffer; key: Buffer } | null = null;
  try {
    loaded = loadConfig({
      args,
      env: io?.env ?? process.env,
      readFile: (path) => readFileSync(path, 'utf8'),
    });
    const { tlsCertFile, tlsKeyFile } = loaded.config;
    if (tlsCertFile !== null && tlsKeyFile !== null) {
      try {
        tls = { cert: readFileSync(tlsCertFile), key: readFileSync(tlsKeyFile) };
      } catch (err) {
        stderr(`aofq: cannot read the TLS certificate or key: ${(err as Error).message}\n`);
        return 2;
      }
    }
  } catch (err) {
    if (isAofqError(err)) {
      stderr(`aofq: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  for (const warning of loaded.warnings) stderr(`aofq: warning: ${warning}\n`);
  const { config } = loaded;

  const logger = pino({ level: config.loglevel, base: { pid: process.pid } });
  let node: AofqNode | null = null;
  let resp: RespPort | null = null;
  const aofDir = join(config.aof.dir, config.aof.appenddirname);
  const progress = { doneBytes: 0, totalBytes: aofBytesOnDisk(aofDir) };
  const loadState = () => ({ loading: node === null, ...progress });
  const metrics = new Metrics(loadState);
  const runtimeConfig = runtimeConfigOf(
    loaded,
    logger,
    () => node,
    () => resp,
  );
  const http = HttpServer.create({
    host: config.host,
    port: config.port,
    bodyLimit: config.bodyLimit,
    tokens: config.tokens,
    tls,
    logger,
    config: runtimeConfig,
    loadProgress: loadState,
    websocket: config.ws,
    metrics,
  });

  let address: { host: string; port: number };
  try {
    address = await http.listen();
  } catch (err) {
    logger.error({ err }, 'cannot listen');
    stderr(`aofq: cannot listen on ${config.host}:${config.port}: ${(err as Error).message}\n`);
    await http.close().catch(() => undefined);
    return 1;
  }

  // The RESP port listens now too, with the node to come: its clients wait until it has loaded.
  let nodeOpened: (opened: AofqNode) => void = () => {};
  let nodeFailed: (err: unknown) => void = () => {};
  const nodeForResp = new Promise<AofqNode>((resolve, reject) => {
    nodeOpened = resolve;
    nodeFailed = reject;
  });
  nodeForResp.catch(() => undefined);
  if (config.respPort !== 0) {
    try {
      resp = await startRespPort(nodeForResp, {
        host: config.respHost,
        port: config.respPort,
        tokens: config.tokens.map((token) => ({ name: token.name, secret: token.secret, role: token.role })),
        maxClients: config.maxClients,
        queryBufferLimit: config.clientQueryBufferLimit,
        maxBulkBytes: config.protoMaxBulkLen,
        logger: logger.child({ component: 'resp' }),
        aofConfig: config.aof,
        getConfig: () => runtimeConfig.get(),
        setConfig: (name, value) => {
          runtimeConfig.set(name, value);
          return true;
        },
      });
    } catch (err) {
      logger.error({ err }, 'cannot listen on the RESP port');
      stderr(
        `aofq: cannot listen on the RESP port ${config.respHost}:${config.respPort}: ${(err as Error).message}` +
          ' (set resp-port to another port, or 0 to disable it)\n',
      );
      await http.close().catch(() => undefined);
      return 1;
    }
  }
  logger.info(
    {
      event: 'listening',
      host: address.host,
      port: address.port,
      resp: resp === null ? null : { host: config.respHost, port: resp.port },
      tls: tls !== null,
      open: config.tokens.length === 0,
    },
    'aofq listening',
  );

  const stop = io?.stopSignal ?? waitForSignal();
  const nodeOptions: NodeOptions = {
    logger: logger.child({ component: 'node' }),
    onLoadProgress: (doneBytes, total) => {
      progress.doneBytes = doneBytes;
      progress.totalBytes = total;
    },
    onFsync: (latencyUs) => metrics.onFsync(latencyUs),
  };
  const opening = AofqNode.open(config.aof, nodeOptions);
  const outcome = await Promise.race([
    opening.then(
      (opened) => ({ kind: 'opened' as const, node: opened }),
      (err: unknown) => ({ kind: 'failed' as const, err }),
    ),
    stop.then((signal) => ({ kind: 'signal' as const, signal })),
  ]);

  let exitCode = 0;
  if (outcome.kind === 'failed') {
    logger.error({ err: outcome.err }, 'cannot open the AOF');
    nodeFailed(outcome.err);
    await Promise.allSettled([http.close(), resp?.close()]);
    return 1;
  }
  if (outcome.kind === 'opened') {
    const opened = outcome.node;
    node = opened;
    opened.onQueueRequest((request, result) => metrics.onQueueRequest(request, result));
    opened.onQueueEvent((queue, event) => metrics.onQueueEvent(queue, event));
    metrics.attach(metricsSourceOf(opened, http, () => resp));
    http.websocket?.attach(opened);
    nodeOpened(opened);
    http.setBackend(backendOf(opened, address.port));
    logger.info({ event: 'ready' }, 'aofq ready');
    const signal = await stop;
    logger.info({ signal }, 'shutting down');
  } else {
    logger.info({ signal: outcome.signal }, 'shutting down while loading');
    node = await opening.catch(() => null);
    if (node === null) nodeFailed(new Error('the node did not open'));
    else nodeOpened(node);
  }
  // HTTP (and with it the WebSocket clients: a 1001 close frame each, their leases released) and the
  // RESP port first, the node last: every acknowledged write is flushed and fsynced by its close.
  const [httpClosed, respClosed] = await Promise.allSettled([http.close(), resp?.close()]);
  if (httpClosed.status === 'rejected') {
    logger.error({ err: httpClosed.reason }, 'closing the HTTP server failed');
    exitCode = 1;
  }
  if (respClosed.status === 'rejected') {
    logger.error({ err: respClosed.reason }, 'closing the RESP port failed');
    exitCode = 1;
  }
  try {
    await node?.close();
  } catch (err) {
    logger.error({ err }, 'closing the node failed');
    exitCode = 1;
  }
  logger.info({ event: 'stopped', exitCode }, 'aofq stopped');
  logger.flush();
  setTimeout(() => process.exit(exitCode), EXIT_GRACE_MS).unref();
  return exitCode;
}

/** What the scrape-time metrics read: the node's queues and AOF, and the listeners' connections. */
function metricsSourceOf(node: AofqNode, http: HttpServer, getResp: () => RespPort | null): MetricsSource {
  return {
    queues: () => node.queues.listQueues(),
    jobCounts: (queue) => {
      try {
        return node.queues.execute({ op: 'getJobCounts', queue }, { nowMs: Date.now() }).result;
      } catch {
        return null;
      }
    },
    persistence: () => node.aof.info(),
    websocketConnections: () => http.websocket?.connections ?? 0,
    respClients: () => getResp()?.clientCount() ?? 0,
  };
}
