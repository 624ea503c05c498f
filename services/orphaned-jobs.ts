// Jobs whose workflow is gone (terminated in Temporal's UI, never started because its starter
// died between row and workflow, or ended without being able to record its state): their row is
// ended here — otherwise it stays `running` and every later backup of the client is refused — and
// a backup's leftovers are cleaned up by the `orphanCleanup` workflow.
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import * as jobsQ from '../db/queries/jobs.js';
import { findRepositoryById } from '../db/queries/repositories.js';
import { orphanCleanup, orphanCleanupWorkflowId, type OrphanCleanupInput } from '../workflows/orphan-cleanup.js';
import { releaseBackupSlot } from './admission.js';
import type { ServiceDeps } from './deps.js';

/**
 * Why a job's workflow can no longer end its row ('does not exist', 'ended (TERMINATED)', …), or
 * undefined while it runs. A workflow that starts after its row was ended this way stops at once:
 * its first step refuses a job that is no longer running (reserveJob, JobGone).
 */
export async function workflowGone(handle: WorkflowHandle): Promise<string | undefined> {
  try {
    const d = await handle.describe();
    return d.status.name === 'RUNNING' ? undefined : `ended (${d.status.name})`;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return 'does not exist';
    throw err;
  }
}

export async function endOrphanedJob(deps: Pick<ServiceDeps, 'db' | 'log' | 'temporal' | 'config'>, id: string, why: string): Promise<void> {
  const job = await jobsQ.findJob(deps.db, id);
  // A backup or a restore leaves things behind that its workflow's cleanup would have removed
  // (the job folder on the client, a borg still running there, the server's job files) — unless
  // it was still queued: then nothing ran.
  const repo = job?.state !== 'queued' && (job?.kind === 'backup' || job?.kind === 'restore') ? await findRepositoryById(deps.db, job.repositoryId) : undefined;
  const error = `the job's workflow ${why}; it can no longer record how the job ended, so BorgCube marked it failed${repo ? ` (its cleanup runs as workflow ${orphanCleanupWorkflowId(id)})` : ''}`;
  await jobsQ.revokeJobCredentials(deps.db, id);
  if (await jobsQ.completeJob(deps.db, id, 'failed', error, null)) {
    await jobsQ.appendJobLog(deps.db, id, `job failed: ${error}`, 'ERROR');
    deps.log.warn({ job: id, why }, 'a running job without a running workflow was ended');
  }
  if (repo) await startOrphanCleanup(deps, { jobId: id, storageHost: repo.storageHost });
  // The slot it held goes to the next queued backup.
  if (job) await releaseBackupSlot(deps, job);
}

/**
 * What the gone workflow's cleanup would have done (workflows/orphan-cleanup.ts): its job folder
 * leaves the client, a borg still running there is stopped, the server's job files and the
 * objects no archive references go. Started once per job; a second request finds it started.
 */
async function startOrphanCleanup(deps: Pick<ServiceDeps, 'log' | 'temporal' | 'config'>, input: OrphanCleanupInput): Promise<void> {
  try {
    const temporal = await deps.temporal();
    await temporal.workflow.start(orphanCleanup, { workflowId: orphanCleanupWorkflowId(input.jobId), taskQueue: deps.config.temporal.taskQueue, args: [input] });
    deps.log.info({ job: input.jobId }, 'cleanup of the ended job started');
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
}

/**
 * The periodic sweep's part: rows still `queued` or `running` after `minAge` whose workflow is gone are
 * ended (see cancelJob). Young rows are left alone: a starter writes the row just before it
 * starts the workflow, and a schedule's run reserves the row before it starts the job's child.
 * Returns the ids it ended.
 */
export async function endOrphanedJobs(deps: Pick<ServiceDeps, 'db' | 'log' | 'temporal' | 'config'>, minAgeMs = 15 * 60_000): Promise<string[]> {
  const rows = await jobsQ.activeJobsOlderThan(deps.db, new Date(Date.now() - minAgeMs));
  if (!rows.length) return [];
  const temporal = await deps.temporal();
  const ended: string[] = [];
  for (const row of rows) {
    const gone = await workflowGone(temporal.workflow.getHandle(row.id));
    if (!gone) continue;
    await endOrphanedJob(deps, row.id, gone);
    ended.push(row.id);
  }
  return ended;
}
