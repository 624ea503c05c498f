// TEST-ONLY: the client side and the repository writes of a backup, simulated for bench:fleet.
// The activities have the names and signatures of the real ones (activities/client.ts,
// activities/storage.ts), so the real `scheduledBackup` and `backup` workflows run them
// unchanged; what they do instead of SSH, borg and the proxy is: take time, heartbeat, write the
// job's phases, log lines and progress events as the real ones do (through the same JobLog), and
// record the archive and its stats in PostgreSQL as finalize does. Nothing here touches a client,
// a repository or the repository service. Never wired into the production worker (bench/ only).
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledFailure, Context, heartbeat } from '@temporalio/activity';
import type { ClientActivities, ClientProbe } from '../../activities/client.js';
import type { ClientFileActivities } from '../../activities/client-files.js';
import { recordPhase } from '../../activities/jobs.js';
import { JobLog } from '../../activities/remote-borg/job-log.js';
import type { StorageActivities } from '../../activities/storage.js';
import type { Db } from '../../db/client.js';
import { insertArchiveOnce } from '../../db/queries/archives.js';
import { recordClientContact } from '../../db/queries/clients.js';
import { findJob, revokeJobCredentials } from '../../db/queries/jobs.js';
import type { JobStats } from '../../db/schema.js';
import type { EventPublisher } from '../../infra/events.js';
import type { Logger } from '../../infra/logger.js';

export interface SimDeps {
  db: Db;
  events: EventPublisher;
  log: Logger;
  /** Duration of the simulated `borg create`, uniformly between these (seconds). */
  runSeconds: { min: number; max: number };
}

/** Heartbeat and progress cadence of the real follower (detached-run.ts beats every 2 s). */
const BEAT_MS = 2000;

const between = (min: number, max: number) => min + Math.random() * (max - min);

/** Sleeps `ms`, or throws the activity's cancellation (the workflow cancelled the job). */
async function cancellableSleep(ms: number): Promise<void> {
  const signal = Context.current().cancellationSignal;
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    if (signal.aborted) throw new CancelledFailure('cancelled');
    throw err;
  }
}

/** What a simulated backup of one client reports: a stable size per client, a little new data each run. */
function simulatedStats(seconds: number): Required<Pick<JobStats, 'originalSize' | 'compressedSize' | 'deduplicatedSize' | 'nfiles' | 'uploadedBytes' | 'uploadedObjects'>> {
  const originalSize = Math.round(between(2e9, 20e9));
  const deduplicatedSize = Math.round(seconds * between(1e6, 5e6));
  return { originalSize, compressedSize: Math.round(originalSize * 0.6), deduplicatedSize, nfiles: Math.round(originalSize / 150_000), uploadedBytes: deduplicatedSize, uploadedObjects: Math.round(deduplicatedSize / 2e6) };
}

/** The client activities the backup workflow calls on the main queue (probe, hooks, run), simulated; the simulated clients have no hooks. */
export function createSimulatedClientActivities(deps: SimDeps): Pick<ClientActivities, 'probeClient' | 'runBeforeHooks' | 'runEndHooks' | 'runBorgCreate'> {
  return {
    async probeClient(): Promise<ClientProbe> {
      await cancellableSleep(between(100, 600));
      return { version: '1.2.4' };
    },

    runBeforeHooks() {
      return Promise.resolve({ ran: 0 });
    },

    runEndHooks() {
      return Promise.resolve({ failures: [] });
    },

    /** Progress lines every 2 s (as borg prints them, through the real JobLog), heartbeats, a few log lines. */
    async runBorgCreate({ jobId }) {
      await recordPhase(deps, jobId, 'run');
      const seconds = between(deps.runSeconds.min, deps.runSeconds.max);
      const stats = simulatedStats(seconds);
      const log = await JobLog.resume(deps, jobId);
      await log.own('borg create started (simulated by bench:fleet: no SSH, no borg)');
      const started = Date.now();
      const end = started + seconds * 1000;
      for (let n = 1; Date.now() < end; n++) {
        const f = Math.min(1, (Date.now() - started) / (seconds * 1000));
        const line = {
          kind: 'progress' as const,
          originalSize: Math.round(stats.originalSize * f),
          compressedSize: Math.round(stats.compressedSize * f),
          deduplicatedSize: Math.round(stats.deduplicatedSize * f),
          nfiles: Math.round(stats.nfiles * f),
          path: `/srv/data/file-${n}`,
          time: Date.now() / 1000,
        };
        await log.line(line);
        if (n % 10 === 0) await log.line({ kind: 'log', level: 'INFO', type: 'file_status', msgid: null, message: `M /srv/data/file-${n}`, time: Date.now() / 1000 });
        await log.maybeFlush();
        heartbeat({ offset: n, started: true, progress: line });
        await cancellableSleep(Math.min(BEAT_MS, Math.max(0, end - Date.now())));
      }
      await log.own('borg create finished with exit code 0 (simulated)');
      await log.flush();
      // The archive is recorded by finalizeBackup as the real one does; its figures go there by the job id.
      simulatedRuns.set(jobId, stats);
      return { rc: 0 };
    },
  };
}

/** Figures of the runs this worker simulated, for its finalize (same process; a lost entry gets fresh figures). */
const simulatedRuns = new Map<string, ReturnType<typeof simulatedStats>>();

/** The storage host's activities a backup calls, simulated: no repository is read or written, no job folder travels. */
export function createSimulatedStorageActivities(deps: SimDeps): Pick<StorageActivities, 'prepareBackup' | 'finalizeBackup' | 'revokeCredential' | 'cleanupJob'> & Pick<ClientFileActivities, 'pushJobFolder' | 'cleanupClient'> {
  const { db } = deps;
  return {
    async pushJobFolder({ jobId }) {
      await recordPhase(deps, jobId, 'push');
      const job = await findJob(db, jobId);
      await cancellableSleep(between(300, 1500));
      if (job?.clientId) await recordClientContact(db, job.clientId, '1.2.4');
      return { borgCmd: 'borg', deployed: false, version: '1.2.4', location: `ssh://simulated/${jobId}` };
    },

    async cleanupClient() {
      await sleep(between(100, 500));
    },

    async prepareBackup({ jobId }) {
      const job = await findJob(db, jobId);
      await cancellableSleep(between(200, 1000));
      return { archiveName: job?.archiveName ?? '', handedObjects: 0 };
    },

    /** Records the archive and returns the job's figures, as proxy/storage/finalize-job.ts does after reading the real manifest. */
    async finalizeBackup({ jobId }) {
      await recordPhase(deps, jobId, 'finalize');
      const job = await findJob(db, jobId);
      if (!job?.archiveName) throw new Error(`job ${jobId} has no archive name`);
      const stats = simulatedRuns.get(jobId) ?? simulatedStats(60);
      simulatedRuns.delete(jobId);
      await insertArchiveOnce(db, {
        repositoryId: job.repositoryId,
        borgId: randomBytes(32).toString('hex'),
        name: job.archiveName,
        clientId: job.clientId,
        jobId,
        time: new Date(),
        originalSize: stats.originalSize,
        compressedSize: stats.compressedSize,
        deduplicatedSize: stats.deduplicatedSize,
        nfiles: stats.nfiles,
      });
      return { stats };
    },

    async revokeCredential({ jobId }) {
      await revokeJobCredentials(db, jobId);
    },

    cleanupJob() {
      return Promise.resolve({ removedObjects: 0 });
    },
  };
}
