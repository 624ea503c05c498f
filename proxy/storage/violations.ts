// What a client attempted that it may not: recorded against its job, signalled to the job's
// workflow (which ends the job), and the job's credential and sessions end at once.
import type { Client as TemporalClient } from '@temporalio/client';
import type { Db } from '../../db/client.js';
import { appendJobLog, findJob, insertViolation, revokeJobCredentials } from '../../db/queries/jobs.js';
import type { Logger } from '../../infra/logger.js';
import { violationSignal } from '../../workflows/messages.js';
import type { SessionRegistry } from './session-registry.js';

/** Jobs whose violations are remembered, so that a job's later refusals are not recorded again. */
const REMEMBERED_JOBS = 10_000;

export class Violations {
  /** Kinds already recorded per job (least recently recorded job first). */
  private readonly recorded = new Map<string, Set<string>>();

  constructor(
    private readonly deps: { db: Db; log: Logger; temporal?: TemporalClient },
    private readonly sessions: SessionRegistry,
  ) {}

  /** Records what a client attempted, signals its workflow, and ends every session of the job. */
  async record(jobId: string, kind: string, detail: string): Promise<void> {
    // The first violation ends the job; what its client still had in flight (a thousand puts over
    // the quota) is refused too, but each kind is recorded and signalled once: otherwise a flood
    // becomes a flood of rows, signals and log lines (DESIGN.md §4 invariant 11).
    if (!this.firstOfKind(jobId, kind)) {
      this.sessions.abortJob(jobId, `violation: ${kind}`);
      return;
    }
    const { db, log } = this.deps;
    try {
      const job = await findJob(db, jobId);
      log.warn({ job: jobId, client: job?.clientId, kind, detail }, 'violation');
      await insertViolation(db, { jobId, clientId: job?.clientId ?? null, repositoryId: job?.repositoryId ?? null, kind, detail });
      // The client was told only the kind (sessions/errors.ts); the job's log has what it attempted.
      if (job) await appendJobLog(db, jobId, `violation (${kind}): ${detail}`, 'ERROR').catch((err: Error) => log.warn({ job: jobId, err: err.message }, 'could not write to the job log'));
      // The credential stops working at once, whatever the workflow does next.
      await revokeJobCredentials(db, jobId);
    } catch (err) {
      // Not recorded (the database failed): the next refusal of this kind must try again, or the
      // job would keep its credential and its workflow never learn of it. Its sessions end anyway.
      this.forget(jobId, kind);
      this.sessions.abortJob(jobId, `violation: ${kind}`);
      throw err;
    }
    await this.signal(jobId, kind, detail);
    this.sessions.abortJob(jobId, `violation: ${kind}`);
  }

  private forget(jobId: string, kind: string): void {
    this.recorded.get(jobId)?.delete(kind);
  }

  private firstOfKind(jobId: string, kind: string): boolean {
    let kinds = this.recorded.get(jobId);
    if (kinds?.has(kind)) return false;
    if (!kinds) {
      kinds = new Set();
      this.recorded.set(jobId, kinds);
      if (this.recorded.size > REMEMBERED_JOBS) this.recorded.delete(this.recorded.keys().next().value!);
    }
    kinds.add(kind);
    return true;
  }

  /**
   * A credential kept past its round or its job was used — signed, sshd verified it (see
   * authorized-keys.ts). A running job ends as for any violation; an ended one keeps the record as
   * the evidence (its workflow can take no signal any more).
   */
  async reused(jobId: string, detail: string): Promise<void> {
    const job = await findJob(this.deps.db, jobId);
    if (!job) return;
    if (job.state === 'running') return this.record(jobId, 'credential-reuse', detail);
    if (!this.firstOfKind(jobId, 'credential-reuse')) return;
    this.deps.log.warn({ job: jobId, client: job.clientId, kind: 'credential-reuse', detail }, 'violation');
    await insertViolation(this.deps.db, { jobId, clientId: job.clientId, repositoryId: job.repositoryId, kind: 'credential-reuse', detail }).catch((err: unknown) => {
      this.forget(jobId, 'credential-reuse');
      throw err;
    });
  }

  async signal(jobId: string, kind: string, detail: string): Promise<void> {
    try {
      await this.deps.temporal?.workflow.getHandle(jobId).signal(violationSignal, { kind, detail, at: new Date().toISOString() });
    } catch (err) {
      this.deps.log.warn({ job: jobId, err: (err as Error).message }, 'could not signal the violation to the workflow');
    }
  }
}
