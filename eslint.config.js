// Lint: type-aware rules for async safety, the layout of DESIGN.md §6 as import zones, no import
// cycles (type-only imports included), size limits, and the fence that keeps workflows
// deterministic (no Node built-ins, no I/O folders; STYLE.md §2, §20).
import tseslint from 'typescript-eslint';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import { builtinModules } from 'node:module';
import { layoutPlugin } from './eslint.cycles.js';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`, `${m}/*`, `node:${m}/*`]);

// Source imports say `./x.js` and mean `./x.ts`: without the alias import-x resolves nothing,
// and no-cycle and the zones below silently check nothing.
const resolver = createNodeResolver({
  extensions: ['.ts', '.js', '.mjs', '.json', '.node'],
  extensionAlias: { '.js': ['.ts', '.js'], '.mjs': ['.mts', '.mjs'] },
});

// DESIGN.md §6, one zone per row: `target` may not import `from`. Tests next to the code follow
// their folder's row too, except that they may use test/harness.
const root = import.meta.dirname;
const top = ['infra', 'db', 'proxy', 'services', 'activities', 'workflows', 'worker', 'web', 'cli', 'test', 'bench'];
const all = (except) => top.filter((d) => !except.includes(d)).map((d) => `./${d}`);
const compositionRoots = ['./worker', './web', './cli'];
const zone = (target, from, message, except) => ({ target, from, message, ...(except ? { except } : {}) });
// Unit tests follow their folder's row, but may use the shared harness.
const layoutZones = ({ tests }) => {
  const guard = (froms) => froms.filter((f) => !(tests && f === './test'));
  const harness = tests ? [zone(top.map((d) => `./${d}`).filter((d) => d !== './test' && d !== './bench'), './test', 'Unit tests may import only test/harness/ from test/.', ['./harness'])] : [];
  return [
    zone('./infra/*.ts', guard(all(['infra'])), 'infra/ holds adapters: it imports nothing internal (DESIGN §6).'),
    zone('./infra/*.ts', './infra/local-stack', 'infra/ adapters do not depend on the local stack.'),
    zone('./infra/local-stack', guard(all(['infra'])), 'The local stack drives the product through its entry points (processes, borgcube commands), not its internals (DESIGN §6).'),
    zone('./db', guard(all(['infra', 'db'])), 'db/ imports only infra/ (DESIGN §6).'),
    zone('./proxy/borg', [...guard(all(['proxy'])), './proxy/protocol', './proxy/session', './proxy/storage'], "proxy/borg/ is Borg's formats as a library: nothing with I/O, nothing internal (DESIGN §6)."),
    zone('./proxy/protocol', [...guard(all(['proxy'])), './proxy/session', './proxy/storage'], 'proxy/protocol/ imports only proxy/borg/ (DESIGN §6).'),
    zone('./proxy/session', [...guard(all(['proxy'])), './proxy/storage'], 'The forced command imports only proxy/borg/ and proxy/protocol/: it parses hostile bytes and must reach nothing else (DESIGN §5, §6).'),
    zone('./proxy/storage', [...guard(all(['proxy', 'db', 'infra', 'workflows'])), './proxy/session'], "proxy/storage/ imports proxy/borg/, proxy/protocol/, db/, infra/ and the workflows' message definitions (DESIGN §6)."),
    zone('./proxy/storage', './workflows', 'proxy/storage/ may import only the message definitions of workflows/.', ['./messages.ts']),
    zone('./services', guard(all(['db', 'infra', 'workflows', 'services', 'proxy'])), 'services/ imports db/, infra/, workflows/ (types, names, ids) and the public API of proxy/storage/ (DESIGN §6).'),
    zone('./services', './proxy', 'services/ may import only the public API of proxy/storage/.', ['./storage/api.ts']),
    zone('./activities', guard(all(['services', 'db', 'infra', 'activities', 'proxy'])), 'activities/ import services/, db/, infra/, proxy/borg/ and the public API of proxy/storage/ (DESIGN §6).'),
    zone('./activities', './proxy', 'activities/ may import only proxy/borg/ and the public API of proxy/storage/.', ['./borg', './storage/api.ts']),
    zone('./workflows', guard(all(['workflows', 'activities'])), 'Workflows only orchestrate: @temporalio/workflow and `import type` from activities/ (DESIGN §6).'),
    ...compositionRoots.map((r) => zone(r, guard([...compositionRoots.filter((o) => o !== r), './test', './bench']), 'A composition root imports the layers, never another root, test/ or bench/ (DESIGN §6).')),
    zone(['./proxy', './services', './activities', './workflows', './db', './infra'], guard(['./test', './bench', './worker', './web', './cli']), 'Nothing imports test/, bench/ or a composition root (DESIGN §6).'),
    ...harness,
  ];
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', '.data/**', 'db/migrations/**', 'docs/**', 'web/static/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: root },
    },
    plugins: { 'import-x': importX, layout: layoutPlugin },
    settings: { 'import-x/resolver-next': [resolver] },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      '@typescript-eslint/only-throw-error': 'error',
      // Type-only imports count (import-x/no-cycle skips them): see eslint.cycles.js.
      'layout/no-cycle': 'error',
      'import-x/no-restricted-paths': ['error', { basePath: root, zones: layoutZones({ tests: false }) }],
      'max-lines': ['error', { max: 400 }],
      'max-lines-per-function': ['error', { max: 80 }],
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    // Exempt by DESIGN: the msgpack dialect is one table-driven codec; page templates are HTML.
    files: ['proxy/borg/msgpack.ts'],
    rules: { 'max-lines': 'off' },
  },
  {
    files: ['web/views/**/*.ts'],
    rules: { 'max-lines-per-function': 'off' },
  },
  {
    // A test file's describe() holds its cases, so the function limit does not fit it; unit
    // tests may use the shared harness in test/harness/.
    files: ['**/*.test.ts'],
    rules: {
      'max-lines-per-function': 'off',
      'import-x/no-restricted-paths': ['error', { basePath: root, zones: layoutZones({ tests: true }) }],
    },
  },
  {
    // Borg's formats carry no I/O: files, sockets and processes belong to proxy/storage/ and the
    // forced command. Tests and benchmarks of the formats may read their vectors.
    files: ['proxy/borg/**/*.ts'],
    ignores: ['proxy/borg/**/*.test.ts', 'proxy/borg/**/*.bench.ts', 'proxy/borg/test-fixtures.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:fs', 'node:fs/*', 'node:net', 'node:child_process', 'node:http', 'node:https', 'node:dgram', 'node:worker_threads', 'fs', 'net', 'child_process'],
              message: "proxy/borg/ is Borg's formats as a library: no I/O (DESIGN §6).",
            },
          ],
        },
      ],
    },
  },
  {
    // The forced command parses a client's hostile bytes as the unprivileged proxy account: it
    // gets no database, queue, Temporal or SSH library to misuse if it is ever subverted.
    files: ['proxy/session/**/*.ts'],
    ignores: ['proxy/session/**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['pg', 'pg/*', 'ioredis', '@temporalio/*', 'ssh2', 'ssh2/*', 'drizzle-orm', 'drizzle-orm/*'],
              message: 'The forced command parses hostile bytes: no database, Redis, Temporal or SSH client here (DESIGN §5, §6).',
            },
          ],
        },
      ],
    },
  },
  {
    // Workflows are replayed deterministically inside Temporal's sandbox: no Node built-ins, no
    // folder that does I/O; activities may be imported for their types only.
    files: ['workflows/**/*.ts'],
    ignores: ['workflows/**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.filter((m) => !m.includes('*')).map((name) => ({ name, message: 'Workflows must stay deterministic: no Node built-ins.' })),
          patterns: [
            { group: ['node:*'], message: 'Workflows must stay deterministic: no Node built-ins.' },
            { group: ['**/db/**', '**/infra/**', '**/proxy/**', '**/web/**', '**/services/**', '**/cli/**', '**/worker/**', 'pg', 'ioredis', 'ssh2', 'ws', 'pino', 'drizzle-orm', 'drizzle-orm/*', '@temporalio/client', '@temporalio/worker', '@temporalio/activity'], message: 'Workflows only orchestrate: no I/O modules here.' },
            { group: ['**/activities/**'], allowTypeImports: true, message: 'Import activities with `import type` only.' },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
