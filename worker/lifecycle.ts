// What both worker processes do around their Temporal worker: run until SIGTERM/SIGINT, then
// shut down gracefully (running activities finish or are cancelled by Temporal's rules) and
// close their connections in order.
import type { Worker } from '@temporalio/worker';
import type { Logger } from '../infra/logger.js';

export async function runUntilSignal(worker: Worker, log: Logger, close: Array<() => Promise<void>>): Promise<void> {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    worker.shutdown();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await worker.run();
  } finally {
    for (const fn of close) await fn();
    log.info('stopped');
    log.flush();
  }
}

/** Runs a process's main; a failure to start is one line on stderr and exit code 1. */
export function runMain(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    process.stderr.write(`borgcube ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
