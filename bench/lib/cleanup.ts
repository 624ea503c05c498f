// Cleanup for the benchmark scripts: every step that creates something (a user, a folder, a
// database, a process) registers its removal here. The list runs newest first at the end of the
// run, after a failure, and on Ctrl-C / SIGTERM; each removal runs once.
type CleanupFn = () => Promise<void> | void;

interface Entry {
  what: string;
  fn: CleanupFn;
  done?: Promise<void>;
}

const entries: Entry[] = [];
let running: Promise<void> | undefined;

/** Registers a removal; the returned function runs it now (once) and unregisters it. */
export function onCleanup(what: string, fn: CleanupFn): () => Promise<void> {
  const entry: Entry = { what, fn };
  entries.push(entry);
  return () => {
    const i = entries.indexOf(entry);
    if (i >= 0) entries.splice(i, 1);
    entry.done ??= Promise.resolve().then(fn);
    return entry.done;
  };
}

/** Runs every registered removal, newest first; failures are printed, not thrown. */
export function runCleanups(print: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<void> {
  running ??= (async () => {
    while (entries.length) {
      const e = entries.pop()!;
      try {
        e.done ??= Promise.resolve().then(e.fn);
        await e.done;
      } catch (err) {
        print(`cleanup of ${e.what} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  })().finally(() => {
    running = undefined;
  });
  return running;
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
      void runCleanups().finally(() => process.exit(130));
    });
  }
  main().then(
    async () => {
      await runCleanups();
      process.exit(0);
    },
    async (err: unknown) => {
      if (!signalled) process.stderr.write(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      await runCleanups();
      process.exit(signalled ? 130 : 1);
    },
  );
}
