// Admission of queued backups (README "Concurrency limits and queueing"). A backup's row starts
// `queued`; its workflow's first step asks for a slot here. Under one advisory lock per storage
// host, the host's running backups are counted against its limit and each repository's, and the
// queue is walked in fair order (admission-plan.ts): every queued job that fits becomes
// `running` in the same transaction, so two admissions at once can never overfill a slot. The
// admitted jobs' workflows are woken with the `admitted` signal; a signal that is lost (the
// signaller died after the commit) costs a job at most its workflow's periodic re-check.
//
// Whoever frees a slot admits the next jobs: the end of a backup (completeJob), an orphaned job
// ended by the sweep, a raised limit. Restores, prunes and checks are not limited here: they are
// started by an operator or a policy's maintenance schedule, are few, and a prune or check is
// serialized with writers by the repository service anyway.
import type { Client as TemporalClient } from '@temporalio/client';
import { withAdvisoryLock, type Db } from '../db/client.js';
import * as q from '../db/queries/admission.js';
import type { Job } from '../db/schema.js';
import type { Config } from '../infra/config.js';
import type { Logger } from '../infra/logger.js';
import { admittedSignal } from '../workflows/messages.js';
import { fairOrder, planAdmissions } from './admission-plan.js';

export interface AdmissionDeps {
  db: Db;
  config: Pick<Config, 'queue'>;
  log: Logger;
  /** To wake admitted jobs' workflows; without it they start at their next re-check. */
  temporal?: () => Promise<TemporalClient>;
}

/** Admits what fits on the host now; returns the ids that became running. */
export async function admitQueuedBackups(deps: AdmissionDeps, storageHost: string): Promise<string[]> {
  return withAdvisoryLock(deps.db, `borgcube:admission:${storageHost}`, async (tx) => {
    const running = await q.runningBackupsOnHost(tx, storageHost);
    const hostLimit = (await q.hostBackupLimit(tx, storageHost)) ?? deps.config.queue.maxBackupsPerHost;
    let hostRunning = 0;
    for (const n of running.values()) hostRunning += n;
    // The common case of a busy host: nothing can start, and the queue need not be read.
    if (hostRunning >= hostLimit) return [];
    const queued = await q.queuedBackupsOnHost(tx, storageHost);
    if (!queued.length) return [];
    const repoLimits = await q.repositoryBackupLimits(tx, [...new Set(queued.map((j) => j.repositoryId))]);
    const lastAdmittedAt = await q.lastBackupStarts(tx, [...new Set(queued.flatMap((j) => (j.clientId ? [j.clientId] : [])))]);
    const plan = planAdmissions({
      hostLimit,
      repositoryLimit: (id) => repoLimits.get(id) ?? deps.config.queue.maxBackupsPerRepository,
      runningPerRepository: running,
      queued,
      lastAdmittedAt,
    });
    return q.promoteQueued(tx, plan.admit);
  });
}

/** Wakes admitted jobs' workflows (workflow id = job id); a failure is only logged (see the file comment). */
export async function wakeAdmitted(deps: AdmissionDeps, jobIds: string[]): Promise<void> {
  if (!jobIds.length || !deps.temporal) return;
  const temporal = await deps.temporal();
  await Promise.all(
    jobIds.map((id) =>
      temporal.workflow
        .getHandle(id)
        .signal(admittedSignal)
        .catch((err: Error) => deps.log.warn({ job: id, err: err.message }, 'could not wake an admitted job; it starts at its next re-check')),
    ),
  );
}

/** Admits what fits on the host and wakes those jobs, except `self` (the caller, which is awake). */
export async function admitAndWake(deps: AdmissionDeps, storageHost: string, self?: string): Promise<string[]> {
  const admitted = await admitQueuedBackups(deps, storageHost);
  if (admitted.length) deps.log.info({ storageHost, jobs: admitted }, 'queued backups admitted');
  await wakeAdmitted(
    deps,
    admitted.filter((id) => id !== self),
  );
  return admitted;
}

export type AdmissionAnswer = { state: 'running' } | { state: 'queued' } | { state: 'gone'; why: string };

/**
 * The backup workflow's admission step: `running` once the job holds a slot (admitted now, or
 * earlier by whoever freed one), `queued` while it waits, `gone` when the row is missing or ended
 * (cancelled while queued, ended by the orphan sweep).
 */
export async function admitBackup(deps: AdmissionDeps, jobId: string): Promise<AdmissionAnswer> {
  const found = await q.storageHostOfJob(deps.db, jobId);
  if (!found) return { state: 'gone', why: `job ${jobId} does not exist` };
  if (found.job.state === 'running') return { state: 'running' };
  if (found.job.state !== 'queued') return { state: 'gone', why: `job ${jobId} already ended (${found.job.state})` };
  const admitted = await admitAndWake(deps, found.storageHost, jobId);
  return admitted.includes(jobId) ? { state: 'running' } : { state: 'queued' };
}

/** A backup ended (or a slot was freed some other way): the next queued ones of its host may start. */
export async function releaseBackupSlot(deps: AdmissionDeps, job: Pick<Job, 'id' | 'kind'>): Promise<void> {
  if (job.kind !== 'backup') return;
  const found = await q.storageHostOfJob(deps.db, job.id);
  if (found) await admitAndWake(deps, found.storageHost);
}

/**
 * Places in the queue (1 = next) of the given queued jobs, for the console, CLI and API: each
 * job's place in its host's fair order. A job whose repository is at its own limit may be passed
 * over by jobs behind it (of other repositories), so a place is an order, not a promise.
 */
export async function queuePositions(db: Db, jobs: ReadonlyArray<Pick<Job, 'id' | 'state' | 'kind' | 'repositoryId'>>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const queued = jobs.filter((j) => j.state === 'queued' && j.kind === 'backup');
  if (!queued.length) return out;
  for (const host of await q.storageHostsOf(db, [...new Set(queued.map((j) => j.repositoryId))])) {
    const all = await q.queuedBackupsOnHost(db, host);
    const last = await q.lastBackupStarts(db, [...new Set(all.flatMap((j) => (j.clientId ? [j.clientId] : [])))]);
    fairOrder(all, last).forEach((j, i) => out.set(j.id, i + 1));
  }
  return out;
}
