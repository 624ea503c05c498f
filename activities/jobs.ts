// Job bookkeeping activities (PostgreSQL only): reserve, phase, final state.
import { ApplicationFailure } from '@temporalio/activity';
import type { Client as TemporalClient } from '@temporalio/client';
import * as jobs from '../db/queries/jobs.js';
import { findClientById } from '../db/queries/clients.js';
import { findRepositoryById } from '../db/queries/repositories.js';
import type { Db } from '../db/client.js';
import type { Job, JobStats } from '../db/schema.js';
import type { Config } from '../infra/config.js';
import type { EventPublisher } from '../infra/events.js';
import type { Logger } from '../infra/logger.js';
import { admitBackup, releaseBackupSlot } from '../services/admission.js';
import { uniqueViolation } from '../services/errors.js';
import { storageHostDownReason } from '../services/storage-hosts.js';

export interface JobActivityDeps {
  db: Db;
  events: EventPublisher;
  log: Logger;
  /** The default concurrency limits (BORGCUBE_MAX_BACKUPS_PER_HOST / _PER_REPOSITORY). */
  config: Pick<Config, 'queue'>;
  /** Wakes the queued backups a freed slot admits; without it they start at their re-check. */
  temporal?: () => Promise<TemporalClient>;
}

export interface ReserveJobInput {
  jobId: string;
  clientId: string;
  workflowRunId: string;
}

/** Archive names are built by the server: `<client>-<UTC time>`; a suffix resolves collisions. */
export function archiveNameFor(clientName: string, at: Date, n: number): string {
  const t = at.toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
  return n === 0 ? `${clientName}-${t}` : `${clientName}-${t}-${n + 1}`;
}

/**
 * The job's phase for the console and CLI (the row, and an event for live viewers). Activities
 * that start a phase record it themselves: a separate step for it cost the job a round trip.
 */
export async function recordPhase(deps: { db: Db; events?: EventPublisher; log: Logger }, jobId: string, phase: string): Promise<void> {
  await jobs.updateJob(deps.db, jobId, { phase });
  await deps.events?.publish(jobId, { type: 'state', jobId, state: 'running', phase }).catch((err: Error) => deps.log.warn({ err: err.message }, 'publishing a job event failed'));
}

/** A job on a storage host that stopped reporting would wait for a worker that is not there: it fails now and says so; jobs on the other hosts go on. */
async function refuseIfStorageHostDown(db: Db, repositoryId: string): Promise<void> {
  const repo = await findRepositoryById(db, repositoryId);
  const down = repo && (await storageHostDownReason(db, repo.storageHost));
  if (down) throw ApplicationFailure.nonRetryable(down, 'StorageHostDown');
}

export function createJobActivities(deps: JobActivityDeps) {
  const { db, events, log } = deps;
  return {
    /**
     * Reserves a backup's archive name (idempotent); a restore reserves none, its archive is in its
     * restore spec. The starter inserted the row (db/queries/jobs.ts insertJob); a row that is gone
     * or already ended stops the workflow.
     */
    async reserveJob(input: ReserveJobInput): Promise<{ archiveName: string }> {
      const job = await jobs.findJob(db, input.jobId);
      if (!job) throw ApplicationFailure.nonRetryable(`job ${input.jobId} does not exist`, 'JobGone');
      if (job.state !== 'running') throw ApplicationFailure.nonRetryable(`job ${input.jobId} already ended (${job.state})`, 'JobGone');
      await refuseIfStorageHostDown(db, job.repositoryId);
      if (job.kind === 'restore') {
        if (!job.restore) throw ApplicationFailure.nonRetryable(`restore job ${input.jobId} has no restore spec`, 'JobGone');
        if (!job.startedAt) await jobs.updateJob(db, input.jobId, { startedAt: new Date(), phase: 'prepare' });
        await events.publish(input.jobId, { type: 'state', jobId: input.jobId, state: 'running', phase: 'prepare' }).catch(() => {});
        return { archiveName: job.restore.archiveName };
      }
      if (job.archiveName) return { archiveName: job.archiveName };
      const client = await findClientById(db, input.clientId);
      if (!client) throw ApplicationFailure.nonRetryable('the client of this job was removed', 'JobGone');
      const now = new Date();
      for (let n = 0; n < 50; n++) {
        const archiveName = archiveNameFor(client.name, now, n);
        try {
          await jobs.updateJob(db, input.jobId, { archiveName, startedAt: job.startedAt ?? now, phase: 'prepare' });
          await events.publish(input.jobId, { type: 'state', jobId: input.jobId, state: 'running', phase: 'prepare' }).catch(() => {});
          return { archiveName };
        } catch (err) {
          if (!uniqueViolation(err)) throw err;
        }
      }
      throw new Error('could not reserve a unique archive name');
    },

    /**
     * A backup's slot (services/admission.ts): `running` once admitted, `queued` while it must
     * wait; a row that is gone or ended (cancelled while queued) stops the workflow.
     */
    async admitBackup(input: { jobId: string }): Promise<{ admitted: boolean }> {
      const r = await admitBackup(deps, input.jobId);
      if (r.state === 'gone') throw ApplicationFailure.nonRetryable(r.why, 'JobGone');
      if (r.state === 'running') await events.publish(input.jobId, { type: 'state', jobId: input.jobId, state: 'running', phase: 'reserve' }).catch(() => {});
      return { admitted: r.state === 'running' };
    },

    async setPhase(input: { jobId: string; phase: string }): Promise<void> {
      await recordPhase(deps, input.jobId, input.phase);
    },

    /** One line of BorgCube's own in the job's log (what a cleanup after the job's end did). */
    async logJob(input: { jobId: string; message: string; level: 'INFO' | 'WARNING' }): Promise<void> {
      await jobs.appendJobLog(db, input.jobId, input.message, input.level);
    },

    async completeJob(input: { jobId: string; state: Exclude<Job['state'], 'running' | 'queued'>; error?: string; stats?: JobStats }): Promise<void> {
      let { state, error } = input;
      // The client's borg may exit (and the run fail) before the violation signal reaches the
      // workflow; the recorded violation decides what the job was.
      if (state === 'failed') {
        const v = (await jobs.listViolations(db, input.jobId))[0];
        if (v) {
          state = 'violation';
          error = `violation: ${v.kind}: ${v.detail}`;
        }
      }
      const row = await jobs.completeJob(db, input.jobId, state, error ?? null, input.stats ?? null);
      const final = row ?? (await jobs.findJob(db, input.jobId));
      log.info({ job: input.jobId, state: final?.state, error: final?.error }, 'job finished');
      await events.publish(input.jobId, { type: 'state', jobId: input.jobId, state: final?.state ?? state, phase: 'done', error: final?.error ?? null }).catch(() => {});
      // The slot this backup held (or its place in the queue) goes to the next queued ones. A
      // retry after a lost answer admits again, which admits nothing twice.
      if (final) await releaseBackupSlot(deps, final);
    },
  };
}

export type JobActivities = ReturnType<typeof createJobActivities>;
