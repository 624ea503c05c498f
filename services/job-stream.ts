// One live view of one job: a browser's, behind a WebSocket (`/ws/jobs/:id?after=<seq>`), or
// `borgcube job logs --follow`.
//
// Order of work, so that nothing is lost or doubled: subscribe to the job's Redis channel first
// (events are held back), then send the stored log lines after `after` from PostgreSQL, then the
// held-back and live events, dropping log lines whose seq was already sent. The worker publishes
// a line before its batch reaches PostgreSQL, so a line can arrive "from the future" after a
// reconnect: the gap is filled from the database (retried while the batch is in flight).
// A reconnect is a new socket with the last seq the browser saw.
//
// Messages to the viewer (JSON for a browser): hello {job, estimate}, log {seq,…}, progress {…},
// state {…}, gap {from, to} (lines that could not be recovered); then a close with its reason.
import { isActive } from '../db/queries/jobs.js';
import type { JobEvent, LogLineEvent } from '../infra/events.js';
import type { ServiceDeps } from './deps.js';
import { progressEstimate } from './dashboard.js';
import { getJob, jobLogAfter } from './jobs.js';
import type { JobEventHub } from '../infra/job-event-hub.js';

export type JobStreamMessage =
  | { type: 'hello'; job: { id: string; state: string; phase: string | null; error: string | null; archiveName: string | null; queuePosition: number | null }; estimate: unknown }
  | JobEvent
  | { type: 'gap'; from: number; to: number };

export interface JobStreamSocket {
  send(message: JobStreamMessage): void;
  close(code: number, reason: string): void;
  /** Bytes queued in the socket and not yet written to the network. */
  bufferedAmount(): number;
}

export interface JobStreamOptions {
  /** Close (1013) a viewer whose socket queues more than this; it reconnects and resumes. */
  maxBufferedBytes?: number;
  /** Without live events for this long, look in PostgreSQL for lines and the state (Redis is best effort). */
  idlePollMs?: number;
  /** How long a gap may wait for the worker's batch to reach PostgreSQL. */
  gapWaitMs?: number;
}

const maxQueuedEvents = 10_000;
const pageSize = 1000;

export class JobStream {
  private lastSeq: number;
  private closed = false;
  private unsubscribe: (() => void) | undefined;
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private lastActivity = Date.now();
  private poll: NodeJS.Timeout | undefined;
  private readonly opts: Required<JobStreamOptions>;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly hub: JobEventHub,
    private readonly jobId: string,
    after: number,
    private readonly socket: JobStreamSocket,
    opts: JobStreamOptions = {},
  ) {
    this.lastSeq = after;
    this.opts = { maxBufferedBytes: opts.maxBufferedBytes ?? 4 << 20, idlePollMs: opts.idlePollMs ?? 5000, gapWaitMs: opts.gapWaitMs ?? 3000 };
  }

  /** Subscribes, sends the stored tail, then streams. */
  async start(): Promise<void> {
    // Live events queue behind this gate until the stored tail has been sent.
    let open!: () => void;
    this.chain = new Promise<void>((r) => (open = r));
    try {
      this.unsubscribe = await this.hub.subscribe(this.jobId, (e) => this.onLive(e));
      if (this.closed) return this.unsubscribe();
      const job = await getJob(this.deps, this.jobId);
      this.emit({ type: 'hello', job: { id: job.id, state: job.state, phase: job.phase, error: job.error, archiveName: job.archiveName, queuePosition: job.queuePosition }, estimate: await progressEstimate(this.deps, job.clientId) });
      await this.catchUp();
      if (!isActive(job.state)) await this.finish({ type: 'state', jobId: job.id, state: job.state, phase: job.phase, error: job.error });
    } catch (err) {
      this.deps.log.warn({ err, job: this.jobId }, 'job stream failed to start');
      this.fail(1011, err instanceof Error && err.name === 'ServiceError' ? err.message : 'internal error');
    } finally {
      open();
    }
    if (this.closed) return;
    const t = setInterval(() => this.idleCheck(), Math.max(250, Math.floor(this.opts.idlePollMs / 2)));
    t.unref();
    this.poll = t;
  }

  /** The viewer went away (or we closed): stop listening. Idempotent. */
  stop(): void {
    this.closed = true;
    this.unsubscribe?.();
    if (this.poll) clearInterval(this.poll);
  }

  private onLive(e: JobEvent) {
    if (this.closed) return;
    if (++this.queued > maxQueuedEvents) return this.fail(1013, 'too far behind; reconnect');
    this.lastActivity = Date.now();
    this.enqueue(async () => {
      this.queued--;
      await this.handle(e);
    });
  }

  private enqueue(fn: () => Promise<void>) {
    this.chain = this.chain.then(async () => {
      if (this.closed) return;
      try {
        await fn();
      } catch (err) {
        this.deps.log.warn({ err, job: this.jobId }, 'job stream failed');
        this.fail(1011, err instanceof Error && err.name === 'ServiceError' ? err.message : 'internal error');
      }
    });
  }

  private async handle(e: JobEvent) {
    if (e.type === 'log') {
      if (e.seq <= this.lastSeq) return;
      if (e.seq > this.lastSeq + 1) await this.fillGap(e.seq);
      if (e.seq <= this.lastSeq) return;
      this.sendLine(e);
    } else if (e.type === 'progress') {
      this.emit(e);
    } else if (e.phase === 'done' || !isActive(e.state)) {
      await this.finish(e);
    } else {
      this.emit(e);
    }
  }

  /** Sends stored lines after lastSeq, page by page. */
  private async catchUp(): Promise<void> {
    for (;;) {
      const rows = await jobLogAfter(this.deps, this.jobId, this.lastSeq, pageSize);
      for (const r of rows) {
        if (this.closed) return;
        if (r.seq > this.lastSeq) this.sendLine({ type: 'log', seq: r.seq, time: r.time.toISOString(), level: r.level, kind: r.type, msgid: r.msgid, message: r.message });
      }
      if (rows.length < pageSize) return;
    }
  }

  /** Lines before `seq` are missing: they are on their way to PostgreSQL; wait for them a little. */
  private async fillGap(seq: number) {
    const deadline = Date.now() + this.opts.gapWaitMs;
    for (;;) {
      await this.catchUp();
      if (this.lastSeq >= seq - 1 || this.closed) return;
      if (Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    this.emit({ type: 'gap', from: this.lastSeq + 1, to: seq - 1 });
    this.lastSeq = seq - 1;
  }

  private async finish(state: JobEvent & { type: 'state' }) {
    await this.catchUp();
    this.emit(state);
    this.fail(1000, 'job ended');
  }

  /** Redis may have dropped events (it keeps none): look at the database now and then. */
  private idleCheck() {
    if (this.closed || Date.now() - this.lastActivity < this.opts.idlePollMs || this.queued > 0) return;
    this.lastActivity = Date.now();
    this.enqueue(async () => {
      await this.catchUp();
      const job = await getJob(this.deps, this.jobId);
      if (!isActive(job.state)) await this.finish({ type: 'state', jobId: job.id, state: job.state, phase: job.phase, error: job.error });
    });
  }

  private sendLine(l: LogLineEvent) {
    this.emit(l);
    this.lastSeq = l.seq;
  }

  private emit(msg: JobStreamMessage) {
    if (this.closed) return;
    if (this.socket.bufferedAmount() > this.opts.maxBufferedBytes) return this.fail(1013, 'too far behind; reconnect');
    this.socket.send(msg);
  }

  private fail(code: number, reason: string) {
    if (this.closed) return;
    this.stop();
    this.socket.close(code, reason);
  }
}
