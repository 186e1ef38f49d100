/**
 * Config loading: the three sources and their precedence, Redis's quoting and
 * memory units, tokens, and the refusals (unknown directive, bad value,
 * non-loopback host without a token).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkRuntimeDirective,
  envName,
  isLoopbackHost,
  loadConfig,
  parseMemory,
  redactedDirectives,
  splitArgs,
} from '../../src/cli/config.js';
import { isAofqError } from '../../src/errors/index.js';

const SECRET = 'a-long-secret-0123456789';

function load(args: string[] = [], env: Record<string, string> = {}, files: Record<string, string> = {}) {
  return loadConfig({
    args,
    env,
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: ${path}`);
      return text;
    },
  });
}

function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isAofqError(err, 'AOFQ_ERR_CONFIG_INVALID') || isAofqError(err, 'AOFQ_ERR_CONFIG_READONLY')).toBe(
      true,
    );
    return (err as Error).message;
  }
  throw new Error('expected a config error');
}

describe('defaults', () => {
  it("uses Redis's defaults and ours", () => {
    const { config } = load();
    expect(config.aof).toMatchObject({
      dir: './data',
      appendonly: true,
      appendfilename: 'appendonly.aof',
      appenddirname: 'appendonlydir',
      appendfsync: 'everysec',
      aofLoadTruncated: true,
      aofUseRdbPreamble: true,
      autoAofRewritePercentage: 100,
      autoAofRewriteMinSize: 64 * 1024 * 1024,
    });
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(7700);
    expect(config.respPort).toBe(7379);
    expect(config.respHost).toBe('127.0.0.1');
    expect(config.maxClients).toBe(10_000);
    expect(config.clientQueryBufferLimit).toBe(64 * 1024 * 1024);
    expect(config.protoMaxBulkLen).toBe(512 * 1024 * 1024);
    expect(config.ws).toEqual({
      maxPayload: 1024 * 1024,
      eventRingSize: 10_000,
      releaseOnDisconnect: true,
      pingIntervalMs: 30_000,
    });
    expect(config.bodyLimit).toBe(1024 * 1024);
    expect(config.tokens).toEqual([]);
    expect(config.loglevel).toBe('info');
  });
});

describe('sources and precedence', () => {
  const file = ['# a comment', 'appendfsync no', 'port 7801', 'dir "/tmp/with space"', ''].join('\n');

  it('file < env < flags', () => {
    const files = { 'a.conf': file };
    expect(load(['--config', 'a.conf'], {}, files).config.aof.appendfsync).toBe('no');
    expect(load(['--config', 'a.conf'], { AOFQ_APPENDFSYNC: 'always' }, files).config.aof.appendfsync).toBe(
      'always',
    );
    const all = load(
      ['--config', 'a.conf', '--appendfsync', 'everysec'],
      { AOFQ_APPENDFSYNC: 'always' },
      files,
    );
    expect(all.config.aof.appendfsync).toBe('everysec');
    expect(all.config.port).toBe(7801);
    expect(all.config.aof.dir).toBe('/tmp/with space');
  });

  it('maps dashes to underscores in environment names', () => {
    expect(envName('auto-aof-rewrite-min-size')).toBe('AOFQ_AUTO_AOF_REWRITE_MIN_SIZE');
    const { config } = load([], { AOFQ_AUTO_AOF_REWRITE_MIN_SIZE: '1gb', AOFQ_AOF_LOAD_TRUNCATED: 'no' });
    expect(config.aof.autoAofRewriteMinSize).toBe(1024 ** 3);
    expect(config.aof.aofLoadTruncated).toBe(false);
  });

  it('accepts --name=value and is case-insensitive on directive names in files', () => {
    const { config } = load(['--port=7999', '--config', 'b.conf'], {}, { 'b.conf': 'APPENDFSYNC Always\n' });
    expect(config.port).toBe(7999);
    expect(config.aof.appendfsync).toBe('always');
  });

  it('warns about no-appendfsync-on-rewrite and unknown AOFQ_ variables', () => {
    const { warnings } = load(['--no-appendfsync-on-rewrite', 'yes'], { AOFQ_NOT_A_THING: '1' });
    expect(warnings.join('\n')).toMatch(/no-appendfsync-on-rewrite/);
    expect(warnings.join('\n')).toMatch(/AOFQ_NOT_A_THING/);
  });
});

describe('parsing', () => {
  it("splits with Redis's quoting", () => {
    expect(splitArgs('set a b')).toEqual(['set', 'a', 'b']);
    expect(splitArgs('dir "a b\\x41\\n"')).toEqual(['dir', 'a bA\n']);
    expect(splitArgs("dir 'it\\'s'")).toEqual(['dir', "it's"]);
    expect(splitArgs('dir "open')).toBeNull();
    expect(splitArgs('dir "a"b')).toBeNull();
  });

  it('splits any arguments back out of their double-quoted, escaped form', () => {
    const quote = (arg: string): string =>
      `"${[...arg]
        .map((c) => {
          if (c === '"' || c === '\\') return `\\${c}`;
          const code = c.charCodeAt(0);
          return code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : c;
        })
        .join('')}"`;
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 20 }), { minLength: 1, maxLength: 5 }), (args) => {
        expect(splitArgs(args.map(quote).join(' '))).toEqual(args);
      }),
      { numRuns: 300 },
    );
  });

  it("reads Redis's memory units", () => {
    expect(parseMemory('64mb')).toBe(64 * 1024 * 1024);
    expect(parseMemory('1k')).toBe(1000);
    expect(parseMemory('1KB')).toBe(1024);
    expect(parseMemory('2g')).toBe(2e9);
    expect(parseMemory('12')).toBe(12);
    expect(parseMemory('1tb')).toBeNull();
    expect(parseMemory('-1')).toBeNull();
  });

  it('knows loopback hosts', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('127.1.2.3')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
  });
});

describe('tokens', () => {
  it('reads name:role:secret lists; repeated lines in a file accumulate; requirepass is an admin', () => {
    const files = {
      't.conf': `tokens p:producer:${SECRET}\ntokens c:consumer:${SECRET}x,r:replica:${SECRET}y\n`,
    };
    const { config, directives } = load(['--config', 't.conf', '--requirepass', `${SECRET}z`], {}, files);
    expect(config.tokens.map((t) => `${t.name}:${t.role}`)).toEqual([
      'p:producer',
      'c:consumer',
      'r:replica',
      'default:admin',
    ]);
    expect(redactedDirectives(directives).tokens).toBe('***');
    expect(redactedDirectives(directives).requirepass).toBe('***');
  });

  it('refuses bad tokens with a clear message', () => {
    expect(failure(() => load(['--tokens', `a:boss:${SECRET}`]))).toMatch(/role 'boss'/);
    expect(failure(() => load(['--tokens', 'a:admin:short']))).toMatch(/shorter than 16 bytes/);
    expect(failure(() => load(['--tokens', 'nonsense']))).toMatch(/name:role:secret/);
    expect(failure(() => load(['--tokens', `a:admin:${SECRET},a:consumer:${SECRET}`]))).toMatch(/used twice/);
  });
});

describe('refusals', () => {
  it('refuses an unknown directive, naming where it came from', () => {
    expect(failure(() => load(['--no-such-thing', '1']))).toMatch(/flag --no-such-thing: unknown directive/);
    expect(failure(() => load(['--config', 'x.conf'], {}, { 'x.conf': '\nbogus 1\n' }))).toMatch(
      /x\.conf:2: unknown directive 'bogus'/,
    );
  });

  it('refuses bad values', () => {
    expect(failure(() => load(['--appendfsync', 'sometimes']))).toMatch(/appendfsync/);
    expect(failure(() => load(['--port', '70000']))).toMatch(/port/);
    expect(failure(() => load(['--port', 'abc']))).toMatch(/integer/);
    expect(failure(() => load(['--appendonly', 'true']))).toMatch(/yes or no/);
    expect(failure(() => load(['--body-limit', '12']))).toMatch(/bodyLimit/);
    expect(failure(() => load(['--appendfilename', 'a/b']))).toMatch(/appendfilename/);
    expect(failure(() => load(['--tls-cert-file', 'c.pem']))).toMatch(/together/);
    expect(failure(() => load(['--config', 'missing.conf']))).toMatch(/cannot read config file/);
    expect(failure(() => load(['--port']))).toMatch(/missing value/);
    expect(failure(() => load(['positional']))).toMatch(/expected --<directive>/);
  });

  it('refuses a non-loopback host without a token, and accepts it with one', () => {
    expect(failure(() => load(['--host', '0.0.0.0']))).toMatch(/not a loopback address/);
    expect(load(['--host', '0.0.0.0', '--tokens', `a:admin:${SECRET}`]).config.host).toBe('0.0.0.0');
  });

  it('refuses a non-loopback resp-host without a token, unless the RESP port is off (resp-port 0)', () => {
    expect(failure(() => load(['--resp-host', '0.0.0.0']))).toMatch(
      /resp-host '0\.0\.0\.0' is not a loopback address and no token/,
    );
    expect(load(['--resp-host', '::', '--tokens', `a:admin:${SECRET}`]).config.respHost).toBe('::');
    expect(load(['--resp-host', '0.0.0.0', '--resp-port', '0']).config.respPort).toBe(0);
    expect(load(['--resp-host', '::1']).config.respHost).toBe('::1');
  });

  it('reads the RESP and WebSocket directives, with their bounds', () => {
    const { config } = load([
      '--maxclients',
      '50',
      '--client-query-buffer-limit',
      '2mb',
      '--proto-max-bulk-len',
      '1mb',
      '--ws-max-payload',
      '64kb',
      '--ws-event-ring-size',
      '100',
      '--ws-release-on-disconnect',
      'no',
      '--ws-ping-interval-ms',
      '1000',
    ]);
    expect(config).toMatchObject({
      maxClients: 50,
      clientQueryBufferLimit: 2 * 1024 * 1024,
      protoMaxBulkLen: 1024 * 1024,
      ws: { maxPayload: 64 * 1024, eventRingSize: 100, releaseOnDisconnect: false, pingIntervalMs: 1000 },
    });
    expect(failure(() => load(['--maxclients', '0']))).toMatch(/maxClients/);
    expect(failure(() => load(['--client-query-buffer-limit', '64kb']))).toMatch(/clientQueryBufferLimit/);
    expect(failure(() => load(['--proto-max-bulk-len', '1gb']))).toMatch(/protoMaxBulkLen/);
    expect(failure(() => load(['--ws-max-payload', '12']))).toMatch(/ws\.maxPayload/);
    expect(failure(() => load(['--ws-event-ring-size', '0']))).toMatch(/ws\.eventRingSize/);
    expect(failure(() => load(['--ws-release-on-disconnect', 'maybe']))).toMatch(/yes or no/);
    expect(failure(() => load(['--ws-ping-interval-ms', '10']))).toMatch(/ws\.pingIntervalMs/);
    expect(failure(() => load(['--resp-port', '-1']))).toMatch(/respPort/);
  });
});

describe('run-time directives', () => {
  it('allows appendfsync and loglevel, refuses the rest', () => {
    expect(checkRuntimeDirective('appendfsync', 'ALWAYS')).toBe('always');
    expect(checkRuntimeDirective('loglevel', 'warning')).toBe('warning');
    expect(failure(() => checkRuntimeDirective('dir', '/tmp'))).toMatch(/cannot be changed at run time/);
    expect(failure(() => checkRuntimeDirective('appendfsync', 'maybe'))).toMatch(/appendfsync/);
    expect(failure(() => checkRuntimeDirective('nope', '1'))).toMatch(/unknown directive/);
  });
});
