// The live sessions of each job, so that a violation, a revocation or the end of the job reaches
// every connection of that job, and an upstream failure every connection of that repository.
import type { RepositoryHandle } from './repository.js';

/** A connection as the registry sees it: its repository once attached, and how to end it. */
export interface SessionEntry {
  readonly repo: RepositoryHandle | undefined;
  abort(reason: string): void;
}

export class SessionRegistry {
  private readonly byJob = new Map<string, Set<SessionEntry>>();

  add(jobId: string, entry: SessionEntry): void {
    let set = this.byJob.get(jobId);
    if (!set) this.byJob.set(jobId, (set = new Set()));
    set.add(entry);
  }

  remove(jobId: string, entry: SessionEntry): void {
    const set = this.byJob.get(jobId);
    set?.delete(entry);
    if (set && set.size === 0) this.byJob.delete(jobId);
  }

  has(jobId: string): boolean {
    return (this.byJob.get(jobId)?.size ?? 0) > 0;
  }

  /** Ends the job's live sessions (the proxy hangs up, uncommitted changes are undone). */
  abortJob(jobId: string, reason: string): void {
    for (const s of this.byJob.get(jobId) ?? []) s.abort(reason);
  }

  abortRepository(repo: RepositoryHandle, reason: string): void {
    for (const set of this.byJob.values()) for (const s of set) if (s.repo === repo) s.abort(reason);
  }

  abortAll(reason: string): void {
    for (const set of this.byJob.values()) for (const s of set) s.abort(reason);
  }
}
