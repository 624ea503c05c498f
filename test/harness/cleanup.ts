// One cleanup list per process: a test file (vitest-setup.ts runs it after the file's tests) or
// a benchmark run (bench/lib/run-bench.ts runs it at the end, on failure and on Ctrl-C). Every
// harness function that creates something registers its removal here; the list runs newest
// first. Removals run once, so a caller may also clean up early by calling stop()/remove()/drop().

interface Entry {
  what: string;
  fn: () => Promise<void> | void;
  done?: Promise<void>;
}

const entries: Entry[] = [];
let running: Promise<void> | undefined;

/** Registers a removal; returns a function that runs it now (once) and unregisters it. */
export function registerCleanup(what: string, fn: () => Promise<void> | void): () => Promise<void> {
  const entry: Entry = { what, fn };
  entries.push(entry);
  return () => {
    const i = entries.indexOf(entry);
    if (i >= 0) entries.splice(i, 1);
    entry.done ??= Promise.resolve().then(fn);
    return entry.done;
  };
}

/**
 * Runs every registered removal, newest first; throws one error listing those that failed. A
 * second call while the list runs (a signal during the cleanup) waits for the same run.
 */
export function runCleanups(): Promise<void> {
  running ??= (async () => {
    const failures: string[] = [];
    while (entries.length) {
      const e = entries.pop()!;
      try {
        e.done ??= Promise.resolve().then(e.fn);
        await e.done;
      } catch (err) {
        failures.push(`${e.what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (failures.length) throw new Error(`cleanup failed for ${failures.join('; ')}`);
  })().finally(() => {
    running = undefined;
  });
  return running;
}
