// The cleanup of a backup or restore job whose own workflow is gone (terminated in Temporal's UI,
// or never started because its starter died): services/jobs.ts has already marked the row failed
// and revoked the credential; this does what that workflow's cleanup would have done. Without it,
// the job key, cache and credential stayed in the client's home, a borg still running there kept
// its session open, and what the job stored without an archive stayed in the repository.
// Workflow id `cleanup-<job id>`, so it runs once per job however often it is asked for.
import { proxyActivities } from '@temporalio/workflow';
import type { JobActivities } from '../activities/jobs.js';
import { describeFailure, retry as jobRetry } from './failures.js';
import { storageHostActivities } from './storage-host.js';

/** Input of `orphanCleanup`: the cleanup of a backup or restore job whose own workflow is gone. */
export interface OrphanCleanupInput {
  jobId: string;
  storageHost: string;
}
export const orphanCleanupWorkflowId = (jobId: string) => `cleanup-${jobId}`;

export interface OrphanCleanupResult {
  /** Why the client's job folder could not be removed, if it could not (client unreachable, removed). */
  clientError?: string;
  removedObjects: number;
}

const retry = { ...jobRetry, maximumAttempts: 5 } as const;
const jobActs = proxyActivities<JobActivities>({ startToCloseTimeout: '1m', retry });

export async function orphanCleanup(input: OrphanCleanupInput): Promise<OrphanCleanupResult> {
  const host = storageHostActivities(input.storageHost);
  const storageActs = host.repo;
  // The job folder's cleanup runs on the storage host, as in the job's own workflow.
  const cleanupActs = host.clientCleanup;
  // First the server side: a borg still running on the client loses its session at once.
  await storageActs.revokeCredential({ jobId: input.jobId });
  let clientError: string | undefined;
  try {
    // Stops a borg that still runs there, then removes the folder (key, cache, credential, binary).
    await cleanupActs.cleanupClient({ jobId: input.jobId, keepFilesCache: false });
  } catch (err) {
    clientError = describeFailure(err);
  }
  // Unreferenced objects go, committed checkpoints are recorded as the client's archives, the
  // server folder and the job key are deleted — as after any failed job.
  const { removedObjects } = await storageActs.cleanupJob({ jobId: input.jobId, succeeded: false });
  const removed = removedObjects ? `, ${removedObjects} unreferenced object(s) removed from the repository` : '';
  await jobActs.logJob(
    clientError === undefined
      ? { jobId: input.jobId, level: 'INFO', message: `cleanup after the job's end: the job folder on the client and the server's job files are gone${removed}` }
      : { jobId: input.jobId, level: 'WARNING', message: `cleanup after the job's end: the job folder on the client could not be removed (${clientError}); the server's job files are gone${removed}` },
  );
  return { clientError, removedObjects };
}
