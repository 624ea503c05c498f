// The sessions of each job — attaching, live or still closing — so that a violation, a revocation
// or the end of the job reaches every connection of that job, an upstream failure every connection
// of that repository, and a second connection of a job is told apart from a restarted borg whose
// old session is still being cleaned up.
import type { RepositoryHandle } from './repository.js';

/** A connection as the registry sees it: its repository once attached, and how to end it. */
export interface SessionEntry {
  readonly repo: RepositoryHandle | undefined;
  /** Its connection has closed (the session may still be cleaning up). */
  readonly closed: boolean;
  /** Aborted when the connection closes: whatever the session waits for, it stops waiting. */
  readonly closedSignal: AbortSignal;
  /** Milliseconds since the client last sent anything, with nothing of it still being handled (0 while busy). */
  idleFor(): number;
  abort(reason: string): void;
}

export class SessionRegistry {
  private readonly byJob = new Map<string, Set<SessionEntry>>();
  private readonly goneWaiters = new Map<string, Array<() => void>>();

  add(jobId: string, entry: SessionEntry): void {
    let set = this.byJob.get(jobId);
    if (!set) this.byJob.set(jobId, (set = new Set()));
    set.add(entry);
  }

  remove(jobId: string, entry: SessionEntry): void {
    const set = this.byJob.get(jobId);
    set?.delete(entry);
    if (set && set.size === 0) this.byJob.delete(jobId);
    for (const w of this.goneWaiters.get(jobId)?.splice(0) ?? []) w();
  }

  /** The job's entries (announced, attaching, live or closing). */
  count(jobId: string): number {
    return this.byJob.get(jobId)?.size ?? 0;
  }

  has(jobId: string): boolean {
    return (this.byJob.get(jobId)?.size ?? 0) > 0;
  }

  /** Whether another connection of the job is open (attaching or attached), not merely closing. */
  hasLiveOther(jobId: string, entry: SessionEntry): boolean {
    for (const e of this.byJob.get(jobId) ?? []) if (e !== entry && !e.closed) return true;
    return false;
  }

  /** Whether another entry of the job is still there (a closed one still cleaning up, say). */
  hasOther(jobId: string, entry: SessionEntry): boolean {
    for (const e of this.byJob.get(jobId) ?? []) if (e !== entry) return true;
    return false;
  }

  /** Resolves at the next removal of one of the job's entries. */
  nextRemoval(jobId: string): Promise<void> {
    return new Promise((resolve) => {
      let list = this.goneWaiters.get(jobId);
      if (!list) this.goneWaiters.set(jobId, (list = []));
      list.push(resolve);
    });
  }

  /** Ends the job's live sessions (the proxy hangs up, uncommitted changes are undone). */
  abortJob(jobId: string, reason: string): void {
    for (const s of this.byJob.get(jobId) ?? []) s.abort(reason);
  }

  /** Ends the repository's sessions that have waited for their client for at least `idleMs`. */
  endIdle(repo: RepositoryHandle, idleMs: number, reason: string): void {
    for (const set of this.byJob.values()) for (const s of set) if (s.repo === repo && s.idleFor() >= idleMs) s.abort(reason);
  }

  abortRepository(repo: RepositoryHandle, reason: string): void {
    for (const set of this.byJob.values()) for (const s of set) if (s.repo === repo) s.abort(reason);
  }

  abortAll(reason: string): void {
    for (const set of this.byJob.values()) for (const s of set) s.abort(reason);
  }
}
