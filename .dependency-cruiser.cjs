/**
 * The layer check. Lowest layer first; a module may import only from layers
 * strictly below it (and from its own folder). aof, store and queue sit side by
 * side and never import each other. Run by `npm run layers` inside `npm test`.
 */
const LAYERS = {
  util: [],
  errors: ['util'],
  resp: ['util', 'errors'],
  aof: ['util', 'errors', 'resp'],
  store: ['util', 'errors', 'resp'],
  queue: ['util', 'errors', 'resp'],
  replication: ['util', 'errors', 'resp', 'aof'],
  node: ['util', 'errors', 'resp', 'aof', 'store', 'queue', 'replication'],
  http: ['util', 'errors', 'resp', 'aof', 'store', 'queue', 'replication', 'node'],
  cli: ['util', 'errors', 'resp', 'aof', 'store', 'queue', 'replication', 'node', 'http'],
};
const ALL = Object.keys(LAYERS);

const layerRules = Object.entries(LAYERS).map(([layer, allowed]) => {
  const forbidden = ALL.filter((l) => l !== layer && !allowed.includes(l));
  return {
    name: `layer-${layer}`,
    comment: `src/${layer} may import only from: ${allowed.join(', ') || '(nothing in src)'}`,
    severity: 'error',
    from: { path: `^src/${layer}/` },
    to: { path: forbidden.length ? `^src/(${forbidden.join('|')})/` : '^$' },
  };
});

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-cycles',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'pure-state-no-io',
      comment: 'store and queue are pure in-memory state: no files, sockets or processes',
      severity: 'error',
      from: { path: '^src/(store|queue)/' },
      to: {
        dependencyTypes: ['core'],
        path: '^(node:)?(fs|fs/promises|net|tls|http|https|http2|dgram|child_process|worker_threads|cluster)$',
      },
    },
    {
      name: 'no-framework-below-http',
      comment: 'nothing below http imports fastify or pino; lower layers log through util/logger',
      severity: 'error',
      from: { path: '^src/(util|errors|resp|aof|store|queue|replication|node)/' },
      to: { path: '(^|/)node_modules/(fastify|@fastify/[^/]+|pino|ws|prom-client)/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.js'],
    },
  },
};
