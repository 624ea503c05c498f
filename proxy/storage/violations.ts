// What a client attempted that it may not: recorded against its job, signalled to the job's
// workflow (which ends the job), and the job's credential and sessions end at once.
import type { Client as TemporalClient } from '@temporalio/client';
import type { Db } from '../../db/client.js';
import { appendJobLog, findJob, insertViolation, revokeJobCredentials } from '../../db/queries/jobs.js';
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
    // The client was told only the kind (sessions/errors.ts); the job's log has what it attempted.
    if (job) await appendJobLog(db, jobId, `violation (${kind}): ${detail}`, 'ERROR').catch((err: Error) => log.warn({ job: jobId, err: err.message }, 'could not write to the job log'));
    // The credential stops working at once, whatever the workflow does next.
    await revokeJobCredentials(db, jobId);
    await this.signal(jobId, kind, detail);
    this.sessions.abortJob(jobId, `violation: ${kind}`);
  }

  async signal(jobId: string, kind: string, detail: string): Promise<void> {
    try {
      await this.deps.temporal?.workflow.getHandle(jobId).signal(violationSignal, { kind, detail, at: new Date().toISOString() });
    } catch (err) {
      this.deps.log.warn({ job: jobId, err: (err as Error).message }, 'could not signal the violation to the workflow');
    }
  }
}
