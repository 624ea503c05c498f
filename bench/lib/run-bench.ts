// How a benchmark script runs: its main function, then the harness's cleanup list
// (test/harness/cleanup.ts) — at the end of the run, after a failure, and on Ctrl-C / SIGTERM.
import { runCleanups } from '../../test/harness/cleanup.js';

function cleanUp(): Promise<void> {
  return runCleanups().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  });
}

/**
 * Runs `main` with cleanup guaranteed: on success, on an exception, and on SIGINT/SIGTERM/SIGHUP
 * (a second Ctrl-C while cleaning up is ignored, so the cleanup can finish).
 */
export function runBench(name: string, main: () => Promise<void>): void {
  let signalled = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (signalled) {
        process.stderr.write(`\n${name}: still cleaning up, please wait\n`);
        return;
      }
      signalled = true;
      process.stderr.write(`\n${name}: ${sig}, cleaning up…\n`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  main().then(
    async () => {
      await cleanUp();
      process.exit(0);
    },
    async (err: unknown) => {
      if (!signalled) process.stderr.write(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      await cleanUp();
      process.exit(signalled ? 130 : 1);
    },
  );
}
