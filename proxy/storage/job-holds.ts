// Jobs under way on a repository (between prepare and cleanup), each until its hold lapses: while
// any is, the repository service keeps the repository's borg serve open (RepositoryHandle.holdFor).
export class JobHolds {
  /** Job id → when its hold lapses (ms since the epoch). */
  private readonly until = new Map<string, number>();

  hold(jobId: string, ms: number): void {
    this.until.set(jobId, Date.now() + ms);
  }

  /** Whether the job held it. */
  end(jobId: string): boolean {
    return this.until.delete(jobId);
  }

  /** When the last live hold lapses; 0 when none is live (lapsed ones are dropped). */
  lastUntil(): number {
    const now = Date.now();
    let last = 0;
    for (const [jobId, t] of this.until) {
      if (t <= now) this.until.delete(jobId);
      else last = Math.max(last, t);
    }
    return last;
  }
}
