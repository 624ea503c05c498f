// The restore selections being walked in this service (prepare-restore.ts selectRestore): one per
// job, started by prepareRestoreStart while the client's borg starts, awaited by the job's session
// before it serves anything beyond the manifest and the archive, and by the restoreSelection
// activity.
import { StorageJobError, type RestoreCounts } from './api.js';

interface Walk {
  done: Promise<RestoreCounts>;
  abort: AbortController;
}

/** Jobs whose cleanup stopped their walk, remembered so that a late prepare starts none (oldest forgotten first). */
const ENDED_KEPT = 10_000;

export class RestoreSelections {
  private readonly walks = new Map<string, Walk>();
  private readonly ended = new Set<string>();
  private readonly prepares = new Map<string, Set<{ done: Promise<unknown>; abort: AbortController }>>();

  /**
   * Runs a prepare of the job (prepare-restore.ts). The job's cleanup (`stop` with `final`)
   * aborts it (`signal`: its walk, its wait for borg serve) and waits for it, so that nothing it
   * writes — key files, a credential — outlives the cleanup; none starts after the cleanup.
   */
  async preparing<T>(jobId: string, prepare: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.refuseEnded(jobId);
    const abort = new AbortController();
    const entry = { done: prepare(abort.signal), abort };
    let running = this.prepares.get(jobId);
    if (!running) this.prepares.set(jobId, (running = new Set()));
    running.add(entry);
    try {
      return await entry.done;
    } finally {
      running.delete(entry);
      if (!running.size && this.prepares.get(jobId) === running) this.prepares.delete(jobId);
    }
  }

  /**
   * Starts the job's walk, after stopping the one it had (a new round prepares everything again;
   * the new walk begins once the old one has let go). A walk that failed for good (StorageJobError:
   * a path not in the archive, an unsafe archive) is kept, so that the session and the activity
   * both get its error without walking again; any other failure is forgotten, and the next ask
   * starts a walk again.
   */
  start(jobId: string, walk: (signal: AbortSignal) => Promise<RestoreCounts>): Promise<RestoreCounts> {
    this.refuseEnded(jobId);
    const old = this.walks.get(jobId);
    old?.abort.abort(stopped());
    const abort = new AbortController();
    const done = (old ? old.done.then(noop, noop) : Promise.resolve()).then(() => walk(abort.signal));
    const entry = { done, abort };
    this.walks.set(jobId, entry);
    done.catch((err: unknown) => {
      if (this.walks.get(jobId) === entry && !(err instanceof StorageJobError && err.type !== 'JobGone')) this.walks.delete(jobId);
    });
    return done;
  }

  /** Throws StorageJobError when the job's cleanup has run here: nothing of it is prepared again. */
  refuseEnded(jobId: string): void {
    if (this.ended.has(jobId)) throw new StorageJobError('JobGone', `restore job ${jobId} has ended and been cleaned up`);
  }

  /** The job's walk (running, or ended since this service started), if any. */
  get(jobId: string): Promise<RestoreCounts> | undefined {
    return this.walks.get(jobId)?.done;
  }

  /**
   * Stops the job's walk, if one runs, and forgets it. `final` (the job's cleanup): no prepare or
   * walk starts again, and the prepares still running are stopped and waited for (a walk one of
   * them started is then stopped too).
   */
  async stop(jobId: string, final = false): Promise<void> {
    if (final) {
      this.ended.add(jobId);
      if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.values().next().value!);
      const running = [...(this.prepares.get(jobId) ?? [])];
      for (const p of running) p.abort.abort(stopped());
      await Promise.all(running.map((p) => p.done.then(noop, noop)));
    }
    const w = this.walks.get(jobId);
    if (!w) return;
    this.walks.delete(jobId);
    w.abort.abort(stopped());
    await w.done.then(noop, noop);
  }
}

const noop = () => {};
const stopped = () => new StorageJobError('JobGone', "the restore's selection was stopped: the job ended, or a new round of it began");
