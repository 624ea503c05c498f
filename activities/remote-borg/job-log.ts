// Follows a detached borg's JSON log into the job's log: PostgreSQL rows (batched), Redis events
// for viewers, and the latest progress for the activity's heartbeat.
import type { Db } from '../../db/client.js';
import * as jobs from '../../db/queries/jobs.js';
import type { EventPublisher } from '../../infra/events.js';
import type { BorgLine } from '../borg-output.js';

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

/** Turns parsed borg lines into PostgreSQL rows (batched), Redis events and heartbeats. */
export class JobLog {
  private batch: Array<Parameters<typeof jobs.insertLogLines>[1][number]> = [];
  private lastFlush = Date.now();
  private stored = 0;
  private progressN = 0;
  private lastProgressPublish = 0;
  lastError: string | undefined;
  lastWarning: string | undefined;
  lastErrorTransient = false;
  progress: (BorgLine & { kind: 'progress' }) | undefined;
  /** Paths borg listed (`--list`): a restore's count of restored items. */
  listed = 0;

  constructor(
    private readonly deps: JobLogDeps,
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
    if (l.kind === 'listed') {
      if (++this.listed > MAX_LISTED_LINES) {
        if (this.listed === MAX_LISTED_LINES + 1) await this.own(`more paths are restored than the log keeps (${MAX_LISTED_LINES}): they are counted, not listed`);
        return;
      }
      l = { kind: 'log', level: 'INFO', type: 'listed', msgid: null, message: l.path, time: null };
    }
    if (l.kind === 'progress') {
      // A restore's progress counts the paths listed so far as its files.
      if (l.totalSize !== undefined) l = { ...l, nfiles: this.listed };
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
    if (l.level === 'WARNING') this.lastWarning = l.message;
    if (l.level === 'ERROR' || l.level === 'CRITICAL') {
      this.lastError = l.message;
      this.lastErrorTransient = transientError.test(l.message) || (l.msgid !== null && transientError.test(l.msgid));
    }
    if (this.stored >= MAX_STORED_LINES && !['WARNING', 'ERROR', 'CRITICAL'].includes(l.level)) return;
    this.stored++;
    const row = jobs.storableLogLine({
      jobId: this.jobId,
      seq: ++this.seq,
      time: l.time ? new Date(l.time * 1000) : new Date(),
      level: l.level,
      type: l.type,
      msgid: l.msgid,
      message: l.message,
    });
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
