// Activities that act on a client over SSH (main task queue): push the job folder, deploy borg,
// run `borg create` detached and follow it, pull the files cache back, clean up. The machinery
// lives in remote-borg/; these are the thin activities the workflows call.
import { posix } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Db } from '../db/client.js';
import type { RestoreSpec } from '../db/schema.js';
import { recordClientContact } from '../db/queries/clients.js';
import { appendJobLog } from '../db/queries/jobs.js';
import type { Account } from '../infra/accounts.js';
import type { Config } from '../infra/config.js';
import type { EventPublisher } from '../infra/events.js';
import type { Logger } from '../infra/logger.js';
import { SshPool } from '../infra/ssh-pool.js';
import { recordPhase } from './jobs.js';
import { borgCreate } from './remote-borg/borg-create.js';
import { borgExtract } from './remote-borg/borg-extract.js';
import { createClientBorg, type BorgOnClient } from './remote-borg/client-borg.js';
import { createClientConnections } from './remote-borg/client-connection.js';
import { runDetached } from './remote-borg/detached-run.js';
import { createJobFolders } from './remote-borg/job-folder.js';
import { checkRestored, checkRestoreTarget, ensureRestoreTarget, type RestoreExpectation, type RestoreOutcome } from './remote-borg/restore-target.js';

export { clientJobDir } from './remote-borg/job-folder.js';

export interface ClientActivityDeps {
  db: Db;
  config: Config;
  events: EventPublisher;
  log: Logger;
  storageAccount(): Account;
  /** Poll interval of the log follower (tests shorten it). */
  pollMs?: number;
  /** Connections kept between the activities of a job (the worker's; one of its own otherwise). */
  sshPool?: SshPool;
}

export interface JobRef {
  jobId: string;
}

/** What probeClient found: the version of the borg at the client's configured path, if any. */
export interface ClientProbe {
  version: string | null;
}

export interface RunBorgInput extends JobRef {
  /** The borg command on the client (from pushJobFolder). */
  borgCmd: string;
}

export interface RunBorgExtractInput extends RunBorgInput {
  /** What the storage side prepared (prepareRestore): the archive's name in the job's manifest and the selection's counts. */
  prepared: RestoreExpectation & { archiveName: string };
}

/** A restore job's row, or the failure that it is none. */
function restoreSpecOf(job: { id: string; restore: RestoreSpec | null }): RestoreSpec {
  if (!job.restore) throw ApplicationFailure.nonRetryable(`job ${job.id} is not a restore`, 'JobGone');
  return job.restore;
}

/** The restore's own client steps (the rest is shared with backups). */
function restoreActivities(deps: ClientActivityDeps, withClient: ReturnType<typeof createClientConnections>['withClient'], borg: ReturnType<typeof createClientBorg>) {
  const { config } = deps;
  return {
    /**
     * probeClient for a restore, and the target checked (is a directory or can be created, and
     * the client's account can write it) before anything of the job reaches the client.
     */
    async probeRestoreClient({ jobId }: JobRef): Promise<ClientProbe> {
      return withClient(jobId, async ({ conn, client, job, home }) => {
        const signal = Context.current().cancellationSignal;
        const spec = restoreSpecOf(job);
        // BorgCube's own folder on the client is removed after every job, with what was restored into it.
        const own = posix.join(home, '.borgcube');
        if (!spec.inPlace && (spec.target === own || spec.target.startsWith(`${own}/`))) {
          throw ApplicationFailure.nonRetryable(`the restore target ${JSON.stringify(spec.target)} on client ${client.name} is inside BorgCube's job folders`, 'RestoreTargetInvalid');
        }
        await checkRestoreTarget(conn, client, spec, signal);
        return { version: await borg.version(conn, client, signal) };
      });
    },

    /**
     * Starts `borg extract` detached in the restore's target (created when missing) or re-attaches
     * to it, follows it like runBorgCreate, and checks what it restored against what the storage
     * side prepared.
     */
    async runBorgExtract(input: RunBorgExtractInput): Promise<RestoreOutcome & { durationSeconds: number }> {
      await recordPhase(deps, input.jobId, 'run');
      return withClient(input.jobId, async ({ conn, job, dir }) => {
        const spec = restoreSpecOf(job);
        await ensureRestoreTarget(conn, spec);
        const r = await runDetached(deps, { conn, jobId: input.jobId, dir }, borgExtract(config, job, input.prepared.archiveName, input.borgCmd));
        const outcome = checkRestored(r, input.prepared);
        return { ...outcome, durationSeconds: Math.round((Date.now() - (job.startedAt ?? job.createdAt).getTime()) / 1000) };
      });
    },
  };
}

export function createClientActivities(deps: ClientActivityDeps) {
  const { db, config, log } = deps;
  const { withClient } = createClientConnections(deps, deps.sshPool ?? new SshPool());
  const borg = createClientBorg(deps);
  const folders = createJobFolders(deps);

  return {
    ...restoreActivities(deps, withClient, borg),

    /**
     * Runs while the server prepares the job: connects (the connection then waits in the pool for
     * pushJobFolder) and asks the client's borg for its version, which costs Python's start-up
     * unless the same file answered before.
     */
    async probeClient({ jobId }: JobRef): Promise<ClientProbe> {
      return withClient(jobId, async ({ conn, client }) => ({ version: await borg.version(conn, client, Context.current().cancellationSignal) }));
    },

    /**
     * Decides which borg the job runs (the client's own 1.2/1.4, or the server's, by the client's
     * deploy mode; an unsupported one fails the job here), uploads what prepareBackup wrote for the
     * client into a fresh private job folder, and deploys the server's borg into it if decided. One SSH connection for both. A backup is contact with the client: its last-seen
     * time and borg version are recorded as `borgcube client test` records them.
     */
    async pushJobFolder({ jobId, probed }: JobRef & { probed?: ClientProbe }): Promise<BorgOnClient> {
      await recordPhase(deps, jobId, 'push');
      return withClient(jobId, async ({ conn, client, dir }) => {
        // `borg --version` starts Python on the client (~0.2 s): done by probeClient while the
        // server prepared, or else here.
        // Nothing of the job goes up before it is known which borg will run: an unsupported one
        // that may not be replaced fails the job here, before the credential reaches the client.
        const version = probed ? probed.version : await borg.version(conn, client);
        await recordClientContact(db, client.id, version);
        const choice = borg.decide(client, version);
        await folders.push(conn, jobId, dir);
        return borg.ensure(conn, client, dir, jobId, choice);
      });
    },

    /**
     * Starts `borg create` detached on the client (or re-attaches to the one already running after
     * a worker restart), follows its JSON log and exit code, heartbeats the latest progress.
     */
    async runBorgCreate(input: RunBorgInput): Promise<{ rc: number }> {
      await recordPhase(deps, input.jobId, 'run');
      return withClient(input.jobId, async ({ conn, job, client, dir }) => {
        const { rc } = await runDetached(deps, { conn, jobId: input.jobId, dir }, borgCreate(config, job, client, input.borgCmd));
        return { rc };
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

export type ClientActivities = ReturnType<typeof createClientActivities>;
