// Runs a borg subcommand detached on the client and follows it to its end: start it (or re-attach
// to the one an earlier attempt started, after a worker restart), follow its JSON log, heartbeat
// the latest progress, stop it when the activity is cancelled, and turn its exit code into the
// activity's result. What differs between subcommands is a DetachedBorg.
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, CancelledFailure, Context, heartbeat } from '@temporalio/activity';
import type { SFTPWrapper } from 'ssh2';
import { sftpExists, sftpReadFrom, sftpReadSmall } from '../../infra/sftp.js';
import type { SshConnection } from '../../infra/ssh.js';
import { LineSplitter, type BorgLine } from '../borg-output.js';
import { JobLog, type JobLogDeps, type LogLimits } from './job-log.js';
import type { ReadJobFile, ToolOutcome } from './dump-streams.js';
import { borgRunning, clearRunExit, runScript, startRunScript, stopRun, waitForRunEnd, type ScriptParts } from './run-script.js';

/** A borg subcommand as runDetached runs it. */
export interface DetachedBorg {
  /** How the job's log names it, e.g. "borg create". */
  name: string;
  /** What cancelling it stops, e.g. "backup". */
  jobName: string;
  /** borg's argv, the borg command first. */
  argv: string[];
  /** Where borg runs; the job folder when not given. */
  cwd?: string;
  /** Shell lines run.sh runs around borg (database dumps and loads). */
  parts?: ScriptParts;
  /** The job key is `authenticated` (a restore's; see run-script.ts). */
  authenticatedKey?: boolean;
  /**
   * What the parts' tools left in the job folder once borg exited: lines for the log, and a
   * failure that decides the run's outcome whatever borg's exit code (dump-streams.ts).
   */
  toolOutcome?(read: ReadJobFile, rc: number): Promise<ToolOutcome>;
  /**
   * Counts what the run has made so far, for live progress where borg itself lists nothing (a
   * restore into an empty folder); undefined when it could not tell.
   */
  countSoFar?(conn: SshConnection, signal: AbortSignal): Promise<number | undefined>;
  /** One line of borg's stderr (its --log-json output), or null for nothing to keep. */
  parseLine(line: string, truncated: boolean): BorgLine | null;
  /** The log line for an exit code that ends the run well; undefined when it failed. */
  succeeded(rc: number): string | undefined;
  /**
   * The one line a failed run ends with, without a retry, when borg found the disk it wrote to
   * full (ENOSPC); the generic failure (borg's last warning or error) otherwise.
   */
  diskFull?: string;
  /** The job's log bounds (the client's limits); the defaults when not given. */
  logLimits?: LogLimits;
}

export interface DetachedRunDeps extends JobLogDeps {
  /** Poll interval of the log follower (tests shorten it). */
  pollMs?: number;
}

/** Where a run stood at the last heartbeat, so that a retry continues from there. */
interface RunHeartbeat {
  offset: number;
  started: boolean;
  /** Latest progress line: what `borgcube job show` and the console show while borg runs. */
  progress?: BorgLine & { kind: 'progress' };
  /** Paths listed (`--list`) up to `offset` by the borg now running. */
  listed?: number;
  /** Entries counted in the target by countSoFar, and the wait before the next count. */
  counted?: number;
  countGapMs?: number;
  /** borg reported ENOSPC before `offset`. */
  diskFull?: boolean;
}

/** How a run ended well: borg's exit code, and what it listed and last reported. */
export interface DetachedResult {
  rc: number;
  /** Paths borg listed (`--list`); 0 without it. */
  listed: number;
  progress?: BorgLine & { kind: 'progress' };
  /** Heartbeats where the run stands, for work after it inside the same activity. */
  keepAlive: () => void;
}

interface Run {
  deps: DetachedRunDeps;
  borg: DetachedBorg;
  conn: SshConnection;
  sftp: SFTPWrapper;
  dir: string;
  log: JobLog;
  offset: number;
  /** The wait between two countSoFar calls: 20 times the last one's own time, at least COUNT_EVERY_MS. */
  countGapMs: number;
  beat(started: boolean): void;
}

/** The least time between two countSoFar calls. */
const COUNT_EVERY_MS = 5000;

/** Runs `borg` in the job folder `dir` of job `jobId` on the client, to its end; returns its exit code when it succeeded. */
export async function runDetached(deps: DetachedRunDeps, on: { conn: SshConnection; jobId: string; dir: string }, borg: DetachedBorg): Promise<DetachedResult> {
  const ctx = Context.current();
  const prev = (ctx.info.heartbeatDetails as RunHeartbeat | undefined) ?? { offset: 0, started: false };
  const { conn, jobId, dir } = on;
  const sftp = await conn.sftp();
  if (!(await sftpExists(sftp, posix.join(dir, 'key')))) {
    throw ApplicationFailure.nonRetryable(`the job folder ${dir} is gone from the client`, 'JobFolderMissing');
  }
  const log = await JobLog.resume(deps, jobId, borg.logLimits);
  log.listed = prev.listed ?? 0;
  log.counted = prev.counted ?? 0;
  log.progress = prev.progress;
  log.diskFull = prev.diskFull ?? false;
  const run: Run = { deps, borg, conn, sftp, dir, log, offset: prev.offset, countGapMs: prev.countGapMs ?? COUNT_EVERY_MS, beat: () => {} };
  run.beat = (started) =>
    heartbeat({ offset: run.offset, started, progress: log.progress, listed: log.listed, counted: log.counted || undefined, countGapMs: run.countGapMs, diskFull: log.diskFull || undefined } satisfies RunHeartbeat);
  await startOrReattach(run, jobId, ctx.info.attempt > 1, prev.started);
  run.beat(true);
  return follow(run, ctx.cancellationSignal);
}

async function startOrReattach(run: Run, jobId: string, retry: boolean, startedBefore: boolean): Promise<void> {
  const { conn, sftp, dir, borg, log } = run;
  // A first attempt runs in the folder pushJobFolder has just made, where nothing has run yet:
  // only a retry has to look for a borg (or its exit code) left by an earlier attempt.
  if (retry && (await borgRunning(conn, dir))) {
    if (startedBefore) await log.own(`worker restarted: following the ${borg.name} that is still running on the client`);
    return;
  }
  // Finished while nobody watched (worker restart): follow() reads the rest.
  if (retry && (await sftpExists(sftp, posix.join(dir, 'rc')))) return;
  // A borg started anew lists and reports from its beginning.
  log.listed = 0;
  log.counted = 0;
  run.countGapMs = COUNT_EVERY_MS;
  log.progress = undefined;
  log.diskFull = false;
  await startRunScript(conn, sftp, dir, runScript({ jobId, dir, argv: borg.argv, cwd: borg.cwd, parts: borg.parts, authenticatedKey: borg.authenticatedKey }));
  await log.own(startedBefore ? `${borg.name} restarted on the client` : `${borg.name} started on the client`);
}

/** Follows the log until borg's exit code appears; returns it or throws the failure it means. */
async function follow(run: Run, cancel: AbortSignal): Promise<DetachedResult> {
  const { deps, borg, conn, sftp, dir, log } = run;
  // One exec channel that returns when run.sh ends tells the loop at once that borg is done, so
  // the log itself can be polled gently instead of every 50 ms for the whole run (to notice the
  // end early), which on a small server takes CPU from borg and the service.
  const waiter = new AbortController();
  const state = { waiter: 'waiting' as 'waiting' | 'ended' | 'failed' };
  const runEnded = waitForRunEnd(conn, dir, waiter.signal).then(
    () => void (state.waiter = 'ended'),
    () => void (state.waiter = 'failed'),
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
  const count = new LiveCount(run, cancel);
  try {
    for (;;) {
      if (cancel.aborted) {
        // Only a cancellation the workflow asked for stops borg. One the server or the worker
        // raised (this attempt timed out — e.g. its heartbeats fell into a Temporal restart —, its
        // run is gone, the worker shuts down) leaves it to the next attempt, which re-attaches:
        // stopping it here killed the borg that attempt already followed, and it then waited
        // forever for an exit code run.sh never wrote.
        if (!stopsRun(cancel.reason)) throw new CancelledFailure(`${borg.jobName}: this attempt ended (${cancelReason(cancel.reason)}); borg is left to the next`);
        await stopRun(conn, dir);
        await log.own(`cancelled: ${borg.name} stopped on the client`);
        await log.flush();
        throw new CancelledFailure(`${borg.jobName} cancelled`);
      }
      const chunk = await sftpReadFrom(sftp, posix.join(dir, 'borg.log'), run.offset, scratch);
      if (chunk.length) {
        run.offset += chunk.length;
        for (const l of splitter.push(chunk)) await log.line(borg.parseLine(l.line, l.truncated));
      }
      const rcText = chunk.length === 0 ? await sftpReadSmall(sftp, posix.join(dir, 'rc')) : undefined;
      if (rcText !== undefined) {
        // borg is done: a walk still in flight would only compete with the check that follows.
        count.stop();
        for (const l of splitter.flush()) await log.line(borg.parseLine(l.line, l.truncated));
        return await finish(run, rcText);
      }
      if (state.waiter === 'waiting') count.maybeStart();
      const now = Date.now();
      if (now - lastBeat > 2000 || chunk.length) {
        run.beat(true);
        lastBeat = now;
      }
      await log.maybeFlush();
      // The wait before the next read:
      //  * run.sh is gone (the waiter returned): only the rest of the log and the rc file are
      //    left, read quickly; should rc never appear (run.sh killed), poll as without it;
      //  * the waiter runs: borg prints progress five times a second, read in batches and
      //    slower when nothing comes; the waiter cuts the wait short when run.sh ends;
      //  * no waiter (it failed): quick to notice the end of a short run, easy on the client
      //    during a long one.
      if (state.waiter === 'ended') {
        if (++polledAfterEnd > 40) state.waiter = 'failed';
        pollMs = minPoll;
      } else if (state.waiter === 'waiting') pollMs = chunk.length ? 4 * minPoll : Math.min(pollMs * 1.5, deps.pollMs ?? 1000);
      else pollMs = chunk.length ? minPoll : Math.min(pollMs * 1.5, deps.pollMs ?? 200);
      if (chunk.length && state.waiter !== 'waiting') continue;
      // A sleep that loses the race to the waiter just runs out later, unawaited.
      await Promise.race([sleep(pollMs, undefined, { signal: cancel }).catch(() => {}), ...(state.waiter === 'waiting' ? [runEnded] : [])]);
    }
  } finally {
    waiter.abort();
    count.stop();
  }
}

/**
 * The run's DetachedBorg.countSoFar, when it has one. Counting walks what was made so far on the
 * client's disk, so it waits at least 20 times as long as it took: at most ~5% of a client core,
 * whatever the size of the restore. It runs beside the follow loop, one at a time: a slow walk
 * must not hold back the log, the heartbeats or noticing borg's end.
 */
class LiveCount {
  private next: number;
  private running = false;
  private readonly stopped = new AbortController();

  constructor(
    private readonly run: Run,
    private readonly cancel: AbortSignal,
  ) {
    this.next = Date.now() + run.countGapMs;
  }

  maybeStart(): void {
    const { borg, conn, log } = this.run;
    if (!borg.countSoFar || this.running || Date.now() < this.next) return;
    this.running = true;
    const began = Date.now();
    void borg
      .countSoFar(conn, AbortSignal.any([this.cancel, this.stopped.signal]))
      .then(
        (n) => void (n !== undefined && (log.counted = Math.max(log.counted, n))),
        () => {},
      )
      .finally(() => {
        if (this.stopped.signal.aborted) return;
        this.run.countGapMs = Math.max(COUNT_EVERY_MS, 20 * (Date.now() - began));
        this.next = Date.now() + this.run.countGapMs;
        this.running = false;
      });
  }

  stop(): void {
    this.stopped.abort();
    // Nothing starts after this: the loop is ending.
    this.next = Infinity;
  }
}

/** The SDK's cancellation reason ('CANCELLED', 'TIMED_OUT', 'NOT_FOUND', 'WORKER_SHUTDOWN', …). */
function cancelReason(reason: unknown): string {
  return reason instanceof CancelledFailure ? reason.message : String(reason);
}

/** Whether a cancellation of the follow loop must stop borg on the client: only one the workflow requested. */
export function stopsRun(reason: unknown): boolean {
  // RESET starts the attempts again at 1, which would start a second borg beside this one.
  return ['CANCELLED', 'RESET'].includes(cancelReason(reason));
}

/** Borg's exit code, read from `rc`: the result, or the failure (retryable when it may pass). */
async function finish(run: Run, rcText: string): Promise<DetachedResult> {
  const { borg, conn, dir, log } = run;
  await log.flush();
  const rc = Number(rcText.trim());
  run.beat(false);
  const tools = await borg.toolOutcome?.((name, max) => readJobFile(run, name, max), rc);
  for (const l of tools?.lines ?? []) await log.own(l.message, l.level);
  if (tools?.failure) {
    await log.own(tools.failure, 'ERROR');
    await log.flush();
    await clearRunExit(conn, dir);
    throw ApplicationFailure.nonRetryable(tools.failure, 'DumpFailed');
  }
  const done = borg.succeeded(rc);
  if (done !== undefined) {
    await log.own(done);
    return { rc, listed: log.listed, progress: log.progress, keepAlive: () => run.beat(false) };
  }
  // The next attempt starts borg again; its log continues after this one.
  await clearRunExit(conn, dir);
  if (log.diskFull && borg.diskFull) {
    await log.own(borg.diskFull, 'ERROR');
    await log.flush();
    throw ApplicationFailure.nonRetryable(borg.diskFull, 'DiskFull');
  }
  const msg = log.lastError ?? (rc === 1 && log.lastWarning ? `${borg.name} finished with warnings: ${log.lastWarning}` : `${borg.name} exited with ${Number.isNaN(rc) ? rcText.trim().slice(0, 20) : rc}`);
  if (log.lastErrorTransient || Number.isNaN(rc) || rc > 128) throw new Error(msg);
  throw ApplicationFailure.nonRetryable(msg, 'BorgFailed');
}

/** The first `max` bytes of a file in the job folder, undefined when it is not there. */
async function readJobFile(run: Run, name: string, max: number): Promise<string | undefined> {
  const p = posix.join(run.dir, name);
  if (!(await sftpExists(run.sftp, p))) return undefined;
  return (await sftpReadFrom(run.sftp, p, 0, Buffer.allocUnsafe(max))).toString('utf8');
}
