// Faults on the server's side that end a job without a retry (issue 22): today the repository's
// disk filling up. Retrying would only fill it again, and the job would end after minutes on
// whatever the client's borg made of a closed connection (a BrokenPipe traceback). Instead the
// job's workflow is told at once, with one line an operator can act on, and borg serve's
// transaction — every live session's uncommitted segments — is thrown away, so that nothing
// half-written stays behind and the space it took is free again.
import type { Client as TemporalClient } from '@temporalio/client';
import type { Db } from '../../db/client.js';
import { appendJobLog } from '../../db/queries/jobs.js';
import type { Logger } from '../../infra/logger.js';
import { jobFaultSignal } from '../../workflows/messages.js';
import { diskFullMessage } from './api.js';
import type { RepositoryHandle } from './repository.js';
import type { SessionRegistry } from './session-registry.js';

/** Jobs remembered as already failed, so that their other puts in flight do not repeat it. */
const REMEMBERED_JOBS = 10_000;

export class JobFaults {
  private readonly reported = new Set<string>();

  constructor(
    private readonly deps: { db: Db; log: Logger; temporal?: TemporalClient; storageHost: string },
    private readonly sessions: SessionRegistry,
  ) {}

  /** The line the job fails with: where, what, and what to do. */
  diskFullMessage(detail: string): string {
    return diskFullMessage(this.deps.storageHost, detail);
  }

  /**
   * The repository's file system is full (`detail`: what borg or the kernel said). Fails the job
   * for good, discards the upstream transaction, and ends the job's sessions. `ref` is what the
   * client was told.
   */
  async diskFull(jobId: string, repo: RepositoryHandle | undefined, detail: string, ref: string): Promise<void> {
    if (this.reported.has(jobId)) {
      this.sessions.abortJob(jobId, 'the repository disk is full');
      return;
    }
    this.reported.add(jobId);
    if (this.reported.size > REMEMBERED_JOBS) this.reported.delete(this.reported.values().next().value!);
    const { db, log, temporal } = this.deps;
    const message = this.diskFullMessage(detail);
    log.error({ job: jobId, repository: repo?.info.name, ref, detail }, 'repository disk full');
    await appendJobLog(db, jobId, `${message} (ref ${ref})`, 'ERROR').catch((err: Error) => log.warn({ job: jobId, err: err.message }, 'could not write to the job log'));
    try {
      await temporal?.workflow.getHandle(jobId).signal(jobFaultSignal, { kind: 'disk-full', message, at: new Date().toISOString() });
    } catch (err) {
      // The job then ends as before: its borg fails and the retries give up.
      log.warn({ job: jobId, err: (err as Error).message }, 'could not signal the fault to the workflow');
    }
    this.sessions.abortJob(jobId, 'the repository disk is full');
    await repo?.discardTransaction(`the repository's disk is full (job ${jobId})`);
  }
}
