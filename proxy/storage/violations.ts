// What a client attempted that it may not: recorded against its job, signalled to the job's
// workflow (which ends the job), and the job's credential and sessions end at once.
import type { Client as TemporalClient } from '@temporalio/client';
import type { Db } from '../../db/client.js';
import { findJob, insertViolation, revokeJobCredentials } from '../../db/queries/jobs.js';
import type { Logger } from '../../infra/logger.js';
import { violationSignal } from '../../workflows/messages.js';
import type { SessionRegistry } from './session-registry.js';

export class Violations {
  constructor(
    private readonly deps: { db: Db; log: Logger; temporal?: TemporalClient },
    private readonly sessions: SessionRegistry,
  ) {}

  /** Records what a client attempted, signals its workflow, and ends every session of the job. */
  async record(jobId: string, kind: string, detail: string): Promise<void> {
    const { db, log } = this.deps;
    const job = await findJob(db, jobId);
    log.warn({ job: jobId, client: job?.clientId, kind, detail }, 'violation');
    await insertViolation(db, { jobId, clientId: job?.clientId ?? null, repositoryId: job?.repositoryId ?? null, kind, detail });
    // The credential stops working at once, whatever the workflow does next.
    await revokeJobCredentials(db, jobId);
    await this.signal(jobId, kind, detail);
    this.sessions.abortJob(jobId, `violation: ${kind}`);
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
    this.deps.log.warn({ job: jobId, client: job.clientId, kind: 'credential-reuse', detail }, 'violation');
    await insertViolation(this.deps.db, { jobId, clientId: job.clientId, repositoryId: job.repositoryId, kind: 'credential-reuse', detail });
  }

  async signal(jobId: string, kind: string, detail: string): Promise<void> {
    try {
      await this.deps.temporal?.workflow.getHandle(jobId).signal(violationSignal, { kind, detail, at: new Date().toISOString() });
    } catch (err) {
      this.deps.log.warn({ job: jobId, err: (err as Error).message }, 'could not signal the violation to the workflow');
    }
  }
}
