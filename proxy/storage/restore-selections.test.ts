import { describe, expect, it } from 'vitest';
import { StorageJobError, type RestoreCounts } from './api.js';
import { RestoreSelections } from './restore-selections.js';

const counts: RestoreCounts = { items: 3, files: 2, dirs: 1, nondirs: 2, bytes: 10 };

/** A walk that ends or fails when told, or when aborted (as prepare-restore.ts's does between items). */
function walk() {
  let finish!: () => void;
  let fail!: (err: Error) => void;
  let signal: AbortSignal | undefined;
  let started = 0;
  const fn = (s: AbortSignal) => {
    started++;
    signal = s;
    return new Promise<RestoreCounts>((resolve, reject) => {
      finish = () => resolve(counts);
      fail = reject;
      s.addEventListener('abort', () => reject(s.reason as Error));
    });
  };
  return { fn, finish: () => finish(), fail: (err: Error) => fail(err), signal: () => signal, started: () => started };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('restore selections of a service', () => {
  it('keeps a job’s walk for its session and the activity, also once done', async () => {
    const sel = new RestoreSelections();
    const w = walk();
    const done = sel.start('j', w.fn);
    expect(sel.get('j')).toBe(done);
    await settle();
    w.finish();
    await expect(done).resolves.toEqual(counts);
    await expect(sel.get('j')).resolves.toEqual(counts);
    expect(sel.get('other')).toBeUndefined();
  });

  it('keeps a walk that failed for good, and forgets one whose failure may pass', async () => {
    const sel = new RestoreSelections();
    const bad = walk();
    const p = sel.start('bad', bad.fn);
    await settle();
    bad.fail(new StorageJobError('PathNotInArchive', 'path x is not in archive a'));
    await expect(p).rejects.toThrow(/not in archive/);
    // The session and the activity get the same answer; nothing walks again.
    await expect(sel.get('bad')).rejects.toThrow(/not in archive/);
    const flaky = walk();
    const q = sel.start('flaky', flaky.fn);
    await settle();
    flaky.fail(new Error('connection terminated'));
    await expect(q).rejects.toThrow(/terminated/);
    expect(sel.get('flaky')).toBeUndefined();
  });

  it('a new round stops the running walk and starts its own once that one let go', async () => {
    const sel = new RestoreSelections();
    const first = walk();
    const firstDone = sel.start('j', first.fn);
    await settle();
    const second = walk();
    const secondDone = sel.start('j', second.fn);
    expect(first.signal()?.aborted).toBe(true);
    await expect(firstDone).rejects.toMatchObject({ type: 'JobGone' });
    await settle();
    expect(second.started()).toBe(1);
    expect(sel.get('j')).toBe(secondDone);
    second.finish();
    await expect(secondDone).resolves.toEqual(counts);
  });

  it('the job’s cleanup stops its walk, and no prepare after it starts another', async () => {
    const sel = new RestoreSelections();
    const w = walk();
    const done = sel.start('j', w.fn);
    await settle();
    await sel.stop('j', true);
    expect(w.signal()?.aborted).toBe(true);
    await expect(done).rejects.toMatchObject({ type: 'JobGone' });
    expect(sel.get('j')).toBeUndefined();
    expect(() => sel.start('j', walk().fn)).toThrow(/has ended/);
    expect(() => sel.refuseEnded('j')).toThrow(StorageJobError);
    await expect(sel.preparing('j', () => Promise.resolve(1))).rejects.toThrow(/has ended/);
    // A stop of a job with no walk is no error; one that is not final leaves the job open.
    await sel.stop('k');
    expect(() => sel.refuseEnded('k')).not.toThrow();
  });

  it('the job’s cleanup waits for a prepare still running, whose walk is refused', async () => {
    const sel = new RestoreSelections();
    let release!: () => void;
    const w = walk();
    let prepareSignal: AbortSignal | undefined;
    const prepared = sel.preparing('j', async (signal) => {
      prepareSignal = signal;
      // As prepareRestoreStart: its files written (a step that does not listen to the signal), then the walk started.
      await new Promise<void>((r) => (release = r));
      void sel.start('j', w.fn).catch(() => {});
      return 'written';
    });
    let stopped = false;
    const stopping = sel.stop('j', true).then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    // Told to stop (its walk and its wait for borg serve listen), and waited for.
    expect(prepareSignal?.aborted).toBe(true);
    release();
    await expect(prepared).rejects.toThrow(/has ended/);
    await stopping;
    expect(w.started()).toBe(0);
    expect(sel.get('j')).toBeUndefined();
  });

  it('a walk a prepare started before the cleanup is stopped by it', async () => {
    const sel = new RestoreSelections();
    const w = walk();
    await sel.preparing('j', () => {
      void sel.start('j', w.fn).catch(() => {});
      return Promise.resolve();
    });
    await settle();
    await sel.stop('j', true);
    expect(w.signal()?.aborted).toBe(true);
    expect(sel.get('j')).toBeUndefined();
  });
});
