// The activities that move a job's files between the storage host and the client (the storage
// host's task queue, DESIGN.md §2): what prepare wrote goes up into the client's job folder, and
// the client's files cache comes back after the job. They run where those files are, in the
// storage worker, so that the central worker never reads a storage host's disk; they log into the
// client with the server's client key like the central worker's client activities do.
import { Context } from '@temporalio/activity';
import { recordClientContact } from '../db/queries/clients.js';
import { appendJobLog } from '../db/queries/jobs.js';
import { jobRepositoryUrl } from '../infra/storage-layout.js';
import { SshPool } from '../infra/ssh-pool.js';
import type { ClientActivityDeps, ClientProbe, JobRef } from './client.js';
import { recordPhase } from './jobs.js';
import { createClientBorg, type BorgOnClient } from './remote-borg/client-borg.js';
import { createClientConnections } from './remote-borg/client-connection.js';
import { createJobFolders } from './remote-borg/job-folder.js';

/** What pushJobFolder hands the run: the borg to run and where the client reaches this job's repository. */
export interface PushedJobFolder extends BorgOnClient {
  /**
   * The job's repository URL on this storage host's sshd (infra/storage-layout.ts
   * jobRepositoryUrl): built here, where prepare wrote the same URL into the client's cache.
   */
  location: string;
}

export function createClientFileActivities(deps: ClientActivityDeps) {
  const { db, config, log } = deps;
  const { withClient } = createClientConnections(deps, deps.sshPool ?? new SshPool());
  const borg = createClientBorg(deps);
  const folders = createJobFolders(deps);

  return {
    /**
     * Uploads what prepareBackup (or prepareRestore) wrote for the client into a fresh private job
     * folder, then makes sure there is a borg 1.2 to run: the client's own, or the server's
     * uploaded into the job folder. One SSH connection for both. A job is contact with the
     * client: its last-seen time and borg version are recorded as `borgcube client test` records them.
     */
    async pushJobFolder({ jobId, probed }: JobRef & { probed?: ClientProbe }): Promise<PushedJobFolder> {
      await recordPhase(deps, jobId, 'push');
      return withClient(jobId, async ({ conn, client, dir }) => {
        // `borg --version` starts Python on the client (~0.2 s): done by probeClient while the
        // server prepared, or else here while the folder goes up.
        const probe = probed ? Promise.resolve(probed.version) : borg.version(conn, client, Context.current().cancellationSignal);
        probe.catch(() => {}); // awaited below; an upload failure must not leave it unhandled
        await folders.push(conn, jobId, dir);
        const version = await probe;
        await recordClientContact(db, client.id, version);
        return { ...(await borg.ensure(conn, client, dir, jobId, version)), location: jobRepositoryUrl(config, jobId) };
      });
    },

    /**
     * Stops borg if it still runs and removes the job folder. Always called, whatever happened.
     * After borg ended well it first copies the client's files cache back; cleanupJob keeps it for
     * the client's next job (it only ever goes back to the same client) if the job succeeded.
     * Losing it costs speed, never correctness.
     */
    async cleanupClient({ jobId, keepFilesCache }: JobRef & { keepFilesCache?: boolean }): Promise<void> {
      await withClient(jobId, async ({ conn, job, dir }) => {
        if (keepFilesCache) {
          // Whatever goes wrong here, the backup's outcome stands: its next run reads every file again.
          try {
            const pulled = await folders.pullFilesCache(conn, job, dir);
            if (pulled && 'refused' in pulled) await appendJobLog(db, jobId, `the client's files cache was not kept: ${pulled.refused}`, 'WARNING');
          } catch (err) {
            log.warn({ job: jobId, err: (err as Error).message }, 'the files cache could not be kept');
          }
        }
        await folders.remove(conn, dir);
      });
    },
  };
}

export type ClientFileActivities = ReturnType<typeof createClientFileActivities>;
