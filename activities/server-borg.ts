// borg run on the storage host for a maintenance job: with the real key, as the storage account
// (infra/borg-cli.ts), its --log-json lines recorded as the job's log, heartbeating and
// cancellable, inside the repository service's exclusive section (StorageApi.exclusive).
import { ApplicationFailure, CancelledFailure, Context, heartbeat } from '@temporalio/activity';
import type { Db } from '../db/client.js';
import * as jobsQ from '../db/queries/jobs.js';
import { getRepositorySecrets, repositorySecretContext, type RepositoryRow } from '../db/queries/repositories.js';
import { runBorg, type BorgInvocation } from '../infra/borg-cli.js';
import type { Config } from '../infra/config.js';
import type { EventPublisher } from '../infra/events.js';
import type { MasterKey } from '../infra/secrets.js';
import { serviceBorgDir } from '../infra/storage-layout.js';
import { diskFullMessage, type StorageApi } from '../proxy/storage/api.js';
import { diskFullInLine, LineSplitter, parseBorgLine, type BorgLine } from './borg-output.js';

/** A job's log as rows (and live events): our own lines and borg's --log-json lines. */
export class JobLog {
  private batch: Array<Parameters<typeof jobsQ.insertLogLines>[1][number]> = [];
  private seq = 0;

  private constructor(
    private readonly deps: { db: Db; events?: EventPublisher },
    private readonly jobId: string,
  ) {}

  static async open(deps: { db: Db; events?: EventPublisher }, jobId: string): Promise<JobLog> {
    const l = new JobLog(deps, jobId);
    l.seq = await jobsQ.lastLogSeq(deps.db, jobId);
    return l;
  }

  async own(message: string, level = 'INFO') {
    await this.line({ kind: 'log', level, type: 'borgcube', msgid: null, message, time: null });
  }

  async line(l: BorgLine | null) {
    if (!l || l.kind !== 'log') return;
    const row = jobsQ.storableLogLine({ jobId: this.jobId, seq: ++this.seq, time: l.time ? new Date(l.time * 1000) : new Date(), level: l.level, type: l.type, msgid: l.msgid, message: l.message });
    this.batch.push(row);
    await this.deps.events
      ?.publish(this.jobId, { type: 'log', seq: row.seq, time: row.time.toISOString(), level: row.level, kind: row.type, msgid: row.msgid, message: row.message })
      .catch(() => {});
    if (this.batch.length >= 200) await this.flush();
  }

  async flush() {
    const rows = this.batch;
    this.batch = [];
    this.seq = Math.max(this.seq, await jobsQ.insertLogLines(this.deps.db, rows));
  }
}

/** borg with the real key, as this (storage) account, with the service's own borg folders. */
export async function borgInvocation(deps: { db: Db; config: Config; masterKey: MasterKey }, repo: RepositoryRow, env: Record<string, string> = {}): Promise<BorgInvocation> {
  const s = await getRepositorySecrets(deps.db, repo.id);
  if (!s) throw ApplicationFailure.nonRetryable(`repository ${repo.name} has no key`, 'JobGone');
  const passphrase = deps.masterKey.openText(s.passphraseSealed, repositorySecretContext.passphrase(repo.id));
  const keyText = deps.masterKey.openText(s.keySealed, repositorySecretContext.key(repo.id));
  return { borgPath: deps.config.borg.path, baseDir: serviceBorgDir(deps.config), passphrase, keyFileText: repo.encryption.startsWith('keyfile') ? keyText : undefined, env };
}

/**
 * Runs borg, turning its --log-json stderr into job log lines; cancellable; never throws on exit
 * codes. `diskFull`: what borg said when the repository's file system was full (see failIfDiskFull).
 */
export async function runLoggedBorg(inv: BorgInvocation, args: string[], jobLog: JobLog, onLine?: (l: BorgLine) => void) {
  const splitter = new LineSplitter();
  let pending = Promise.resolve();
  let diskFull: string | undefined;
  const feed = (lines: Array<{ line: string; truncated: boolean }>) => {
    for (const { line, truncated } of lines) {
      const parsed = parseBorgLine(line, truncated);
      if (!parsed) continue;
      diskFull ??= diskFullInLine(parsed);
      onLine?.(parsed);
      pending = pending.then(() => jobLog.line(parsed));
    }
  };
  // The repository service let go of the lock, but a borg of an earlier attempt (this process
  // restarted under it) may still hold it: wait for it rather than fail.
  const [command, ...rest] = args;
  const r = await runBorg(inv, [command!, '--lock-wait', '600', ...rest], { signal: Context.current().cancellationSignal, onStderr: (c) => feed(splitter.push(c)), maxOutput: 64 * 1024 * 1024 });
  feed(splitter.flush());
  await pending;
  await jobLog.flush();
  return { ...r, diskFull };
}

/**
 * A borg run that failed because the repository's disk is full ends the job at once with the same
 * line as a backup's (proxy/storage/job-faults.ts), not after retries into the same wall nor as
 * "exit code 2" or borg's traceback. Nothing is lost: borg did not commit, and the next
 * transaction deletes what it had begun to write.
 */
export async function failIfDiskFull(r: { code: number | null; diskFull?: string }, storageHost: string, jobLog: JobLog): Promise<void> {
  // Only borg's error exit (2): a check that found damage exits 1, and its ERROR lines name files
  // of the archive, whose names a client chose (one may read "[Errno 28]").
  if (r.code !== 2 || r.diskFull === undefined) return;
  const message = diskFullMessage(storageHost, r.diskFull);
  await jobLog.own(message, 'ERROR');
  await jobLog.flush();
  throw ApplicationFailure.nonRetryable(message, 'DiskFull');
}

/** Heartbeats while `fn` runs (waiting for the repository counts): a dead worker is noticed. */
export async function beating<T>(heartbeatMs: number | undefined, fn: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => heartbeat(), heartbeatMs ?? 5000);
  try {
    heartbeat();
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/**
 * The repository to itself for `fn` (StorageApi.exclusive); a cancelled job leaves the queue at
 * once instead of keeping its place until the running backups end.
 */
export async function exclusively<T>(storage: StorageApi, repositoryId: string, fn: () => Promise<T>): Promise<T> {
  const signal = Context.current().cancellationSignal;
  try {
    return await storage.exclusive(repositoryId, fn, signal);
  } catch (err) {
    if (signal.aborted && !(err instanceof CancelledFailure)) throw new CancelledFailure('cancelled while waiting for the repository');
    throw err;
  }
}

export function cancelledOr(r: { code: number | null; signal: NodeJS.Signals | null }, what: string): void {
  if (Context.current().cancellationSignal.aborted) throw new CancelledFailure(`${what} cancelled`);
  // Killed from outside (OOM, shutdown): worth another attempt.
  if (r.code === null || r.code > 128) throw new Error(`${what} was killed (${r.signal ?? r.code})`);
}
