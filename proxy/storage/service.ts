// The repository service (DESIGN.md §2, §5): runs as the storage account, holds the real keys,
// owns one upstream `borg serve` per repository, and serves
//  * proxy sessions on the proxy socket (one connection per `borgcube proxy` process),
//  * sshd's AuthorizedKeysCommand on the same socket (is this key a live job credential?),
//  * admin leases on the control socket (the CLI's `borgcube borg` waits for the lock this way),
//  * the storage activities of the backup workflow (same process, direct calls).
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { and, eq, isNull } from 'drizzle-orm';
import type { Client as TemporalClient } from '@temporalio/client';
import type { Db } from '../../db/client.js';
import { findJob, insertViolation } from '../../db/queries/jobs.js';
import { getRepositorySecrets, repositorySecretContext, findRepositoryById } from '../../db/queries/repositories.js';
import { jobCredentialsTable, jobKeysTable, jobsTable } from '../../db/schema.js';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';
import type { MasterKey } from '../../infra/secrets.js';
import { fingerprintOfBlob } from '../../infra/ssh.js';
import { jobServerDir, repoStateDir } from '../../infra/storage-layout.js';
import { violationSignal } from '../../workflows/messages.js';
import { asKeyType, loadKey, type BorgKey } from '../borg/keys.js';
import type { FrameError} from '../protocol/frames.js';
import { encodeFrame, FrameDecoder, writeFrame } from '../protocol/frames.js';
import { authorizedKeysRequest, proxyRequest, type ProxyRequest, type ServiceMessage } from '../protocol/requests.js';
import type { RefEntry } from './archive-refs.js';
import { decodeRefs } from './chunk-store.js';
import { CryptoPool } from './crypto-pool.js';
import { ItemsCache } from './items-cache.js';
import { ITEMS_CACHE_BYTES, RepositoryHandle } from './repository.js';
import { NO_DATA, PolicyViolation, replyErrorOf, Session, SessionError, type JobContext, type SessionHooks } from './sessions/backup.js';

export interface RepositoryServiceDeps {
  db: Db;
  config: Config;
  log: Logger;
  masterKey: MasterKey;
  /** Violations are signalled to the job's workflow through this client (absent in some tests). */
  temporal?: TemporalClient;
  /** How sshd runs the proxy: node + the compiled proxy entry. */
  proxyCommand: { node: string; script: string };
  /** Group that may connect to the proxy socket (the proxy account's group). */
  proxyGid?: number;
  idleCloseMs?: number;
}

/** The persistent part of a job's context (state.json in its server folder). */
interface JobStateFile {
  fakeRepoId: string;
  servedManifest: string;
  idMap: Record<string, string>;
}

/** Sealed job secrets: the key text handed to the client and its passphrase. */
export const jobKeyContext = (jobId: string) => `job:${jobId}:key`;

export class RepositoryService {
  readonly pool = new CryptoPool();
  private readonly itemsCache = new ItemsCache(ITEMS_CACHE_BYTES);
  private readonly repos = new Map<string, Promise<RepositoryHandle>>();
  private readonly sessions = new Map<string, Set<{ session?: Session; abort: (reason: string) => void }>>();
  private readonly stats = new Map<string, SessionHooks['stats']>();
  private servers: Server[] = [];

  constructor(readonly deps: RepositoryServiceDeps) {}

  // ---- repositories ----------------------------------------------------------------------------

  repository(id: string): Promise<RepositoryHandle> {
    let p = this.repos.get(id);
    if (!p) {
      p = this.loadRepository(id);
      this.repos.set(id, p);
      p.catch(() => this.repos.delete(id));
    }
    return p;
  }

  private async loadRepository(id: string): Promise<RepositoryHandle> {
    const { db, masterKey, config, log } = this.deps;
    const row = await findRepositoryById(db, id);
    if (!row) throw new Error(`repository ${id} does not exist`);
    const secrets = await getRepositorySecrets(db, id);
    if (!secrets) throw new Error(`repository ${id} has no key`);
    const keyText = masterKey.openText(secrets.keySealed, repositorySecretContext.key(id));
    const passphrase = masterKey.openText(secrets.passphraseSealed, repositorySecretContext.passphrase(id));
    const type = row.encryption === 'repokey' ? 0x03 : row.encryption === 'repokey-blake2' ? 0x05 : row.encryption === 'keyfile' ? 0x00 : 0x04;
    const key = loadKey(keyText, passphrase, asKeyType(type));
    const handle = new RepositoryHandle({ id, name: row.name, path: row.path, borgId: row.borgId }, key, {
      borgPath: config.borg.path,
      stateDir: repoStateDir(config, id),
      log: log.child({ repository: row.name }),
      pool: this.pool,
      itemsCache: this.itemsCache,
      idleCloseMs: this.deps.idleCloseMs,
    });
    handle.onUpstreamLost = (err) => {
      for (const set of this.sessions.values()) for (const s of set) if (s.session?.repo === handle) s.abort(err.message);
    };
    return handle;
  }

  // ---- sockets ---------------------------------------------------------------------------------

  async listen(): Promise<void> {
    const { paths } = this.deps.config;
    mkdirSync(paths.runDir, { recursive: true });
    this.servers.push(await this.listenOn(paths.storageSocket, 0o660, (sock) => this.onProxyConnection(sock)));
    // The run folder is setgid to the proxy account's group, so the socket is born in that group;
    // otherwise only root could hand it over.
    const gid = this.deps.proxyGid;
    if (gid !== undefined && statSync(paths.storageSocket).gid !== gid) {
      try {
        chownSync(paths.storageSocket, process.getuid!(), gid);
      } catch {
        throw new Error(`${paths.storageSocket} must belong to the proxy account's group: make ${paths.runDir} group-owned by it with the setgid bit (chmod 2750)`);
      }
    }
    this.servers.push(await this.listenOn(paths.controlSocket, 0o600, (sock) => this.onControlConnection(sock)));
  }

  private listenOn(path: string, mode: number, onConn: (s: Socket) => void): Promise<Server> {
    rmSync(path, { force: true });
    const server = createServer(onConn);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        chmodSync(path, mode);
        resolve(server);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.servers) s.close();
    for (const set of this.sessions.values()) for (const s of set) s.abort('the repository service is stopping');
    for (const p of this.repos.values()) await (await p.catch(() => undefined))?.shutdown();
    await this.pool.close();
  }

  private onProxyConnection(sock: Socket) {
    const decoder = new FrameDecoder();
    let session: ReturnType<RepositoryService['startSession']> | undefined;
    let first = true;
    sock.on('error', () => {});
    sock.on('data', (chunk: Buffer) => {
      try {
        onData(chunk);
      } catch (err) {
        // One connection's bad luck never takes the service down.
        this.deps.log.error({ err: (err as Error).message }, 'proxy connection failed');
        sock.destroy();
      }
    });
    const onData = (chunk: Buffer) => {
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.deps.log.warn({ err: (err as FrameError).message }, 'malformed frame from a proxy');
        sock.destroy();
        return;
      }
      for (const f of frames) {
        if (first) {
          first = false;
          const ak = authorizedKeysRequest.safeParse(f.header);
          if (ak.success) {
            void this.authorizedKeys(ak.data.user, ak.data.keyType, ak.data.key).then(
              (lines) => sock.end(frameBytes({ lines })),
              () => sock.end(frameBytes({ lines: [] })),
            );
            return;
          }
          session = this.startSession(sock);
        }
        session!.onFrame(f.header, f.payload, f.owned);
      }
    };
    sock.on('close', () => void session?.onClose().catch((err: Error) => this.deps.log.error({ err: err.message }, 'closing a session failed')));
  }

  // ---- sshd's AuthorizedKeysCommand ---------------------------------------------------------------

  /** authorized_keys lines for an offered key: the job's forced proxy command, or nothing. */
  async authorizedKeys(user: string, keyType: string, keyB64: string): Promise<string[]> {
    const { db, config, log } = this.deps;
    if (user !== config.accounts.proxy || !/^[A-Za-z0-9@.-]{1,64}$/.test(keyType) || !/^[A-Za-z0-9+/=]{1,8192}$/.test(keyB64)) return [];
    const fingerprint = fingerprintOfBlob(Buffer.from(keyB64, 'base64'));
    const rows = await db
      .select({ cred: jobCredentialsTable, jobState: jobsTable.state, repositoryId: jobsTable.repositoryId })
      .from(jobCredentialsTable)
      .innerJoin(jobsTable, eq(jobsTable.id, jobCredentialsTable.jobId))
      .where(eq(jobCredentialsTable.fingerprint, fingerprint));
    const row = rows[0];
    if (!row) return [];
    const { cred } = row;
    if (cred.revokedAt || cred.expiresAt < new Date() || row.jobState !== 'running') {
      log.warn({ job: cred.jobId, fingerprint }, 'a credential was offered after its job ended');
      await insertViolation(db, {
        jobId: cred.jobId,
        clientId: cred.clientId,
        repositoryId: row.repositoryId,
        kind: 'credential-reuse',
        detail: `the SSH credential of job ${cred.jobId} was offered after the job ${row.jobState === 'running' ? 'revoked it' : `ended (${row.jobState})`}; login refused`,
      });
      // A job that is still running gets the signal; an ended workflow cannot receive one.
      if (row.jobState === 'running') await this.signalViolation(cred.jobId, 'credential-reuse', 'revoked credential offered again');
      return [];
    }
    const { node, script } = this.deps.proxyCommand;
    const command = `${node} ${script} --socket ${config.paths.storageSocket} --job ${cred.jobId}`;
    if (!/^[A-Za-z0-9_./ -]+$/.test(command)) throw new Error('proxy command contains characters unsafe for authorized_keys');
    return [`restrict,command="${command}" ${keyType} ${keyB64}`];
  }

  // ---- violations --------------------------------------------------------------------------------

  /** Records what a client attempted, signals its workflow, and ends every session of the job. */
  async violation(jobId: string, kind: string, detail: string): Promise<void> {
    const { db, log } = this.deps;
    const job = await findJob(db, jobId);
    log.warn({ job: jobId, client: job?.clientId, kind, detail }, 'violation');
    await insertViolation(db, { jobId, clientId: job?.clientId ?? null, repositoryId: job?.repositoryId ?? null, kind, detail });
    // The credential stops working at once, whatever the workflow does next.
    await db.update(jobCredentialsTable).set({ revokedAt: new Date() }).where(and(eq(jobCredentialsTable.jobId, jobId), isNull(jobCredentialsTable.revokedAt)));
    await this.signalViolation(jobId, kind, detail);
    this.abortJob(jobId, `violation: ${kind}`);
  }

  private async signalViolation(jobId: string, kind: string, detail: string) {
    try {
      await this.deps.temporal?.workflow.getHandle(jobId).signal(violationSignal, { kind, detail, at: new Date().toISOString() });
    } catch (err) {
      this.deps.log.warn({ job: jobId, err: (err as Error).message }, 'could not signal the violation to the workflow');
    }
  }

  /** Ends the job's live sessions (the proxy hangs up, uncommitted changes are undone). */
  abortJob(jobId: string, reason: string) {
    for (const s of this.sessions.get(jobId) ?? []) s.abort(reason);
  }

  hasLiveSession(jobId: string): boolean {
    return (this.sessions.get(jobId)?.size ?? 0) > 0;
  }

  jobStats(jobId: string): SessionHooks['stats'] {
    let s = this.stats.get(jobId);
    if (!s) {
      s = { uploadedBytes: 0, uploadedObjects: 0, newObjects: 0, newBytes: 0 };
      this.stats.set(jobId, s);
    }
    return s;
  }

  forgetJobStats(jobId: string) {
    this.stats.delete(jobId);
  }

  // ---- proxy sessions ----------------------------------------------------------------------------

  private startSession(sock: Socket) {
    const log = this.deps.log;
    let session: Session | undefined;
    let jobId: string | undefined;
    let attaching: Promise<void> | undefined;
    let ended = false;
    const queue: Array<{ header: unknown; payload: Buffer; owned: boolean }> = [];
    let draining = false;
    const entry = {
      session: undefined as Session | undefined,
      abort: (reason: string) => {
        if (ended) return;
        send({ t: 'abort', reason });
        sock.end();
      },
    };
    // A bug in handling one session ends that session, never the service.
    const crash = (err: unknown) => {
      log.error({ job: jobId, err: (err as Error).message, stack: (err as Error).stack }, 'session handler failed');
      sock.destroy();
    };
    const send = (m: ServiceMessage, payload?: Buffer) => {
      if (!sock.destroyed) writeFrame(sock, m, payload);
    };
    const reply = (rid: number, result: Extract<ServiceMessage, { ok: true }>['result'], payload?: Buffer) => send({ t: 'reply', rid, ok: true, result }, payload);
    const fail = async (rid: number, err: unknown) => {
      const e = replyErrorOf(err);
      send({ t: 'reply', rid, ok: false, error: e });
      if (err instanceof PolicyViolation && jobId) await this.violation(jobId, err.kind, err.detail);
      else if (e.fatal) {
        log.warn({ job: jobId, err: (err as Error).message }, 'session ended on an error');
        sock.end();
      }
    };

    const handle = async (req: ProxyRequest, payload: Buffer, owned: boolean) => {
      if (req.t === 'violation') {
        if (jobId) await this.violation(jobId, req.kind, req.detail);
        else {
          // Refused before `open` bound the connection (e.g. garbage as the first bytes): it still
          // counts against the job if sshd's auth info shows that job's live credential — the
          // same proof attach requires, not the job id alone.
          if (req.jobId && req.authInfo !== undefined && (await this.authenticatedFor(req.jobId, req.authInfo))) await this.violation(req.jobId, req.kind, req.detail);
          sock.destroy();
        }
        return;
      }
      if (req.t === 'attach') {
        if (attaching) return fail(req.rid, new SessionError('ProtocolError', 'already attached'));
        attaching = (async () => {
          const r = await this.attach(req, entry);
          session = r.session;
          entry.session = session;
          jobId = req.jobId;
          reply(req.rid, r.result);
        })();
        try {
          await attaching;
        } catch (err) {
          if (err instanceof PolicyViolation) {
            // The job the credential belongs to is the one that misbehaved.
            jobId = req.jobId;
          }
          await fail(req.rid, err);
          sock.end();
        }
        return;
      }
      if (!session) return fail(req.rid, new SessionError('ProtocolError', 'not attached'));
      const s = session;
      if (req.t === 'put') {
        try {
          const stored = s.put(Buffer.from(req.id, 'hex'), payload, owned);
          // Not kept while the put waits (see Session.doPut).
          payload = NO_DATA;
          await stored;
          reply(req.rid, null);
        } catch (err) {
          await fail(req.rid, err);
        }
        return;
      }
      try {
        await s.barrier();
        switch (req.t) {
          case 'getManifest':
            return reply(req.rid, { bytes: true }, await s.manifestObject());
          case 'get':
            return reply(req.rid, { bytes: true }, await s.get(Buffer.from(req.id, 'hex')));
          case 'delete':
            s.delete(Buffer.from(req.id, 'hex'));
            return reply(req.rid, null);
          case 'putManifest':
            await s.putManifest(payload);
            return reply(req.rid, null);
          case 'commit':
            await s.commit();
            return reply(req.rid, null);
          case 'rollback':
            await s.rollback();
            return reply(req.rid, null);
          case 'nonce':
            return reply(req.rid, await this.jobNonce(s.ctx.jobId, req));
        }
      } catch (err) {
        await fail(req.rid, err);
      }
    };

    // Puts run concurrently inside the session; everything else keeps arrival order.
    const pump = async () => {
      if (draining) return;
      draining = true;
      try {
        while (queue.length) {
          const { header, payload, owned } = queue.shift()!;
          const parsed = proxyRequest.safeParse(header);
          if (!parsed.success) {
            log.warn({ job: jobId }, 'invalid message from a proxy');
            sock.destroy();
            return;
          }
          const req = parsed.data;
          if (req.t === 'put') void handle(req, payload, owned).catch(crash);
          else await handle(req, payload, owned);
          if (attaching) await attaching.catch(() => {});
        }
      } finally {
        draining = false;
      }
    };

    return {
      onFrame: (header: unknown, payload: Buffer, owned: boolean) => {
        queue.push({ header, payload, owned });
        void pump().catch(crash);
      },
      onClose: async () => {
        ended = true;
        if (jobId) {
          const set = this.sessions.get(jobId);
          set?.delete(entry);
          if (set && set.size === 0) this.sessions.delete(jobId);
        }
        if (session) {
          try {
            await session.close();
          } finally {
            session.repo.release();
          }
        }
      },
    };
  }

  /** Whether sshd's auth info shows a live credential of this running job (attach's first check). */
  private async authenticatedFor(jobId: string, authInfo: string): Promise<boolean> {
    const job = await findJob(this.deps.db, jobId);
    if (!job || job.state !== 'running') return false;
    const creds = await this.deps.db.select().from(jobCredentialsTable).where(eq(jobCredentialsTable.jobId, job.id));
    const offered = authInfoFingerprints(authInfo);
    return creds.some((c) => offered.includes(c.fingerprint) && !c.revokedAt && c.expiresAt >= new Date());
  }

  /**
   * Binds a proxy connection to its job: the job must be running, the key that authenticated
   * (sshd's ExposeAuthInfo) must be the job's live credential, and the repository path the
   * client asked for must be this job's. Then opens the repository and builds the session.
   */
  private async attach(req: Extract<ProxyRequest, { t: 'attach' }>, entry: { session?: Session; abort: (r: string) => void }) {
    const { db, config, masterKey, log } = this.deps;
    const job = await findJob(db, req.jobId);
    if (!job || job.state !== 'running' || !job.clientId || !job.archiveName) throw new SessionError('PathNotAllowed', 'no such running job');
    if (!(await this.authenticatedFor(job.id, req.authInfo))) throw new PolicyViolation('credential-mismatch', 'the session was not authenticated with this job’s live credential');
    const wanted = req.path.replace(/\/+$/, '');
    if (wanted !== `/${job.id}`) {
      const other = /^\/([0-9a-f-]{36})$/.exec(wanted)?.[1];
      throw new PolicyViolation(other ? 'wrong-job' : 'wrong-path', other ? `the credential of job ${job.id} was used to open job ${other}` : `open of ${JSON.stringify(req.path.slice(0, 200))}`);
    }
    const state = this.readJobState(job.id);
    if (!state) throw new SessionError('PathNotAllowed', 'the job is not prepared');
    const keyRow = (await db.select().from(jobKeysTable).where(eq(jobKeysTable.jobId, job.id)))[0];
    if (!keyRow) throw new SessionError('PathNotAllowed', 'the job has no key');
    const secrets = JSON.parse(masterKey.openText(keyRow.keySealed, jobKeyContext(job.id))) as { keyText: string; passphrase: string };
    const jobKey: BorgKey = loadKey(secrets.keyText, secrets.passphrase, asKeyType(keyRow.keyType));

    // At most one proxy session per job: a second one waits for the first to end (a restarted borg).
    for (let i = 0; i < 120 && this.hasLiveSession(job.id); i++) await new Promise((r) => setTimeout(r, 500));
    if (this.hasLiveSession(job.id)) throw new SessionError('LockTimeout', 'another session of this job is still open');

    const handedPath = join(jobServerDir(config, job.id), 'handed.idx');
    const ctx: JobContext = {
      jobId: job.id,
      clientId: job.clientId,
      repositoryId: job.repositoryId,
      archiveName: Buffer.from(job.archiveName, 'utf8').toString('latin1'),
      jobKey,
      handed: existsSync(handedPath) ? decodeRefs(readFileSync(handedPath)) : new Map<string, RefEntry>(),
      servedManifest: Buffer.from(state.servedManifest, 'base64'),
      idMap: new Map(Object.entries(state.idMap)),
      putLogPath: join(jobServerDir(config, job.id), 'puts.log'),
    };
    const repo = await this.repository(job.repositoryId);
    const up = await repo.acquire();
    // Archives this job already committed (checkpoints of an earlier borg run) are the client's
    // own: its cache knows their chunks, so it may reference them without uploading them again.
    for (const realHex of ctx.idMap.values()) {
      for (const [h, e] of repo.chunks.readArchiveIndex(realHex) ?? []) if (!ctx.handed.has(h)) ctx.handed.set(h, e);
    }
    let session: Session;
    try {
      // Re-checked after the last await, so two racing attaches cannot both pass.
      if (this.hasLiveSession(job.id)) throw new SessionError('LockTimeout', 'another session of this job is still open');
      session = new Session(ctx, repo, up, this.pool, this.sessionHooks(job.id), log.child({ job: job.id }));
    } catch (err) {
      repo.release();
      throw err;
    }
    let set = this.sessions.get(job.id);
    if (!set) this.sessions.set(job.id, (set = new Set()));
    set.add(entry);
    repo.sessions.add(session);
    log.info({ job: job.id, repository: repo.info.name }, 'proxy session attached');
    return {
      session,
      result: {
        keyText: secrets.keyText,
        repoId: state.fakeRepoId,
      },
    };
  }

  private sessionHooks(jobId: string): SessionHooks {
    return {
      saveJobState: (ctx) => {
        const st = this.readJobState(jobId);
        if (!st) return;
        this.writeJobState(jobId, { ...st, servedManifest: ctx.servedManifest.toString('base64'), idMap: Object.fromEntries(ctx.idMap) });
      },
      stats: this.jobStats(jobId),
      allocateJobNonce: (blocks) => this.allocateJobNonce(jobId, blocks),
    };
  }

  // ---- job-key counters (BORG_PROTOCOL.md §9.3: answered here, never forwarded) ---------------------

  private nonceLocks = new Map<string, Promise<unknown>>();

  private serialize<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.nonceLocks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.nonceLocks.set(key, next.catch(() => {}));
    return next;
  }

  private allocateJobNonce(jobId: string, blocks: bigint): Promise<bigint> {
    return this.serialize(jobId, async () => {
      const row = (await this.deps.db.select({ n: jobKeysTable.nextNonce }).from(jobKeysTable).where(eq(jobKeysTable.jobId, jobId)))[0];
      if (!row) throw new SessionError('Exception', 'job key is gone');
      await this.deps.db.update(jobKeysTable).set({ nextNonce: row.n + blocks, updatedAt: new Date() }).where(eq(jobKeysTable.jobId, jobId));
      return row.n;
    });
  }

  private jobNonce(jobId: string, req: Extract<ProxyRequest, { t: 'nonce' }>) {
    return this.serialize(jobId, async () => {
      const row = (await this.deps.db.select({ n: jobKeysTable.nextNonce }).from(jobKeysTable).where(eq(jobKeysTable.jobId, jobId)))[0];
      if (!row) throw new SessionError('Exception', 'job key is gone');
      if (req.op === 'get') return { int: row.n.toString() };
      if (req.next === undefined) throw new SessionError('TypeError', 'commit_nonce_reservation without next_unreserved');
      // RepositoryServer.commit_nonce_reservation: the caller must have seen the current value.
      if (req.start != null && BigInt(req.start) !== row.n) throw new SessionError('Exception', 'nonce space reservation with mismatched previous state');
      const next = BigInt(req.next);
      if (next < row.n) throw new SessionError('Exception', 'nonce reservation goes backwards');
      await this.deps.db.update(jobKeysTable).set({ nextNonce: next, updatedAt: new Date() }).where(eq(jobKeysTable.jobId, jobId));
      return null;
    });
  }

  // ---- job state files ----------------------------------------------------------------------------

  readJobState(jobId: string): JobStateFile | undefined {
    const p = join(jobServerDir(this.deps.config, jobId), 'state.json');
    if (!existsSync(p)) return undefined;
    return JSON.parse(readFileSync(p, 'utf8')) as JobStateFile;
  }

  writeJobState(jobId: string, st: JobStateFile) {
    const p = join(jobServerDir(this.deps.config, jobId), 'state.json');
    writeFileSync(`${p}.tmp`, JSON.stringify(st), { mode: 0o600 });
    renameSync(`${p}.tmp`, p);
  }

  // ---- control socket (admin leases) ----------------------------------------------------------------

  private onControlConnection(sock: Socket) {
    const decoder = new FrameDecoder(64 * 1024);
    sock.on('error', () => {});
    let release: (() => void) | undefined;
    // A requester that goes away while it waits leaves the queue (see RepositoryHandle.exclusive).
    const gone = new AbortController();
    sock.on('close', () => {
      gone.abort();
      release?.();
    });
    sock.on('data', (chunk: Buffer) => {
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      for (const f of frames) {
        const h = f.header as { t?: unknown; repositoryId?: unknown };
        if (h.t !== 'lease' || typeof h.repositoryId !== 'string' || release) {
          sock.destroy();
          return;
        }
        const repositoryId = h.repositoryId;
        void this.repository(repositoryId).then(
          (repo) =>
            repo
              .exclusive(
                () =>
                  new Promise<void>((resolve) => {
                    release = resolve;
                    if (sock.destroyed) resolve();
                    else sock.write(frameBytes({ t: 'granted' }));
                  }),
                gone.signal,
              )
              .catch(() => sock.destroy()),
          (err: Error) => sock.end(frameBytes({ t: 'error', message: err.message })),
        );
      }
    });
  }
}

/** Fingerprints of the public keys listed in sshd's ExposeAuthInfo file ("publickey TYPE B64"). */
export function authInfoFingerprints(authInfo: string): string[] {
  const out: string[] = [];
  for (const line of authInfo.split('\n')) {
    const m = /^publickey \S+ ([A-Za-z0-9+/=]+)/.exec(line.trim());
    if (m) out.push(fingerprintOfBlob(Buffer.from(m[1]!, 'base64')));
  }
  return out;
}

function frameBytes(header: unknown): Buffer {
  return Buffer.concat(encodeFrame(header));
}
