/**
 * TLS: a real server process with `tls-cert-file`/`tls-key-file` (a
 * self-signed certificate made here with the openssl CLI) answers over HTTPS
 * to a client that trusts that certificate, and refuses plain HTTP.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { type ServerProcess, startServer } from '../helpers/server-process.js';

const READY_TIMEOUT_MS = 20_000;
let dir = '';
let server: ServerProcess | null = null;

afterAll(async () => {
  await server?.stop('SIGKILL').catch(() => undefined);
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

function httpsGet(port: number, path: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, ca, servername: 'localhost', method: 'GET' },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

it('serves HTTPS with the configured certificate', async () => {
  dir = await mkdtemp(join(tmpdir(), 'aofq-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  const ca = await readFile(cert);
  server = await startServer({
    args: [
      '--dir',
      join(dir, 'data'),
      '--tls-cert-file',
      cert,
      '--tls-key-file',
      key,
      '--loglevel',
      'warning',
    ],
    waitReady: false,
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let ready = { status: 0, body: '' };
  while (ready.status !== 200 && Date.now() < deadline) {
    ready = await httpsGet(server.port, '/readyz', ca).catch(() => ({ status: 0, body: '' }));
    if (ready.status !== 200) await new Promise((resolve) => setTimeout(resolve, 25));
  }
  expect(ready.status, server.stderr()).toBe(200);
  expect(JSON.parse(ready.body)).toMatchObject({ ready: true });
  const queues = await httpsGet(server.port, '/v1/queues', ca);
  expect(JSON.parse(queues.body)).toEqual({ queues: [] });
  // Plain HTTP on the TLS port gets no HTTP answer.
  await expect(fetch(`http://127.0.0.1:${server.port}/healthz`)).rejects.toThrow();
  expect(await server.stop('SIGTERM')).toBe(0);
});
