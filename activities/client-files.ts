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
     * Decides which borg the job runs (the client's own 1.2/1.4, or the server's, by the client's
     * deploy mode; an unsupported one fails the job here), uploads what prepareBackup (or
     * prepareRestore) wrote for the client into a fresh private job folder, and deploys the
     * server's borg into it if decided. One SSH connection for both. A job is contact with the
     * client: its last-seen time and borg version are recorded as `borgcube client test` records them.
     */
    async pushJobFolder({ jobId, probed }: JobRef & { probed?: ClientProbe }): Promise<PushedJobFolder> {
      await recordPhase(deps, jobId, 'push');
      return withClient(jobId, async ({ conn, client, dir }) => {
        // `borg --version` starts Python on the client (~0.2 s): done by probeClient while the
        // server prepared, or else here. Nothing of the job goes up before it is known which borg
        // will run: an unsupported one that may not be replaced fails the job here, before the
        // credential reaches the client.
        const version = probed ? probed.version : await borg.version(conn, client, Context.current().cancellationSignal);
        await recordClientContact(db, client.id, version);
        const choice = borg.decide(client, version);
        await folders.push(conn, jobId, dir);
        return { ...(await borg.ensure(conn, client, dir, jobId, choice)), location: jobRepositoryUrl(config, jobId) };
      });
    },

    /**
     * Stops borg if it still runs and removes the job folder. Always called, whatever happened.
     * After borg ended well it first copies the client's files cache back; cleanupJob keeps it for
     * the client's next job (it only ever goes back to the same client) if the job succeeded.
     * Losing it costs speed, never correctness. After a failed restore (`failedRestore`), the
     * target folders the job made go too while they are empty.
     */
    async cleanupClient({ jobId, keepFilesCache, failedRestore }: JobRef & { keepFilesCache?: boolean; failedRestore?: boolean }): Promise<void> {
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
        // A restore that did not succeed leaves no empty target behind that it made (a bad path, a crafted archive).
        const undone = await folders.remove(conn, dir, failedRestore && job.restore ? job.restore.target : undefined);
        if (undone) await appendJobLog(db, jobId, undone.message, undone.ok ? 'INFO' : 'WARNING');
      });
    },
  };
}

export type ClientFileActivities = ReturnType<typeof createClientFileActivities>;
