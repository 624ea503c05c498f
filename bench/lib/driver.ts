// bench:proxy's way through a BorgCube backup without Temporal: the same activity code the
// backup workflow runs (workflows/backup.ts), called in the same order — reserve, prepare (in the
// repository service), push the job folder — then the run script the run activity would start on
// the client (activities/remote-borg/run-script.ts), run here as the client user so that only
// `borg create` is timed; then finalize, pull the files cache (the next job's cache), revoke,
// clean up. Client-side activities run in this (root) process, as in the worker.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { createClientActivities, clientJobDir } from '../../activities/client.js';
import { createClientFileActivities } from '../../activities/client-files.js';
import { borgCreateArgv } from '../../activities/remote-borg/borg-create.js';
import { runScript } from '../../activities/remote-borg/run-script.js';
import { createJobActivities } from '../../activities/jobs.js';
import { findClientById } from '../../db/queries/clients.js';
import { findJob, insertJob } from '../../db/queries/jobs.js';
import type { Client, JobStats } from '../../db/schema.js';
import { createEventPublisher, createRedis } from '../../infra/events.js';
import { jobRepositoryUrl } from '../../infra/storage-layout.js';
import { runActivity } from './activity-env.js';
import { registerCleanup } from '../../test/harness/cleanup.js';
import { sessionEnv } from './direct.js';
import { runAsUser, type TimedRun } from './measure.js';
import type { BenchStack } from './stack.js';
import type { BenchUser } from './users.js';

export interface PreparedJob {
  jobId: string;
  dir: string;
  script: string;
}

export class JobDriver {
  // Both halves of the client's side in this process (root): the storage host's (push, cleanup) and the worker's.
  private readonly clientActs: ReturnType<typeof createClientActivities> & ReturnType<typeof createClientFileActivities>;
  private readonly jobActs: ReturnType<typeof createJobActivities>;

  constructor(private readonly stack: BenchStack) {
    const redis = createRedis(stack.config.redisUrl);
    const events = createEventPublisher(redis);
    registerCleanup('Redis connection', () => events.close());
    const deps = { db: stack.db.handle.db, config: stack.config, events, log: stack.deps.log, storageAccount: () => stack.deps.storageAccount() };
    this.clientActs = { ...createClientActivities(deps), ...createClientFileActivities(deps) };
    this.jobActs = createJobActivities(deps);
  }

  /** Runs an activity function the way the worker would (inside an activity context). */
  private act<O>(fn: () => Promise<O>): Promise<O> {
    return runActivity(fn);
  }

  /** Everything before `borg create`: the job row, its key, cache and credential, on the client. */
  async prepare(client: Client, repositoryId: string, user: BenchUser): Promise<PreparedJob> {
    const jobId = crypto.randomUUID();
    await insertJob(this.stack.db.handle.db, { id: jobId, kind: 'backup', clientId: client.id, repositoryId, triggeredBy: 'bench' });
    await this.act(() => this.jobActs.reserveJob({ jobId, clientId: client.id, workflowRunId: 'bench' }));
    await this.stack.storageCall('prepareBackup', { jobId });
    await this.act(() => this.clientActs.pushJobFolder({ jobId }));
    const job = (await findJob(this.stack.db.handle.db, jobId))!;
    const fresh = (await findClientById(this.stack.db.handle.db, client.id))!;
    const dir = posix.join(user.home, clientJobDir(jobId));
    const script = posix.join(dir, 'run.sh');
    user.writeFile(script, runScript({ jobId, dir, argv: borgCreateArgv(jobRepositoryUrl(this.stack.config, job.id), job, fresh, fresh.borgPath) }), 0o700);
    return { jobId, dir, script };
  }

  /** The run script as the client user, timed; it must leave rc 0 (or 1: warnings). */
  async run(job: PreparedJob, user: BenchUser): Promise<TimedRun> {
    const r = await runAsUser(user, ['sh', job.script], sessionEnv(user), user.home);
    let rc = '';
    try {
      rc = readFileSync(posix.join(job.dir, 'rc'), 'utf8').trim();
    } catch {
      /* reported below */
    }
    if (r.code !== 0 || (rc !== '0' && rc !== '1')) {
      let tail = '';
      try {
        tail = readFileSync(posix.join(job.dir, 'borg.log'), 'utf8').split('\n').filter((l) => !l.includes('"progress')).slice(-8).join('\n');
      } catch {
        /* no log */
      }
      const logs = `--- repository service log\n${this.stack.storage.tail(25)}\n--- BorgCube sshd log\n${this.stack.sshd.log.split('\n').slice(-15).join('\n')}`;
      throw new Error(`borg create through BorgCube failed (script ${r.code}, rc ${rc || 'missing'}):\n${tail}\n${r.stderr}\n${logs}`);
    }
    return r;
  }

  /** Everything after borg: as the workflow does it, cleanup always. */
  async finish(job: PreparedJob, succeeded: boolean): Promise<JobStats | undefined> {
    let stats: JobStats | undefined;
    let error: string | undefined;
    try {
      if (succeeded) {
        stats = (await this.stack.storageCall<{ stats: JobStats }>('finalizeBackup', { jobId: job.jobId })).stats;
      }
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    await this.stack.storageCall('revokeCredential', { jobId: job.jobId });
    await this.act(() => this.clientActs.cleanupClient({ jobId: job.jobId, keepFilesCache: succeeded && !error }));
    await this.stack.storageCall('cleanupJob', { jobId: job.jobId, succeeded: succeeded && !error });
    await this.act(() => this.jobActs.completeJob({ jobId: job.jobId, state: succeeded && !error ? 'succeeded' : 'failed', error, stats }));
    if (error) throw new Error(`finishing job ${job.jobId} failed: ${error}`);
    return stats;
  }
}
