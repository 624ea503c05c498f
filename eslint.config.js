// Lint: type-aware rules for async safety, import cycles, and the fence that keeps
// workflows deterministic (no Node built-ins, no I/O folders; STYLE.md §2).
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`, `${m}/*`, `node:${m}/*`]);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', '.data/**', 'db/migrations/**', 'docs/**', 'web/static/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      '@typescript-eslint/only-throw-error': 'error',
      'import-x/no-cycle': 'error',
      eqeqeq: ['error', 'smart'],
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
