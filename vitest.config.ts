import { defineConfig } from 'vitest/config';

// Three levels (STYLE.md §13): colocated unit tests run in parallel; integration and end-to-end
// tests talk to real sshd, borg, PostgreSQL, Redis and Temporal and run one file at a time, because
// they share the machine's two cores and the one Temporal dev server started by the global setup.
// Every file's cleanup list (test/harness/cleanup.ts) runs after its tests (vitest-setup.ts).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{infra,db,proxy,activities,workflows,worker,web,services,cli}/**/*.test.ts'],
          setupFiles: ['test/harness/vitest-setup.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/harness/global-setup.ts'],
          setupFiles: ['test/harness/vitest-setup.ts'],
          fileParallelism: false,
          pool: 'forks',
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/harness/global-setup.ts'],
          setupFiles: ['test/harness/vitest-setup.ts'],
          fileParallelism: false,
          pool: 'forks',
          testTimeout: 600_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
