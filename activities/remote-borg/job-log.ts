// Follows a detached borg's JSON log into the job's log: PostgreSQL rows (batched), Redis events
// for viewers, and the latest progress for the activity's heartbeat.
import type { Db } from '../../db/client.js';
import * as jobs from '../../db/queries/jobs.js';
import { JOB_LIMIT_DEFAULTS, type JobLimits } from '../../db/schema.js';
import type { EventPublisher } from '../../infra/events.js';
import { diskFullInLine, type BorgLine } from '../borg-output.js';

/** Stored log lines per job; beyond it only warnings and errors are kept. */
const MAX_STORED_LINES = 20_000;
/** Paths `borg extract --list` restored that are stored as log lines; the rest are only counted. */
export const MAX_LISTED_LINES = 500;

/** Messages of borg errors caused by the connection, not by the job itself: worth a retry. */
const transientError = /Connection closed|connection closed|ConnectionClosed|Broken pipe|timed out|LockTimeout|Connection reset|Remote: Borg [\d.]+: Got connection close|RemoteRepository|UnexpectedRPCDataFormatFromServer|Failed to create\/acquire the lock/;

export interface JobLogDeps {
  db: Db;
  events: EventPublisher;
}

/** The bounds a job's log keeps to (the client's limits, db/schema/clients.ts). */
export type LogLimits = Pick<JobLimits, 'logLinesPerJob' | 'logBytesPerJob' | 'eventsPerSecond'>;

/** Turns parsed borg lines into PostgreSQL rows (batched), Redis events and heartbeats. */
export class JobLog {
  private batch: Array<Parameters<typeof jobs.insertLogLines>[1][number]> = [];
  private lastFlush = Date.now();
  private stored = 0;
  /** Bytes of the job's messages stored, this follower's and earlier ones' (`resume`). */
  private storedBytes = 0;
  /** Set once the job's log reached its bound and said so. */
  private truncated = false;
  /** Live events left in the current second (a flood of lines is stored, not all relayed live). */
  private eventBudget = 0;
  private eventSecond = 0;
  private progressN = 0;
  private lastProgressPublish = 0;
  lastError: string | undefined;
  lastWarning: string | undefined;
  lastErrorTransient = false;
  /** borg said the file system it wrote to is full (ENOSPC), e.g. a restore's target. */
  diskFull = false;
  progress: (BorgLine & { kind: 'progress' }) | undefined;
  /** Paths borg listed (`--list`): a restore's count of restored items. */
  listed = 0;
  /** A restore without `--list`: the items counted in its target so far (DetachedBorg.countSoFar). */
  counted = 0;

  constructor(
    private readonly deps: JobLogDeps,
    private readonly jobId: string,
    private seq: number,
    private readonly limits: LogLimits = JOB_LIMIT_DEFAULTS,
  ) {}

  /**
   * A follower that goes on with the job's log where earlier ones stopped: a retried activity or a
   * hook's log does not get a fresh budget of the job's bounds.
   */
  static async resume(deps: JobLogDeps, jobId: string, limits: LogLimits = JOB_LIMIT_DEFAULTS): Promise<JobLog> {
    const tally = await jobs.logTally(deps.db, jobId);
    const log = new JobLog(deps, jobId, tally.seq, limits);
    log.storedBytes = tally.bytes;
    log.truncated = tally.cut;
    return log;
  }

  /**
   * BorgCube's own lines (started, finished, cancelled) are few and mark where the job is: stored
   * before they are published, so that a viewer that subscribes late still finds them.
   */
  async own(message: string, level = 'INFO') {
    await this.line({ kind: 'log', level, type: 'borgcube', msgid: null, message, time: null }, true);
  }

  /** Whether one more live event fits this second's budget. */
  private mayPublish(): boolean {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.eventSecond) {
      this.eventSecond = second;
      this.eventBudget = this.limits.eventsPerSecond;
    }
    if (this.eventBudget <= 0) return false;
    this.eventBudget--;
    return true;
  }

  /**
   * Whether a client's line may still be stored (line() has returned already once the log is cut). Past the job's bound the log says once that it
   * was cut and keeps nothing more of the client's (BorgCube's own lines, few, still go in): a
   * flood of lines costs the database and the viewers a bounded amount, and the job goes on
   * (its outcome comes from borg's exit code and last error, tracked whether stored or not).
   */
  private async withinBound(row: { message: string; type: string; msgid?: string | null }): Promise<boolean> {
    // Every field the client chose counts, as logTally counts it: a question's type or a msgid is stored too.
    const bytes = Buffer.byteLength(row.message) + Buffer.byteLength(row.type) + (row.msgid ? Buffer.byteLength(row.msgid) : 0);
    if (this.seq < this.limits.logLinesPerJob && this.storedBytes + bytes <= this.limits.logBytesPerJob) {
      this.storedBytes += bytes;
      return true;
    }
    this.truncated = true;
    await this.own(`${jobs.LOG_CUT_NOTICE} (${this.limits.logLinesPerJob} lines or ${this.limits.logBytesPerJob} bytes): further lines from the client are dropped`, 'WARNING');
    return false;
  }

  async line(l: BorgLine | null, storeFirst = false) {
    if (!l) return;
    if (l.kind === 'listed') {
      if (++this.listed > MAX_LISTED_LINES) {
        if (this.listed === MAX_LISTED_LINES + 1) await this.own(`more paths are restored than the log keeps (${MAX_LISTED_LINES}): they are counted, not listed`);
        return;
      }
      l = { kind: 'log', level: 'INFO', type: 'listed', msgid: null, message: l.path, time: null };
    }
    if (l.kind === 'progress') {
      // A restore's progress counts the paths listed (or, without --list, counted) so far as its files.
      if (l.totalSize !== undefined) l = { ...l, nfiles: Math.max(this.listed, this.counted) };
      const now = Date.now();
      // Borg prints at most 5 lines a second; publish them all, but never faster than 10/s.
      if (now - this.lastProgressPublish >= 100 && this.mayPublish()) {
        this.lastProgressPublish = now;
        await this.deps.events.publish(this.jobId, { type: 'progress', ...l, n: ++this.progressN }).catch(() => {});
      }
      this.progress = l;
      return;
    }
    if (l.kind === 'progress-finished') return;
    if (l.level === 'WARNING') this.lastWarning = l.message;
    // extract warns per file it cannot write into the target; an ERROR-level ENOSPC is borg's own
    // (its cache or lock in the job folder, maybe on another disk) and ends as any error does.
    if (!this.diskFull && diskFullInLine(l, ['WARNING']) !== undefined) this.diskFull = true;
    if (l.level === 'ERROR' || l.level === 'CRITICAL') {
      this.lastError = l.message;
      this.lastErrorTransient = transientError.test(l.message) || (l.msgid !== null && transientError.test(l.msgid));
    }
    if (this.stored >= MAX_STORED_LINES && !['WARNING', 'ERROR', 'CRITICAL'].includes(l.level)) return;
    if (!storeFirst && this.truncated) return;
    const row = jobs.storableLogLine({
      jobId: this.jobId,
      seq: 0,
      time: l.time ? new Date(l.time * 1000) : new Date(),
      level: l.level,
      type: l.type,
      msgid: l.msgid,
      message: l.message,
    });
    // Measured as stored: each control character the client sent is kept as `\xNN`, four bytes.
    if (!storeFirst && !(await this.withinBound(row))) return;
    row.seq = ++this.seq;
    this.stored++;
    this.batch.push(row);
    if (storeFirst) await this.flush();
    if (storeFirst || this.mayPublish()) {
      await this.deps.events
        .publish(this.jobId, { type: 'log', seq: row.seq, time: row.time.toISOString(), level: row.level, kind: row.type, msgid: row.msgid, message: row.message })
        .catch(() => {});
    }
    if (this.batch.length >= 200) await this.flush();
  }

  async maybeFlush() {
    if (this.batch.length && Date.now() - this.lastFlush > 500) await this.flush();
  }

  async flush() {
    const rows = this.batch;
    this.batch = [];
    this.lastFlush = Date.now();
    // The repository service may have put lines of its own in between (insertLogLines).
    this.seq = Math.max(this.seq, await jobs.insertLogLines(this.deps.db, rows));
  }
}
