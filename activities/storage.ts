// Activities that touch a repository (the storage host's task queue): they run inside the
// repository service's process, which holds the real keys and the upstream borg sessions, and
// call it through its public API (proxy/storage/api.ts).
//  * prepareBackup: everything the client gets (BORG_PROTOCOL.md §6.6), in the job's server folder;
//  * prepareRestore: the same for a restore — job key, a manifest of only its archive, the objects
//    its read-only session may serve, the credential; restoreSelection: those objects' counts
//    once walked, when prepareRestore returned before;
//  * finalizeBackup: the archive is in the real manifest → record it; drop the job's checkpoints;
//  * cleanupJob: remove what a job left that no archive references; forget the job's secrets;
//  * revokeCredential: the credential stops opening the proxy, live sessions end.
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import type { Db } from '../db/client.js';
import type { JobStats } from '../db/schema.js';
import type { EventPublisher } from '../infra/events.js';
import type { Logger } from '../infra/logger.js';
import { StorageJobError, type PreparedRestore, type PreparedRestoreStart, type RestoreCounts, type StorageApi } from '../proxy/storage/api.js';
import { recordPhase } from './jobs.js';
import { beating } from './server-borg.js';

export interface StorageActivityDeps {
  db: Db;
  log: Logger;
  storage: StorageApi;
  /** Live job events (phase changes); none in the benchmark's service host. */
  events?: EventPublisher;
  /**
   * Opens this worker's connection to a job's client while it is prepared, for the push that
   * follows (client-connection.ts warm); absent where no client activities run beside these.
   */
  warmClient?: (jobId: string) => void;
}

/** Known permanent failures of the storage side become non-retryable at the activity boundary. */
async function nonRetryableIfGone<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof StorageJobError) throw ApplicationFailure.nonRetryable(err.message, err.type);
    throw err;
  }
}

export function createStorageActivities(deps: StorageActivityDeps) {
  const { storage } = deps;
  return {
    async prepareBackup({ jobId }: { jobId: string }): Promise<{ archiveName: string; handedObjects: number }> {
      deps.warmClient?.(jobId);
      return nonRetryableIfGone(storage.prepareJob(jobId));
    },

    /**
     * The restore's job key, fake manifest, allowed objects and credential (StorageApi.prepareRestore).
     * `jobKey: 'authenticated'` comes from workflows whose worker lets borg read such a key; an
     * older workflow's restore gets a key file.
     */
    async prepareRestore({ jobId, jobKey, selectLater }: { jobId: string; jobKey?: 'authenticated'; selectLater?: boolean }): Promise<PreparedRestore | PreparedRestoreStart> {
      deps.warmClient?.(jobId);
      const form = jobKey === 'authenticated' ? 'authenticated' : 'keyfile';
      // `selectLater` comes from workflows that await restoreSelection (StorageApi.prepareRestoreStart).
      return nonRetryableIfGone(selectLater ? storage.prepareRestoreStart(jobId, form) : storage.prepareRestore(jobId, form));
    },

    /** The counts of the selection prepareRestore left walking (StorageApi.restoreSelection). */
    async restoreSelection({ jobId }: { jobId: string }): Promise<RestoreCounts> {
      // The walk may take minutes (millions of items): the heartbeats say this process still runs it.
      return beating(10_000, () => nonRetryableIfGone(storage.restoreSelection(jobId)));
    },

    /** The archive must be in the real manifest under its reserved name; record it. */
    async finalizeBackup({ jobId }: { jobId: string }): Promise<{ stats: JobStats }> {
      await recordPhase(deps, jobId, 'finalize');
      return nonRetryableIfGone(storage.finalizeJob(jobId));
    },

    async revokeCredential({ jobId }: { jobId: string }): Promise<void> {
      await storage.revokeJob(jobId);
    },

    /** After any job (StorageApi.cleanupJob); heartbeats once the repository work is done. */
    async cleanupJob({ jobId, succeeded }: { jobId: string; succeeded: boolean }): Promise<{ removedObjects: number }> {
      return storage.cleanupJob(jobId, succeeded, () => heartbeat());
    },
  };
}

export type StorageActivities = ReturnType<typeof createStorageActivities>;
