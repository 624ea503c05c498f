// One connection from a forced command (proxy/session/main.ts): requests in arrival order, except
// puts and a read-only session's gets, which run concurrently inside the session. Before `attach`
// only a violation report is accepted; after it, the operations the job's session policy allows.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Db } from '../../db/client.js';
import { appendJobLog } from '../../db/queries/jobs.js';
import type { Logger } from '../../infra/logger.js';
import { writeFrame } from '../protocol/frames.js';
import type { ReplyResult, ServiceMessage } from '../protocol/replies.js';
import { proxyRequest, type ProxyRequest } from '../protocol/requests.js';
import { AttachRefused, type AttachRefusalLog, type Attached } from './attach.js';
import { authenticatedFor, reusedCredentialOf } from './credentials.js';
import type { JobNonces } from './job-nonces.js';
import type { RepositoryHandle } from './repository.js';
import type { SessionEntry, SessionRegistry } from './session-registry.js';
import { diskFullDetail, isInternalError, PolicyViolation, replyErrorOf, SessionError } from './sessions/errors.js';
import type { JobFaults } from './job-faults.js';
import { NO_DATA, type JobSession, type SessionOperation, type SessionPolicy } from './sessions/policy.js';
import type { Violations } from './violations.js';

/** What a connection needs of the service. */
export interface ConnectionContext {
  db: Db;
  log: Logger;
  sessions: SessionRegistry;
  violations: Violations;
  faults: JobFaults;
  nonces: JobNonces;
  refusedAttaches: AttachRefusalLog;
  attach(req: Extract<ProxyRequest, { t: 'attach' }>, entry: SessionEntry): Promise<Attached>;
}

/**
 * A job's connections at once (attaching, live, closing or only announced by `hello`): a stock
 * borg has one, and one more while its restarted predecessor's session still cleans up. Past
 * this the job ends as a `quota-connections` violation and all its connections close: a client
 * cannot keep hundreds of proxies (one process each) of its credential alive (invariant 11).
 */
export const MAX_CONNECTIONS_PER_JOB = 4;

/**
 * Requests (and their bytes) of one connection received but not yet answered. Past either bound
 * the socket is paused until half have been answered: a client that sends puts faster than they
 * are verified and stored waits, instead of the service holding an ever longer backlog of them
 * (DESIGN.md §4 invariant 11). Far above what keeps the crypto pool busy.
 */
export const MAX_PENDING = 1024;
export const MAX_PENDING_BYTES = 128 * 1024 * 1024;

interface Queued {
  header: unknown;
  payload: Buffer;
  owned: boolean;
}

export class ProxyConnection implements SessionEntry {
  private session: JobSession | undefined;
  private policy: SessionPolicy | undefined;
  private jobId: string | undefined;
  private attaching: Promise<void> | undefined;
  /** The job whose credential this connection proved in `hello` (counted in the registry from then on). */
  private announced: string | undefined;
  /** An attach of this connection was refused after it proved its job (its internal errors are capped). */
  private attachRefused = false;
  private ended = false;
  private readonly gone = new AbortController();
  /** The forced command asked to attach (a connection that never does is closed after a while). */
  opened = false;
  private lastFrameAt = Date.now();
  private readonly queue: Queued[] = [];
  private draining = false;
  private pending = 0;
  private pendingBytes = 0;
  private paused = false;

  constructor(
    private readonly sock: Socket,
    private readonly c: ConnectionContext,
  ) {}

  get repo(): RepositoryHandle | undefined {
    return this.session?.repo;
  }

  get closed(): boolean {
    return this.ended;
  }

  get closedSignal(): AbortSignal {
    return this.gone.signal;
  }

  idleFor(): number {
    // A read-only session holds no share of the upstream between requests: it keeps nobody waiting.
    return this.pending > 0 || this.policy?.readOnly ? 0 : Date.now() - this.lastFrameAt;
  }

  abort(reason: string): void {
    if (this.ended) return;
    this.send({ t: 'abort', reason });
    this.sock.end();
  }

  onFrame(header: unknown, payload: Buffer, owned: boolean): void {
    this.lastFrameAt = Date.now();
    this.queue.push({ header, payload, owned });
    this.pending++;
    this.pendingBytes += payload.length;
    if (!this.paused && (this.pending >= MAX_PENDING || this.pendingBytes >= MAX_PENDING_BYTES)) {
      this.paused = true;
      this.sock.pause();
    }
    void this.pump().catch(this.crash);
  }

  /** A request was answered (or refused): its share of the backlog is free again. */
  private settled(bytes: number): void {
    this.lastFrameAt = Date.now();
    this.pending--;
    this.pendingBytes -= bytes;
    if (this.paused && this.pending <= MAX_PENDING / 2 && this.pendingBytes <= MAX_PENDING_BYTES / 2) {
      this.paused = false;
      this.sock.resume();
    }
  }

  async onClose(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.gone.abort();
    // Announced but never attaching: nothing else takes it out of the job's count (an attach
    // that started removes its entry itself, on failure or when its session closes).
    if (this.announced && !this.attaching) this.c.sessions.remove(this.announced, this);
    await this.closeSession();
  }

  /**
   * Ends the attached session; its job's entry in the registry stays until the cleanup is done, so
   * that a restarted borg's new session waits for it and cleanup after the job sees it.
   */
  private async closeSession(): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    try {
      await session.close();
    } finally {
      if (!this.policy?.readOnly) session.repo.release();
      if (this.jobId) this.c.sessions.remove(this.jobId, this);
    }
  }

  // A bug in handling one session ends that session, never the service.
  private readonly crash = (err: unknown) => {
    this.c.log.error({ job: this.jobId, err: (err as Error).message, stack: (err as Error).stack }, 'session handler failed');
    this.sock.destroy();
  };

  private send(m: ServiceMessage, payload?: Buffer): void {
    if (!this.sock.destroyed) writeFrame(this.sock, m, payload);
  }

  private reply(rid: number, result: ReplyResult, payload?: Buffer): void {
    this.send({ t: 'reply', rid, ok: true, result }, payload);
  }

  private async fail(rid: number, err: unknown): Promise<void> {
    const ref = randomBytes(4).toString('hex');
    const e = replyErrorOf(err, ref);
    this.send({ t: 'reply', rid, ok: false, error: e });
    if (err instanceof PolicyViolation && this.jobId) return this.c.violations.record(this.jobId, err.kind, err.detail);
    if (isInternalError(err)) await this.logInternal(ref, err);
    const full = this.jobId ? diskFullDetail(err) : undefined;
    if (full) await this.c.faults.diskFull(this.jobId!, this.session?.repo, full, ref);
    if (e.fatal) this.sock.end();
  }

  /**
   * The real text of an error the client was only given `ref` for: the service's log, and the
   * job's log once the connection is bound to its job (before that, nothing proves which job).
   */
  private async logInternal(ref: string, err: unknown): Promise<void> {
    const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    this.c.log.warn({ job: this.jobId, ref, err: text, stack: (err as Error | undefined)?.stack }, 'session ended on an error');
    if (!this.jobId) return;
    const line = `repository service error (ref ${ref}): ${text.slice(0, 2000)}`;
    // A client retrying borg in a loop against a failing attach: capped per job like other refusals.
    if (this.attachRefused) return this.c.refusedAttaches.note(this.jobId, line);
    await appendJobLog(this.c.db, this.jobId, line, 'ERROR').catch((e: Error) =>
      this.c.log.warn({ job: this.jobId, err: e.message }, 'could not write to the job log'),
    );
  }

  /** Puts run concurrently inside the session; everything else keeps arrival order. */
  private async pump(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length) {
        const { header, payload, owned } = this.queue.shift()!;
        const parsed = proxyRequest.safeParse(header);
        if (!parsed.success) {
          this.c.log.warn({ job: this.jobId }, 'invalid message from a proxy');
          this.sock.destroy();
          return;
        }
        const req = parsed.data;
        const bytes = payload.length;
        const handled = this.handle(req, payload, owned).finally(() => this.settled(bytes));
        if (req.t === 'put' || (req.t === 'get' && this.policy?.readOnly)) void handled.catch(this.crash);
        else await handled;
        if (this.attaching) await this.attaching.catch(() => {});
      }
    } finally {
      this.draining = false;
    }
  }

  private async handle(req: ProxyRequest, payload: Buffer, owned: boolean): Promise<void> {
    if (req.t === 'violation') return this.reported(req);
    if (req.t === 'hello') return this.hello(req);
    if (req.t === 'attach') return this.attach(req);
    if (!this.session || !this.policy) return this.fail(req.rid, new SessionError('ProtocolError', 'not attached'));
    if (!this.policy.allows.has(req.t)) return this.fail(req.rid, new PolicyViolation('forbidden-method', `${req.t} is not allowed in this job`));
    if (req.t === 'put') return this.put(this.session, req, payload, owned);
    try {
      await this.session.barrier();
      await this.operate(this.session, req, payload);
    } catch (err) {
      await this.fail(req.rid, err);
    }
  }

  /**
   * The forced command names its job before the client says anything. Counted only with the proof
   * attach requires (sshd's auth info shows the job's live credential).
   */
  private async hello(req: Extract<ProxyRequest, { t: 'hello' }>): Promise<void> {
    if (this.announced || this.attaching || this.ended) return;
    const proven = await authenticatedFor(this.c.db, req.jobId, req.authInfo);
    // Closed (or attaching) while the database answered: onClose has already run, and an entry
    // added now would stay in the job's count for good and hold up every later attach of the job.
    if (this.ended || this.attaching) return;
    if (!proven) {
      // Not the live credential of a running job: `open` could only be refused. Closed now rather
      // than after the open timeout, so the connections of a flood that are still logging in when
      // the job ends go at once.
      this.abort('this job is not running, or this credential is no longer valid');
      return;
    }
    this.announced = req.jobId;
    this.c.sessions.add(req.jobId, this);
    const n = this.c.sessions.count(req.jobId);
    if (n <= MAX_CONNECTIONS_PER_JOB) return;
    this.jobId = req.jobId;
    // Recorded once; every connection of the job ends with it, this one included.
    await this.c.violations.record(req.jobId, 'quota-connections', `${n} connections of the job at once (at most ${MAX_CONNECTIONS_PER_JOB})`);
    this.sock.destroy();
  }

  /** Something the forced command refused on its own. */
  private async reported(req: Extract<ProxyRequest, { t: 'violation' }>): Promise<void> {
    if (this.jobId) return this.c.violations.record(this.jobId, req.kind, req.detail);
    // A `--reused` forced command: sshd let a kept credential in only to have its use reported.
    if (req.kind === 'credential-reuse') {
      if (req.jobId && req.authInfo !== undefined && (await reusedCredentialOf(this.c.db, req.jobId, req.authInfo))) {
        await this.c.violations.reused(req.jobId, `the SSH credential of job ${req.jobId} was used after its round or job ended; session refused`);
      }
      this.sock.destroy();
      return;
    }
    // Refused before `open` bound the connection (e.g. garbage as the first bytes): it still
    // counts against the job if sshd's auth info shows that job's live credential — the same
    // proof attach requires, not the job id alone.
    if (req.jobId && req.authInfo !== undefined && (await authenticatedFor(this.c.db, req.jobId, req.authInfo))) await this.c.violations.record(req.jobId, req.kind, req.detail);
    this.sock.destroy();
  }

  private async attach(req: Extract<ProxyRequest, { t: 'attach' }>): Promise<void> {
    if (this.attaching) return this.fail(req.rid, new SessionError('ProtocolError', 'already attached'));
    // Only the announced job's entry is ever taken out again: another job here would leave it behind.
    if (this.announced && req.jobId !== this.announced) {
      await this.fail(req.rid, new SessionError('ProtocolError', 'attach names another job than the connection announced'));
      this.sock.destroy();
      return;
    }
    this.opened = true;
    this.attaching = (async () => {
      const r = await this.c.attach(req, this);
      this.session = r.session;
      this.policy = r.policy;
      this.jobId = req.jobId;
      // attach checks the connection after its last wait; should it have closed since, the
      // session goes at once rather than live on unseen.
      if (this.ended) return this.closeSession();
      this.reply(req.rid, r.result);
    })();
    try {
      await this.attaching;
    } catch (caught) {
      let err = caught;
      // Refused after the connection proved its job: the reason goes into that job's log (an
      // internal error's text through fail(), under the ref the client was given).
      if (err instanceof AttachRefused) {
        this.jobId = err.jobId;
        this.attachRefused = true;
        err = err.reason;
        if (err instanceof SessionError) await this.c.refusedAttaches.note(this.jobId, err.message);
      }
      // Refused before attach registered it (or after it took its own entry out): the entry of
      // `hello` goes too, or the job would seem to have a session still closing.
      if (this.announced) this.c.sessions.remove(this.announced, this);
      // The job the credential belongs to is the one that misbehaved.
      if (err instanceof PolicyViolation) this.jobId = req.jobId;
      await this.fail(req.rid, err);
      this.sock.end();
    }
  }

  private async put(s: JobSession, req: Extract<ProxyRequest, { t: 'put' }>, payload: Buffer, owned: boolean): Promise<void> {
    try {
      const stored = s.put(Buffer.from(req.id, 'hex'), payload, owned);
      // Not kept while the put waits (see BackupSession.doPut).
      payload = NO_DATA;
      await stored;
      this.reply(req.rid, null);
    } catch (err) {
      await this.fail(req.rid, err);
    }
  }

  private async operate(s: JobSession, req: Extract<ProxyRequest, { t: Exclude<SessionOperation, 'put'> }>, payload: Buffer): Promise<void> {
    switch (req.t) {
      case 'getManifest':
        return this.reply(req.rid, { bytes: true }, await s.manifestObject());
      case 'get':
        return this.reply(req.rid, { bytes: true }, await s.get(Buffer.from(req.id, 'hex')));
      case 'delete':
        s.delete(Buffer.from(req.id, 'hex'));
        return this.reply(req.rid, null);
      case 'putManifest':
        await s.putManifest(payload);
        return this.reply(req.rid, null);
      case 'commit':
        await s.commit();
        return this.reply(req.rid, null);
      case 'rollback':
        await s.rollback();
        return this.reply(req.rid, null);
      case 'nonce':
        return this.reply(req.rid, await this.c.nonces.answer(s.jobId, req));
    }
  }
}
