// One cleanup list per test file. Every helper that creates something registers its removal
// here; the afterAll below (registered when a test file first imports a helper) runs them all,
// newest first, also when tests failed. Removals are idempotent, so a test may also clean up
// early by calling stop()/remove()/drop() itself.
import { afterAll } from 'vitest';

interface Entry {
  what: string;
  fn: () => Promise<void> | void;
}

const entries: Entry[] = [];

/** Registers a removal; returns a function that runs it now (once) and unregisters it. */
export function registerCleanup(what: string, fn: () => Promise<void> | void): () => Promise<void> {
  const entry: Entry = { what, fn };
  entries.push(entry);
  let done: Promise<void> | undefined;
  return () => {
    const i = entries.indexOf(entry);
    if (i >= 0) entries.splice(i, 1);
    done ??= Promise.resolve().then(fn);
    return done;
  };
}

/** Runs every registered removal, newest first; throws one error listing those that failed. */
export async function runCleanups(): Promise<void> {
  const failures: string[] = [];
  while (entries.length) {
    const e = entries.pop()!;
    try {
      await e.fn();
    } catch (err) {
      failures.push(`${e.what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (failures.length) throw new Error(`cleanup failed for ${failures.join('; ')}`);
}

// Hooks registered while a test file is collected belong to that file; vitest runs after-hooks
// in reverse order, so this one (registered at the first import) runs after the file's own.
afterAll(runCleanups, 120_000);
