import { defineConfig } from 'vitest/config';

// Three levels (STYLE.md §13): colocated unit tests run in parallel; integration and end-to-end
// tests talk to real sshd, borg, PostgreSQL, Redis and Temporal. Those run two files at a time:
// every file makes its own users, databases, ports, task queues and stacks, and most of their time
// is spent waiting on borg, ssh and Temporal, so two files share the machine's two cores well
// (docs/testing.md has the figures). The few files that measure time against a bound they take
// alone (an honest backup during an attack, CLI follow lag, connection close and hang-up times) or sample the
// whole process table run afterwards, one at a time (`integration-solo`). The levels run in order
// (groupOrder). Every file's cleanup list (test/harness/cleanup.ts) runs after its tests
// (vitest-setup.ts).
const solo = [
  'test/integration/faults-backup.test.ts',
  'test/integration/proxy-adversarial-isolation.test.ts',
  'test/integration/proxy-adversarial-quotas.test.ts',
  'test/integration/cli-wait.test.ts',
  'test/integration/proxy-adversarial-writes.test.ts',
];

const realServices = {
  globalSetup: ['test/harness/global-setup.ts'],
  setupFiles: ['test/harness/vitest-setup.ts'],
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{infra,db,proxy,activities,workflows,worker,web,services,cli}/**/*.test.ts'],
          setupFiles: ['test/harness/vitest-setup.ts'],
          testTimeout: 30_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          exclude: solo,
          ...realServices,
          maxWorkers: 2,
          // Two files share the cores: a setup that makes 25 archives through the CLI took
          // 185 s beside another file at load 10.
          testTimeout: 300_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: 'integration-solo',
          include: solo,
          ...realServices,
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
          sequence: { groupOrder: 2 },
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          ...realServices,
          maxWorkers: 2,
          testTimeout: 600_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 3 },
        },
      },
    ],
  },
});
