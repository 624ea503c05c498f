// Activities that act on a client over SSH (main task queue): push the job folder, deploy borg,
// run `borg create` detached and follow it, pull the files cache back, clean up.
//
// The job folder on the client is ~/.borgcube/jobs/<job id> (0700). It holds the job key, its
// passphrase, the job's SSH credential, the known_hosts entry of BorgCube's sshd, the prepared
// cache and, while borg runs, its log. No secret ever appears on a command line: borg reads them
// through BORG_KEY_FILE / BORG_PASSCOMMAND / ssh -i, all pointing into the job folder.
import { createHash } from 'node:crypto';
import { closeSync, constants, createReadStream, fchownSync, fstatSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, CancelledFailure, Context, heartbeat } from '@temporalio/activity';
import type { SFTPWrapper } from 'ssh2';
import type { Db } from '../db/client.js';
import { findClientById } from '../db/queries/clients.js';
import * as jobs from '../db/queries/jobs.js';
import { appendJobLog } from '../db/queries/jobs.js';
import type { Client, Job } from '../db/schema.js';
import type { Account } from '../infra/accounts.js';
import type { Config } from '../infra/config.js';
import type { EventPublisher } from '../infra/events.js';
import type { Logger } from '../infra/logger.js';
import { shellCommand, shellQuote } from '../infra/shell-quote.js';
import type { SshConnection } from '../infra/ssh.js';
import { normalizeKey, SshError } from '../infra/ssh.js';
import { SshPool } from '../infra/ssh-pool.js';
import { closeAll, fdPath, openBelow, openEntries, openIn, UnsafePathError } from '../infra/no-follow.js';
import { sshdPaths } from '../infra/sshd.js';
import { connectClient, probeBorgVersion } from '../services/clients.js';
import { LineSplitter, parseBorgLine, type BorgLine } from './borg-output.js';
import { recordPhase } from './jobs.js';
import { MAX_FILES_CACHE, jobClientFilesDir, jobPulledFilesCachePath, jobRepositoryUrl, jobServerDir } from '../infra/storage-layout.js';

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

/** Where the job folder lives on the client, relative to the SSH user's home. */
export const clientJobDir = (jobId: string) => `.borgcube/jobs/${jobId}`;

/** Stored log lines per job; beyond it only warnings and errors are kept. */
const MAX_STORED_LINES = 20_000;

/** What probeClient found: the version of the borg at the client's configured path, if any. */
export interface ClientProbe {
  version: string | null;
}

export interface RunBorgInput extends JobRef {
  /** The borg command on the client (from pushJobFolder). */
  borgCmd: string;
}

interface RunHeartbeat {
  offset: number;
  started: boolean;
  /** Latest progress line: what `borgcube job show` and the console show while borg runs. */
  progress?: BorgLine & { kind: 'progress' };
}

export function createClientActivities(deps: ClientActivityDeps) {
  const { db, config, log } = deps;
  const pool = deps.sshPool ?? new SshPool();
  // The storage account's folder lies in the data dir, which only root controls: paths below
  // it are opened component by component from there (infra/no-follow.ts).
  const storageAnchor = dirname(config.paths.storageDir);

  async function loadJob(jobId: string): Promise<{ job: Job; client: Client }> {
    const job = await jobs.findJob(db, jobId);
    if (!job) throw ApplicationFailure.nonRetryable(`job ${jobId} does not exist`, 'JobGone');
    if (!job.clientId) throw ApplicationFailure.nonRetryable('the client of this job was removed', 'JobGone');
    const client = await findClientById(db, job.clientId);
    if (!client) throw ApplicationFailure.nonRetryable('the client of this job was removed', 'JobGone');
    return { job, client };
  }

  /**
   * Versions found by `borg --version`, by client and borg path, with the identity of the file
   * that answered (device, inode, size, mtime and ctime to the nanosecond, of what the path
   * resolves to). Starting Python for `--version` costs a quarter second of every job; a stat
   * answers whether it can still be the same borg. Package managers write a new file (new inode)
   * when they upgrade. Kept per worker process; a restarted worker asks again.
   */
  const versions = new Map<string, { identity: string; version: string }>();

  async function borgVersion(conn: SshConnection, client: Client, signal?: AbortSignal): Promise<string | null> {
    const key = `${client.id} ${client.borgPath}`;
    const r = await conn.execRaw(`p=$(command -v -- ${shellQuote(client.borgPath)}) && stat -L -c '%d:%i:%s:%y:%z' -- "$p" && printf '%s\n' "$p"`, { timeoutMs: 30_000, maxOutput: 8192, signal });
    const identity = r.code === 0 ? r.stdout.toString('utf8') : undefined;
    const cached = versions.get(key);
    if (identity && cached?.identity === identity) return cached.version;
    const version = await probeBorgVersion(conn, client.borgPath, signal);
    if (identity && version) versions.set(key, { identity, version });
    else versions.delete(key);
    return version;
  }

  /** Connections are only reused to a client whose host key is pinned, with the same target. */
  const poolKey = (c: Client) => (c.hostKey ? `${c.id} ${c.sshUser}@${c.host}:${c.port} ${c.hostKey}` : undefined);

  async function connect(client: Client): Promise<SshConnection> {
    const key = poolKey(client);
    const kept = key ? pool.take(key) : undefined;
    if (kept) return kept;
    try {
      return (await connectClient(deps, client, { signal: Context.current().cancellationSignal })).conn;
    } catch (err) {
      if (err instanceof SshError && err.permanent) {
        throw ApplicationFailure.nonRetryable(err.message, err.code === 'host-key-changed' ? 'HostKeyChanged' : 'AuthFailed');
      }
      throw err;
    }
  }

  async function ensureBorg(conn: SshConnection, client: Client, dir: string, jobId: string, probe: Promise<string | null>): Promise<{ borgCmd: string; deployed: boolean; version: string }> {
    const version = await probe;
    if (version) {
      if (!version.startsWith('1.2.')) throw ApplicationFailure.nonRetryable(`borg ${version} on the client is not 1.2.x; remove it or set --borg-path to a borg 1.2`, 'ClientConfigError');
      return { borgCmd: client.borgPath, deployed: false, version };
    }
    const local = config.borg.deployPath;
    const digest = await sha256File(local);
    const remote = posix.join(dir, 'borg');
    const sftp = await conn.sftp();
    await new Promise<void>((resolve, reject) => sftp.fastPut(local, remote, { ...SFTP_BULK, mode: 0o700, step: () => heartbeat() }, (err) => (err ? reject(err) : resolve())));
    await verifyPushed(conn, new Map([[remote, digest]]));
    const deployedVersion = await probeBorgVersion(conn, remote);
    if (!deployedVersion) throw ApplicationFailure.nonRetryable(`the deployed borg (${local}) does not run on the client`, 'ClientConfigError');
    log.info({ job: jobId, version: deployedVersion }, 'borg deployed to the client');
    await appendJobLog(db, jobId, `no borg at ${client.borgPath} on the client; deployed borg ${deployedVersion} (sha256 ${digest.slice(0, 16)}…) for this job`);
    return { borgCmd: remote, deployed: true, version: deployedVersion };
  }

  /**
   * Copies the client's files cache into the job's server folder, where cleanupJob adopts it for
   * the client's next job if this one succeeded (the client cleanup may run before that is known).
   */
  async function pullFilesCache(conn: SshConnection, job: Job, dir: string): Promise<number> {
    // This runs as root, in a folder the storage account owns: nothing in it is opened by a path
    // that could lead elsewhere through a link it planted (infra/no-follow.ts).
    let serverDir: number;
    try {
      serverDir = openBelow(storageAnchor, jobServerDir(config, job.id), O_RDONLY | O_DIRECTORY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    try {
      const state = readJobState(serverDir);
      if (!state) return 0;
      const sftp = await conn.sftp();
      const remote = posix.join(dir, 'cache', state.fakeRepoId, 'files');
      const st = await sftpStat(sftp, remote);
      if (!st) return 0;
      if (st.size > MAX_FILES_CACHE) {
        log.warn({ job: job.id, size: st.size }, 'files cache from the client is too large; not kept');
        return 0;
      }
      // The repository service (storage account) adopts the file.
      const name = basename(jobPulledFilesCachePath(config, job.id));
      const acct = deps.storageAccount();
      const tmp = `${fdPath(serverDir)}/${name}.tmp`;
      rmSync(tmp, { force: true }); // a link there is removed, not followed
      const fd = openIn(serverDir, `${name}.tmp`, O_WRONLY | O_CREAT | O_EXCL, 0o600);
      try {
        await new Promise<void>((resolve, reject) => sftp.fastGet(remote, fdPath(fd), { ...SFTP_BULK, step: () => heartbeat() }, (err) => (err ? reject(err) : resolve())));
        if (fstatSync(fd).size > MAX_FILES_CACHE) throw new Error('files cache grew while being copied');
        fchownSync(fd, acct.uid, acct.gid);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, `${fdPath(serverDir)}/${name}`);
      return st.size;
    } finally {
      closeSync(serverDir);
    }
  }

  async function withClient<T>(jobId: string, fn: (c: { conn: SshConnection; job: Job; client: Client; home: string; dir: string }) => Promise<T>): Promise<T> {
    const { job, client } = await loadJob(jobId);
    const conn = await connect(client);
    let healthy = false;
    try {
      const sftp = await conn.sftp();
      const home = await sftpRealpath(sftp, '.');
      const r = await fn({ conn, job, client, home, dir: posix.join(home, clientJobDir(jobId)) });
      healthy = true;
      return r;
    } finally {
      const key = poolKey(client);
      if (healthy && key) pool.give(key, conn);
      else conn.close();
    }
  }

  return {
    /**
     * Runs while the server prepares the job: connects (the connection then waits in the pool for
     * pushJobFolder) and asks the client's borg for its version, which costs Python's start-up
     * unless the same file answered before.
     */
    async probeClient({ jobId }: JobRef): Promise<ClientProbe> {
      return withClient(jobId, async ({ conn, client }) => ({ version: await borgVersion(conn, client, Context.current().cancellationSignal) }));
    },

    /**
     * Uploads what prepareBackup wrote for the client into a fresh private job folder, then makes
     * sure there is a borg 1.2 to run: the client's own, or the server's uploaded into the job
     * folder and checked by its SHA-256 there. One SSH connection for both.
     */
    async pushJobFolder({ jobId, probed }: JobRef & { probed?: ClientProbe }): Promise<{ borgCmd: string; deployed: boolean; version: string }> {
      const src = jobClientFilesDir(config, jobId);
      await recordPhase(deps, jobId, 'push');
      return withClient(jobId, async ({ conn, client, dir }) => {
        // `borg --version` starts Python on the client (~0.2 s): done by probeClient while the
        // server prepared, or else here while the folder goes up.
        const probe = probed ? Promise.resolve(probed.version) : borgVersion(conn, client);
        probe.catch(() => {}); // awaited in ensureBorg; an upload failure must not leave it unhandled
        const sftp = await conn.sftp();
        await sftpMkdirPrivate(sftp, posix.dirname(posix.dirname(dir)));
        await sftpMkdirPrivate(sftp, posix.dirname(dir));
        // A previous round may have left a half-written folder: start from nothing.
        if (await sftpExists(sftp, dir)) await conn.exec(['rm', '-rf', '--', dir], { timeoutMs: 60_000 });
        await sftpMkdirPrivate(sftp, dir);
        // Read as root from the storage account's folder: without following links (see pullFilesCache).
        const srcFd = openBelow(storageAnchor, src, O_RDONLY | O_DIRECTORY);
        const sent = await uploadTree(sftp, srcFd, dir, () => heartbeat()).finally(() => closeSync(srcFd));
        const hostKey = normalizeKey(readFileSync(sshdPaths(config.paths.sshdDir).hostPublicKey, 'utf8'));
        const knownHosts = `[${config.ssh.host}]:${config.ssh.port} ${hostKey}\n`;
        await sftpWriteFile(sftp, posix.join(dir, 'known_hosts'), knownHosts, 0o600);
        sent.set(posix.join(dir, 'known_hosts'), createHash('sha256').update(knownHosts).digest('hex'));
        await verifyPushed(conn, sent);
        log.info({ job: jobId, dir }, 'job folder pushed');
        return ensureBorg(conn, client, dir, jobId, probe);
      });
    },

    /**
     * Starts `borg create` detached on the client (or re-attaches to the one already running after
     * a worker restart), follows its JSON log and exit code, heartbeats the latest progress.
     */
    async runBorgCreate(input: RunBorgInput): Promise<{ rc: number }> {
      const ctx = Context.current();
      const prev = (ctx.info.heartbeatDetails as RunHeartbeat | undefined) ?? { offset: 0, started: false };
      await recordPhase(deps, input.jobId, 'run');
      return withClient(input.jobId, async ({ conn, job, client, dir }) => {
        const sftp = await conn.sftp();
        if (!(await sftpExists(sftp, posix.join(dir, 'key')))) {
          throw ApplicationFailure.nonRetryable(`the job folder ${dir} is gone from the client`, 'JobFolderMissing');
        }
        const follower = new LogFollower(deps, input.jobId, await jobs.lastLogSeq(db, input.jobId));
        let offset = prev.offset;
        // A first attempt runs in the folder pushJobFolder has just made, where nothing has run
        // yet: only a retry has to look for a borg (or its exit code) left by an earlier attempt.
        const retry = ctx.info.attempt > 1;
        const running = retry && (await borgRunning(conn, dir));
        if (!running) {
          if (retry && (await sftpExists(sftp, posix.join(dir, 'rc')))) {
            // Finished while nobody watched (worker restart): read the rest below.
          } else {
            await sftpWriteFile(sftp, posix.join(dir, 'run.sh'), runScript({ config, job, client, dir, borgCmd: input.borgCmd }), 0o700);
            // Detached from the SSH session entirely: with any of its descriptors still open, the
            // exec channel (and this activity) would wait for borg to finish.
            const r = await conn.execRaw(`${shellCommand(['setsid', '-f', 'sh', posix.join(dir, 'run.sh')])} </dev/null >/dev/null 2>&1`, { timeoutMs: 60_000 });
            if (r.code !== 0) throw new Error(`starting borg on the client failed: ${r.stderr.toString('utf8').trim().slice(0, 300)}`);
            await follower.own(prev.started ? 'borg create restarted on the client' : 'borg create started on the client');
          }
        } else if (prev.started) {
          await follower.own('worker restarted: following the borg create that is still running on the client');
        }
        const beat = (started: boolean) => heartbeat({ offset, started, progress: follower.progress } satisfies RunHeartbeat);
        beat(true);

        // One exec channel that returns when run.sh ends tells the loop at once that borg is done,
        // so the log itself can be polled gently instead of every 50 ms for the whole backup (to
        // notice the end early), which on a small server takes CPU from borg and the service.
        const waiter = new AbortController();
        const run = { waiter: 'waiting' as 'waiting' | 'ended' | 'failed' };
        const runEnded = waitForRunEnd(conn, dir, waiter.signal).then(
          () => void (run.waiter = 'ended'),
          () => void (run.waiter = 'failed'),
        );
        const splitter = new LineSplitter();
        let lastBeat = 0;
        // Each poll is one SFTP open/read/close (~1 ms for the client). With the waiter, the poll
        // rate only sets how live the log is; without it (it failed), also how late the end is seen.
        const minPoll = Math.min(deps.pollMs ?? 50, 50);
        let pollMs = minPoll;
        let polledAfterEnd = 0;
        // One read buffer for the whole run: a fresh MiB per poll kept the worker's GC busy.
        const scratch = Buffer.allocUnsafe(1024 * 1024);
        try {
          for (;;) {
            if (ctx.cancellationSignal.aborted) {
              await killBorg(conn, dir);
              await follower.own('cancelled: borg create stopped on the client');
              await follower.flush();
              throw new CancelledFailure('backup cancelled');
            }
            const chunk = await sftpReadFrom(sftp, posix.join(dir, 'borg.log'), offset, scratch);
            if (chunk.length) {
              offset += chunk.length;
              for (const l of splitter.push(chunk)) await follower.line(parseBorgLine(l.line, l.truncated));
            }
            const rcText = chunk.length === 0 ? await sftpReadSmall(sftp, posix.join(dir, 'rc')) : undefined;
            if (rcText !== undefined) {
              for (const l of splitter.flush()) await follower.line(parseBorgLine(l.line, l.truncated));
              await follower.flush();
              const rc = Number(rcText.trim());
              beat(false);
              if (rc === 0 || rc === 1) {
                await follower.own(rc === 0 ? 'borg create finished' : 'borg create finished with warnings (see above)');
                return { rc };
              }
              // The next attempt starts borg again; its log continues after this one.
              await conn.exec(['rm', '-f', '--', posix.join(dir, 'rc'), posix.join(dir, 'borg.pid')], { timeoutMs: 30_000 });
              const msg = follower.lastError ?? `borg create exited with ${Number.isNaN(rc) ? rcText.trim().slice(0, 20) : rc}`;
              if (follower.lastErrorTransient || Number.isNaN(rc) || rc > 128) throw new Error(msg);
              throw ApplicationFailure.nonRetryable(msg, 'BorgFailed');
            }
            const now = Date.now();
            if (now - lastBeat > 2000 || chunk.length) {
              beat(true);
              lastBeat = now;
            }
            await follower.maybeFlush();
            // The wait before the next read:
            //  * run.sh is gone (the waiter returned): only the rest of the log and the rc file
            //    are left, read quickly; should rc never appear (run.sh killed), poll as without it;
            //  * the waiter runs: borg prints progress five times a second, read in batches and
            //    slower when nothing comes; the waiter cuts the wait short when run.sh ends;
            //  * no waiter (it failed): quick to notice the end of a short backup, easy on the
            //    client during a long one.
            if (run.waiter === 'ended') {
              if (++polledAfterEnd > 40) run.waiter = 'failed';
              pollMs = minPoll;
            } else if (run.waiter === 'waiting') pollMs = chunk.length ? 4 * minPoll : Math.min(pollMs * 1.5, deps.pollMs ?? 1000);
            else pollMs = chunk.length ? minPoll : Math.min(pollMs * 1.5, deps.pollMs ?? 200);
            if (chunk.length && run.waiter !== 'waiting') continue;
            // A sleep that loses the race to the waiter just runs out later, unawaited.
            await Promise.race([sleep(pollMs, undefined, { signal: ctx.cancellationSignal }).catch(() => {}), ...(run.waiter === 'waiting' ? [runEnded] : [])]);
          }
        } finally {
          waiter.abort();
        }
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
          try {
            await pullFilesCache(conn, job, dir);
          } catch (err) {
            log.warn({ job: jobId, err: (err as Error).message }, 'the files cache could not be kept');
          }
        }
        // Stop borg if it still runs, then remove the folder: one exec (each costs a session on
        // the client). Leave no empty BorgCube folders behind either (rmdir fails harmlessly
        // while other jobs run).
        const rm = `(\n${killBorgScript(dir)}\n); ${shellCommand(['rm', '-rf', '--', dir])} || exit $?; ${shellCommand(['rmdir', '--', posix.dirname(dir), posix.dirname(posix.dirname(dir))])} 2>/dev/null; exit 0`;
        const r = await conn.execRaw(rm, { timeoutMs: 120_000 });
        if (r.code !== 0) throw new Error(`removing ${dir} on the client failed: ${r.stderr.toString('utf8').trim().slice(0, 300)}`);
        if (await sftpExists(await conn.sftp(), dir)) throw new Error(`${dir} is still on the client`);
      });
    },
  };
}

export type ClientActivities = ReturnType<typeof createClientActivities>;

// ---------------------------------------------------------------------------------------------

/**
 * Transfers of the cache files (MiBs) and the deployed borg: ssh2's default of 64 requests of
 * 32 KiB in flight took 30-40 ms for 2.2 MB on a fresh connection here, 8 of 128 KiB about 6 ms
 * (ssh2 still splits them to what the server's limits@openssh.com allows).
 */
const SFTP_BULK = { chunkSize: 128 * 1024, concurrency: 8 } as const;
const { O_RDONLY, O_DIRECTORY, O_WRONLY, O_CREAT, O_EXCL } = constants;

/** The job's state.json in its open server folder (no links followed), or undefined when there is none. */
function readJobState(serverDir: number): { fakeRepoId: string } | undefined {
  let fd: number;
  try {
    fd = openIn(serverDir, 'state.json', O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    if (!fstatSync(fd).isFile()) throw new UnsafePathError('state.json is not a file');
    return JSON.parse(readFileSync(fd, 'utf8')) as { fakeRepoId: string };
  } finally {
    closeSync(fd);
  }
}

/** Messages of borg errors caused by the connection, not by the backup itself: worth a retry. */
const transientError = /Connection closed|connection closed|ConnectionClosed|Broken pipe|timed out|LockTimeout|Connection reset|Remote: Borg [\d.]+: Got connection close|RemoteRepository|UnexpectedRPCDataFormatFromServer|Failed to create\/acquire the lock/;

/** Turns parsed borg lines into PostgreSQL rows (batched), Redis events and heartbeats. */
class LogFollower {
  private batch: Array<Parameters<typeof jobs.insertLogLines>[1][number]> = [];
  private lastFlush = Date.now();
  private stored = 0;
  private progressN = 0;
  private lastProgressPublish = 0;
  lastError: string | undefined;
  lastErrorTransient = false;
  progress: (BorgLine & { kind: 'progress' }) | undefined;

  constructor(
    private readonly deps: ClientActivityDeps,
    private readonly jobId: string,
    private seq: number,
  ) {}

  /**
   * BorgCube's own lines (started, finished, cancelled) are few and mark where the job is: stored
   * before they are published, so that a viewer that subscribes late still finds them.
   */
  async own(message: string, level = 'INFO') {
    await this.line({ kind: 'log', level, type: 'borgcube', msgid: null, message, time: null }, true);
  }

  async line(l: BorgLine | null, storeFirst = false) {
    if (!l) return;
    if (l.kind === 'progress') {
      const now = Date.now();
      // Borg prints at most 5 lines a second; publish them all, but never faster than 10/s.
      if (now - this.lastProgressPublish >= 100) {
        this.lastProgressPublish = now;
        await this.deps.events.publish(this.jobId, { type: 'progress', ...l, n: ++this.progressN }).catch(() => {});
      }
      this.progress = l;
      return;
    }
    if (l.kind === 'progress-finished') return;
    if (l.level === 'ERROR' || l.level === 'CRITICAL') {
      this.lastError = l.message;
      this.lastErrorTransient = transientError.test(l.message) || (l.msgid !== null && transientError.test(l.msgid));
    }
    if (this.stored >= MAX_STORED_LINES && !['WARNING', 'ERROR', 'CRITICAL'].includes(l.level)) return;
    this.stored++;
    const row = {
      jobId: this.jobId,
      seq: ++this.seq,
      time: l.time ? new Date(l.time * 1000) : new Date(),
      level: l.level,
      type: l.type,
      msgid: l.msgid,
      message: l.message,
    };
    this.batch.push(row);
    if (storeFirst) await this.flush();
    await this.deps.events
      .publish(this.jobId, { type: 'log', seq: row.seq, time: row.time.toISOString(), level: row.level, kind: row.type, msgid: row.msgid, message: row.message })
      .catch(() => {});
    if (this.batch.length >= 200) await this.flush();
  }

  async maybeFlush() {
    if (this.batch.length && Date.now() - this.lastFlush > 500) await this.flush();
  }

  async flush() {
    const rows = this.batch;
    this.batch = [];
    this.lastFlush = Date.now();
    await jobs.insertLogLines(this.deps.db, rows);
  }
}

/** The script that runs borg on the client, detached from the SSH session (DESIGN.md §3 step 5). */
export function runScript(p: { config: Config; job: Job; client: Client; dir: string; borgCmd: string }): string {
  const { config, job, client, dir } = p;
  const q = shellQuote;
  const rsh = shellCommand([
    'ssh', '-F', '/dev/null',
    '-i', posix.join(dir, 'id'),
    '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
    '-o', `UserKnownHostsFile=${posix.join(dir, 'known_hosts')}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR',
    '-o', 'ServerAliveInterval=15', '-o', 'ServerAliveCountMax=4',
  ]);
  const location = `${jobRepositoryUrl(config, job.id)}::${job.archiveName}`;
  const args = [p.borgCmd, 'create', '--log-json', '--progress', '--checkpoint-interval', '300', '--compression', client.compression, ...client.excludes.flatMap((e) => ['--exclude', e]), location, ...client.paths];
  return [
    '#!/bin/sh',
    `# BorgCube job ${job.id}: written by the server, runs borg create detached from the SSH session.`,
    'umask 077',
    `cd ${q(dir)} || exit 97`,
    `export BORG_BASE_DIR=${q(posix.join(dir, 'home'))}`,
    `export BORG_CACHE_DIR=${q(posix.join(dir, 'cache'))}`,
    `export BORG_KEY_FILE=${q(posix.join(dir, 'key'))}`,
    `export BORG_PASSCOMMAND=${q(shellCommand(['cat', posix.join(dir, 'passphrase')]))}`,
    // OpenSSH prefers chacha20-poly1305, which is the faster choice only without AES
    // instructions: with them, AES-GCM cost ssh and sshd together 0.7 instead of 1.2 CPU-s for
    // 400 MB here (each side of a backup, and the server serves every client). Both names are in
    // OpenSSH since 6.5 (2014); `^` to reorder the default list needs 8.2, too new for some hosts.
    'if grep -qw aes /proc/cpuinfo 2> /dev/null; then ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com; else ciphers=chacha20-poly1305@openssh.com,aes128-gcm@openssh.com; fi',
    `export BORG_RSH=${q(rsh)}" -o Ciphers=$ciphers"`,
    'export BORG_RELOCATED_REPO_ACCESS_IS_OK=no BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no BORG_EXIT_CODES=legacy',
    'export LANG=C.UTF-8 LC_ALL=C.UTF-8',
    'unset BORG_PASSPHRASE BORG_PASSPHRASE_FD BORG_REPO BORG_NEW_PASSPHRASE',
    // Held until this script exits, so the server's waiter learns the end at once (flock is in
    // util-linux and busybox; without it the waiter polls). Taken before run.pid is written, which
    // the waiter waits for. borg does not inherit it: only this script's exit releases it.
    'exec 9>> run.lock',
    'command -v flock > /dev/null 2>&1 && flock -x 9',
    'echo $$ > run.pid',
    `${shellCommand(args)} >> borg.out 2>> borg.log < /dev/null 9>&- &`,
    'echo $! > borg.pid',
    'wait $!',
    'echo $? > rc.tmp && mv rc.tmp rc',
    '',
  ].join('\n');
}

async function borgRunning(conn: SshConnection, dir: string): Promise<boolean> {
  const pidFile = posix.join(dir, 'borg.pid');
  // The pid must still be a process whose working directory is this job folder (pids are reused).
  const script = `p=$(cat ${shellQuote(pidFile)} 2>/dev/null) || exit 1; [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(readlink /proc/$p/cwd)" = ${shellQuote(dir)} ]`;
  const r = await conn.execRaw(script, { timeoutMs: 30_000 });
  return r.code === 0;
}

/**
 * Returns when run.sh (started or re-attached to just before) has ended, i.e. borg exited and its
 * rc is written; at once if it is not running. It waits on run.sh's lock when the client has
 * flock, which the kernel releases the moment run.sh exits; then, or without flock, a builtin read
 * of /proc every 0.2 s until run.sh is gone (plain sh, works with busybox). `tail --pid` would
 * wait for run.sh to be reaped, and a client's init may reap its orphans late.
 */
async function waitForRunEnd(conn: SshConnection, dir: string, signal: AbortSignal): Promise<void> {
  const d = shellQuote(dir);
  const script = [
    `cd ${d} || exit 0`,
    // run.sh writes its pid first thing; give a just-started one a moment.
    'i=0; while [ ! -s run.pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
    'rp=$(cat run.pid 2>/dev/null); [ -n "$rp" ] || exit 0',
    // The pid must still be this job's run.sh (pids are reused).
    `[ "$(readlink /proc/$rp/cwd 2>/dev/null)" = ${d} ] || exit 0`,
    // Blocks until run.sh exits (it holds run.lock); the loop below then ends at once.
    'if [ -e run.lock ] && command -v flock > /dev/null 2>&1; then flock -s run.lock true 2>/dev/null; fi',
    // Until it is gone or a zombie (state Z/X after the command name).
    'while read -r st 2>/dev/null < "/proc/$rp/stat"; do case "$st" in *") Z "*|*") X "*) break ;; esac; sleep 0.2; done',
  ].join('\n');
  const r = await conn.execRaw(script, { signal, maxOutput: 4096 });
  if (r.code !== 0) throw new Error(`waiting for borg on the client failed (${r.code ?? r.signal})`);
}

/** SIGTERM to borg's process group (run.sh is the session leader), SIGKILL if it lingers. */
async function killBorg(conn: SshConnection, dir: string): Promise<void> {
  await conn.execRaw(killBorgScript(dir), { timeoutMs: 60_000 });
}

/** killBorg's shell script; it ends with `exit`, so another script runs it in a subshell. */
function killBorgScript(dir: string): string {
  const runPid = posix.join(dir, 'run.pid');
  const borgPid = posix.join(dir, 'borg.pid');
  return [
    `rp=$(cat ${shellQuote(runPid)} 2>/dev/null); bp=$(cat ${shellQuote(borgPid)} 2>/dev/null)`,
    `alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(readlink /proc/$1/cwd)" = ${shellQuote(dir)} ]; }`,
    'alive "$bp" || alive "$rp" || exit 0',
    'kill -TERM "$bp" 2>/dev/null; [ -n "$rp" ] && kill -TERM -- "-$rp" 2>/dev/null',
    'i=0; while alive "$bp" && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done',
    'alive "$bp" && kill -KILL "$bp" 2>/dev/null; [ -n "$rp" ] && kill -KILL -- "-$rp" 2>/dev/null; exit 0',
  ].join('\n');
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

// ---- SFTP helpers (paths are absolute on the client) ----------------------------------------

function sftpRealpath(sftp: SFTPWrapper, p: string): Promise<string> {
  return new Promise((resolve, reject) => sftp.realpath(p, (err, abs) => (err ? reject(err) : resolve(abs))));
}

function sftpStat(sftp: SFTPWrapper, p: string): Promise<{ size: number; isDir: boolean; isLink: boolean } | undefined> {
  return new Promise((resolve, reject) =>
    sftp.lstat(p, (err, st) => {
      if (err) return (err as { code?: number }).code === 2 ? resolve(undefined) : reject(err);
      resolve({ size: st.size, isDir: st.isDirectory(), isLink: st.isSymbolicLink() });
    }),
  );
}

async function sftpExists(sftp: SFTPWrapper, p: string): Promise<boolean> {
  return (await sftpStat(sftp, p)) !== undefined;
}

/** mkdir 0700, or check that what is there is a real folder (not a symlink planted elsewhere). */
async function sftpMkdirPrivate(sftp: SFTPWrapper, p: string): Promise<void> {
  const st = await sftpStat(sftp, p);
  if (st) {
    if (!st.isDir || st.isLink) throw ApplicationFailure.nonRetryable(`${p} on the client is not a folder`, 'ClientConfigError');
    await new Promise<void>((resolve, reject) => sftp.chmod(p, 0o700, (err) => (err ? reject(err) : resolve())));
    return;
  }
  await new Promise<void>((resolve, reject) => sftp.mkdir(p, { mode: 0o700 }, (err) => (err ? reject(err) : resolve())));
}

function sftpWriteFile(sftp: SFTPWrapper, p: string, data: string | Buffer, mode: number): Promise<void> {
  return new Promise((resolve, reject) => sftp.writeFile(p, data, { mode }, (err) => (err ? reject(err) : resolve())));
}

/**
 * Copies an open local folder (infra/no-follow.ts: links, FIFOs and the like are refused) into a
 * remote one; returns the SHA-256 of every file sent, by remote path. Small files (all but the
 * prepared cache's indexes) go in one SFTP write each.
 */
async function uploadTree(sftp: SFTPWrapper, dirFd: number, remoteDir: string, onProgress: () => void, sent = new Map<string, string>()): Promise<Map<string, string>> {
  // The entries of a folder go up side by side: each file is several SFTP round trips (open,
  // write, close), and one after another each file waited for all of the previous one's.
  const uploads: Array<Promise<unknown>> = [];
  const entries = openEntries(dirFd);
  try {
    for (const e of entries) {
      const r = posix.join(remoteDir, e.name);
      if (e.kind === 'dir') {
        uploads.push(sftpMkdirPrivate(sftp, r).then(() => uploadTree(sftp, e.fd, r, onProgress, sent)));
      } else if (e.size <= 1024 * 1024) {
        const data = readFileSync(e.fd);
        sent.set(r, createHash('sha256').update(data).digest('hex'));
        uploads.push(sftpWriteFile(sftp, r, data, 0o600));
      } else {
        // Hashed while it goes up (the file is the server's, written by prepareBackup, unchanged
        // since): afterwards, hashing took longer than the upload itself.
        const hashed = sha256File(fdPath(e.fd)).then((digest) => void sent.set(r, digest));
        const put = new Promise<void>((resolve, reject) => sftp.fastPut(fdPath(e.fd), r, { ...SFTP_BULK, mode: 0o600, step: onProgress }, (err) => (err ? reject(err) : resolve())));
        uploads.push(hashed, put);
      }
    }
  // Every upload has ended before this returns, failed or not: none is left writing, and no
  // failure is left unhandled.
    const failed = (await Promise.allSettled(uploads)).find((f) => f.status === 'rejected');
    if (failed) throw failed.reason;
    return sent;
  } finally {
    closeAll(entries.map((e) => e.fd));
  }
}

/**
 * Every pushed file must be on the client exactly as sent: borg given a damaged key or
 * credential fails only later, in every retry of the run, with a misleading message.
 */
async function verifyPushed(conn: SshConnection, sent: Map<string, string>): Promise<void> {
  if (!sent.size) return;
  const r = await conn.exec(['sha256sum', '--', ...sent.keys()], { timeoutMs: 120_000 });
  const got = new Map<string, string>();
  for (const line of r.stdout.toString('utf8').split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) got.set(m[2]!, m[1]!);
  }
  for (const [path, digest] of sent) {
    if (got.get(path) !== digest) throw new Error(`${posix.basename(path)} arrived damaged in the job folder on the client (SHA-256 ${got.get(path)?.slice(0, 16) ?? 'unreadable'}…, sent ${digest.slice(0, 16)}…)`);
  }
}

/**
 * Up to `buf.length` bytes of a file from `offset`, read into `buf` and returned as a copy of
 * what was read (empty when there is nothing new or no file yet).
 */
function sftpReadFrom(sftp: SFTPWrapper, p: string, offset: number, buf: Buffer): Promise<Buffer> {
  const max = buf.length;
  return new Promise((resolve, reject) => {
    sftp.open(p, 'r', (err, handle) => {
      if (err) return (err as { code?: number }).code === 2 ? resolve(Buffer.alloc(0)) : reject(err);
      let got = 0;
      const readMore = () => {
        // ssh2 reads at most ~32 KiB per request; loop until EOF or `max`.
        sftp.read(handle, buf, got, Math.min(32768, max - got), offset + got, (e, n) => {
          if (e || n === 0 || got + n >= max) {
            if (!e && n > 0) got += n;
            sftp.close(handle, () => {});
            if (e && (e as { code?: number }).code !== 1) return reject(e);
            return resolve(Buffer.from(buf.subarray(0, got)));
          }
          got += n;
          readMore();
        });
      };
      readMore();
    });
  });
}

async function sftpReadSmall(sftp: SFTPWrapper, p: string): Promise<string | undefined> {
  if (!(await sftpExists(sftp, p))) return undefined;
  return (await sftpReadFrom(sftp, p, 0, Buffer.allocUnsafe(4096))).toString('utf8');
}
