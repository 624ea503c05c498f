// Activities that act on a client over SSH (main task queue): probe it, run `borg create` or
// `borg extract` detached and follow it. Pushing the job folder and the cleanup (with the files
// cache's way back) run on the storage host, where those files are (client-files.ts). The
// machinery lives in remote-borg/; these are the thin activities the workflows call.
import { posix } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Db } from '../db/client.js';
import type { RestoreSpec } from '../db/schema.js';
import type { Account } from '../infra/accounts.js';
import type { Config } from '../infra/config.js';
import type { EventPublisher } from '../infra/events.js';
import type { Logger } from '../infra/logger.js';
import { SshPool } from '../infra/ssh-pool.js';
import { jobRepositoryUrl } from '../infra/storage-layout.js';
import { appendJobLog } from '../db/queries/jobs.js';
import { recordPhase } from './jobs.js';
import { borgCreate } from './remote-borg/borg-create.js';
import { borgExtract } from './remote-borg/borg-extract.js';
import { createClientBorg } from './remote-borg/client-borg.js';
import { createClientConnections } from './remote-borg/client-connection.js';
import { runDetached } from './remote-borg/detached-run.js';
import { loadJobHooks, runHookPhase } from './remote-borg/hooks.js';
import {
  checkCounted,
  checkDumpEntry,
  checkRestored,
  checkRestoreTarget,
  countRestoreTarget,
  prepareRestoreTarget,
  type Extracted,
  type RestoreCheck,
  type RestoreExpectation,
  type RestoreOutcome,
  type TargetCount,
} from './remote-borg/restore-target.js';

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
  /**
   * The job's repository URL on its storage host's sshd (from pushJobFolder, which runs there);
   * absent in the histories of jobs started before storage hosts, which had one host: this config's.
   */
  location?: string;
}

export interface EndHooksInput extends JobRef {
  /** How the backup ended: on-failure hooks run when it failed, after hooks always. */
  state: 'succeeded' | 'failed' | 'violation' | 'cancelled';
}

export interface ExtractRestoreInput extends RunBorgInput {
  /**
   * What the storage side prepared (prepareRestore): the archive's name in the job's manifest and
   * whether the job key is `authenticated` (absent from a storage host that predates it: a key file).
   */
  prepared: { archiveName: string; authenticatedKey?: boolean };
}

export interface RunBorgExtractInput extends ExtractRestoreInput {
  /** …and the selection's counts. */
  prepared: ExtractRestoreInput['prepared'] & RestoreExpectation;
}

/** What a restore's borg extract did, for the check against the selection (checkRestore). */
export interface RestoreRun extends Extracted {
  /** How it is checked (restore-target.ts prepareRestoreTarget). */
  check: RestoreCheck;
  /** What is in the target afterwards, when it is checked by counting. */
  found?: TargetCount;
  target: string;
  durationSeconds: number;
}

/** Runs `fn`, calling `beat` every 5 s meanwhile (the run activities' heartbeat timeout is 20 s). */
async function beating<T>(beat: () => void, fn: () => Promise<T>): Promise<T> {
  const timer = setInterval(beat, 5000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** A restore job's row, or the failure that it is none. */
function restoreSpecOf(job: { id: string; restore: RestoreSpec | null }): RestoreSpec {
  if (!job.restore) throw ApplicationFailure.nonRetryable(`job ${job.id} is not a restore`, 'JobGone');
  return job.restore;
}

/** The restore's own client steps (the rest is shared with backups). */
function restoreActivities(deps: ClientActivityDeps, withClient: ReturnType<typeof createClientConnections>['withClient'], borg: ReturnType<typeof createClientBorg>) {
  const { config } = deps;

  /** borg extract in the target, to its end, and the target counted when the restore is checked that way. */
  async function extract(input: ExtractRestoreInput, counted: boolean, expected?: RestoreExpectation): Promise<RestoreRun> {
    await recordPhase(deps, input.jobId, 'run');
    return withClient(input.jobId, async ({ conn, job, dir }) => {
      const spec = restoreSpecOf(job);
      const ctx = Context.current();
      const signal = ctx.cancellationSignal;
      if (spec.dump) {
        if (!expected) throw ApplicationFailure.nonRetryable(`job ${job.id} restores a dump, which is prepared whole`, 'RestoreTargetInvalid');
        checkDumpEntry(spec.dump.entry, expected);
      }
      // Heartbeats the previous attempt's details: they say whether borg was started already.
      const check = await beating(() => ctx.heartbeat(ctx.info.heartbeatDetails), () => prepareRestoreTarget(conn, spec, dir, counted, signal));
      // A cancellation (the selection failed meanwhile) arrives with a heartbeat's answer: the
      // first one, when borg has started, if none went before (the SDK holds later ones back).
      signal.throwIfAborted();
      const { prepared } = input;
      const r = await runDetached(deps, { conn, jobId: input.jobId, dir }, borgExtract(input.location ?? jobRepositoryUrl(config, job.id), job, prepared.archiveName, input.borgCmd, check, prepared.authenticatedKey === true));
      // A folder of millions of files takes a while to walk.
      const found = check === 'count' ? await beating(r.keepAlive, () => countRestoreTarget(conn, spec, dir, signal)) : undefined;
      const durationSeconds = Math.round((Date.now() - (job.startedAt ?? job.createdAt).getTime()) / 1000);
      return { check, listed: r.listed, writtenBytes: r.progress?.totalSize ?? 0, found, target: spec.target, durationSeconds };
    });
  }

  return {
    /**
     * probeClient for a restore, and the target checked (is a directory or can be created, and
     * the client's account can write it) before anything of the job reaches the client.
     */
    async probeRestoreClient({ jobId }: JobRef): Promise<ClientProbe> {
      return withClient(jobId, async ({ conn, client, job, home }) => {
        const signal = Context.current().cancellationSignal;
        const spec = restoreSpecOf(job);
        // A dump goes into a database the run creates: there is no target directory to check.
        if (spec.dump) return { version: await borg.version(conn, client, signal) };
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
     * side prepared. (Workflows from before extractRestore.)
     */
    async runBorgExtract(input: RunBorgExtractInput): Promise<RestoreOutcome & { durationSeconds: number }> {
      const expected = input.prepared;
      const ran = await extract(input, expected.dirs !== undefined && expected.nondirs !== undefined, expected);
      return { ...(await checkRun(deps, input.jobId, ran, expected)), durationSeconds: ran.durationSeconds };
    },

    /**
     * The same run, started while the storage side still makes the selection: what borg did and
     * what is in the target, for checkRestore once the selection's counts are known. Never a dump
     * restore (prepared whole).
     */
    async extractRestore(input: ExtractRestoreInput): Promise<RestoreRun> {
      return extract(input, true);
    },

    /** What extractRestore found against the selection (restoreSelection's counts). */
    async checkRestore({ jobId, expected, ran }: { jobId: string; expected: RestoreExpectation; ran: RestoreRun }): Promise<RestoreOutcome & { durationSeconds: number }> {
      return { ...(await checkRun(deps, jobId, ran, expected)), durationSeconds: ran.durationSeconds };
    },
  };
}

/** A restore's run checked against the selection: borg's list, or the count of the target (logged). */
async function checkRun(deps: ClientActivityDeps, jobId: string, ran: RestoreRun, expected: RestoreExpectation): Promise<RestoreOutcome> {
  if (ran.check === 'list' || !ran.found || expected.dirs === undefined || expected.nondirs === undefined) return checkRestored(ran, expected);
  const { found } = ran;
  const outcome = checkCounted(ran, { ...expected, dirs: expected.dirs, nondirs: expected.nondirs }, found);
  if (found.unreadable) await appendJobLog(deps.db, jobId, `restored ${outcome.items} items; some restored folders cannot be read by the client's account, so what is below them was not counted`, 'WARNING');
  else await appendJobLog(deps.db, jobId, `restored ${outcome.items} items: ${found.nondirs} files, links and other non-directories and ${found.dirs} directories are in ${ran.target}`);
  return outcome;
}

/** A backup's hooks (remote-borg/hooks.ts): before it, and on failure and after it. */
function hookActivities(deps: ClientActivityDeps, withClient: ReturnType<typeof createClientConnections>['withClient']) {
  const { db } = deps;
  return {
    /**
     * The backup's before hooks (the client's, then its policy's), before anything of the job
     * reaches the client: the first that fails fails the job, and nothing is pushed. Without
     * hooks no connection is made. A retry (worker died mid-hook) runs them again.
     */
    async runBeforeHooks({ jobId }: JobRef): Promise<{ ran: number }> {
      const loaded = await loadJobHooks(db, jobId);
      if (!loaded?.hooks.before.length) return { ran: 0 };
      const failures = await withClient(jobId, ({ conn, home }) => {
        const ctx = Context.current();
        return runHookPhase(deps, { conn, jobId, home, limits: loaded.limits, signal: ctx.cancellationSignal, beat: () => ctx.heartbeat() }, 'before', loaded.hooks.before);
      });
      if (failures[0]) throw ApplicationFailure.nonRetryable(failures[0], 'HookFailed');
      return { ran: loaded.hooks.before.length };
    },

    /**
     * The on-failure hooks (if the backup failed or was stopped for a violation), then the after
     * hooks (always), each run whatever the one before did. Their failures are returned for the
     * job's error; the backup's own outcome is the workflow's to keep.
     */
    async runEndHooks({ jobId, state }: EndHooksInput): Promise<{ failures: string[] }> {
      const loaded = await loadJobHooks(db, jobId);
      if (!loaded) return { failures: [] };
      const onFailure = state === 'failed' || state === 'violation' ? loaded.hooks.onFailure : [];
      if (!onFailure.length && !loaded.hooks.after.length) return { failures: [] };
      return withClient(jobId, async ({ conn, home }) => {
        const ctx = Context.current();
        const run = { conn, jobId, home, state, limits: loaded.limits, signal: ctx.cancellationSignal, beat: () => ctx.heartbeat() };
        const failures = await runHookPhase(deps, run, 'onFailure', onFailure);
        failures.push(...(await runHookPhase(deps, run, 'after', loaded.hooks.after)));
        return { failures };
      });
    },

  };
}

export function createClientActivities(deps: ClientActivityDeps) {
  const { config } = deps;
  const { withClient } = createClientConnections(deps, deps.sshPool ?? new SshPool());
  const borg = createClientBorg(deps);

  return {
    ...restoreActivities(deps, withClient, borg),
    ...hookActivities(deps, withClient),

    /**
     * Runs while the server prepares the job: connects (the connection then waits in the pool for
     * pushJobFolder) and asks the client's borg for its version, which costs Python's start-up
     * unless the same file answered before.
     */
    async probeClient({ jobId }: JobRef): Promise<ClientProbe> {
      return withClient(jobId, async ({ conn, client }) => ({ version: await borg.version(conn, client, Context.current().cancellationSignal) }));
    },

    /**
     * Starts `borg create` detached on the client (or re-attaches to the one already running after
     * a worker restart), follows its JSON log and exit code, heartbeats the latest progress.
     */
    async runBorgCreate(input: RunBorgInput): Promise<{ rc: number }> {
      await recordPhase(deps, input.jobId, 'run');
      return withClient(input.jobId, async ({ conn, job, client, dir }) => {
        const { rc } = await runDetached(deps, { conn, jobId: input.jobId, dir }, borgCreate(input.location ?? jobRepositoryUrl(config, job.id), job, client, input.borgCmd, dir));
        return { rc };
      });
    },
  };
}

export type ClientActivities = ReturnType<typeof createClientActivities>;
