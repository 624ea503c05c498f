// One repository as the repository service holds it (DESIGN.md §5): the single upstream
// `borg serve` session (it owns the exclusive lock), the committed real manifest, the real key's
// nonce reservations, the chunk indexes, and the mutex that serializes manifest merges + commits.
// The upstream is opened when the first user needs it and closed when idle, so that server-side
// borg commands (prune, compact, check, the admin CLI) can take the lock in between.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../infra/logger.js';
import { decryptUnchecked, encryptObject, idHash, MANIFEST_ID } from '../borg/objects.js';
import { compressNone } from '../borg/compression.js';
import type { BorgKey } from '../borg/keys.js';
import { packManifest, parseManifest, type Manifest, type ManifestArchive } from '../borg/manifest.js';
import { asBytes } from '../borg/msgpack.js';
import { blocksFor, RealNonces } from './nonces.js';
import { Mutex, untilAborted } from './mutex.js';
import { nextTimestamp } from '../borg/timestamps.js';
import { nonceCalls, Upstream, UpstreamError } from './upstream.js';
import { ChunkStore } from './chunk-store.js';
import { ItemsCache } from './items-cache.js';
import { JobHolds } from './job-holds.js';
import type { CryptoPool } from './crypto-pool.js';

export interface RepositoryInfo {
  id: string;
  name: string;
  path: string;
  /** Borg repository id (hex). */
  borgId: string;
}

export interface CommittedManifest {
  plaintext: Buffer;
  parsed: Manifest;
  /** The stored object, kept to undo an uncommitted manifest write by writing it back. */
  object: Buffer;
}

export interface RepositoryDeps {
  borgPath: string;
  stateDir: string;
  log: Logger;
  pool: CryptoPool;
  /** Seconds to wait for the repository lock when opening. */
  lockWait?: number;
  /** How long an unused upstream session stays open. */
  idleCloseMs?: number;
  /** Longest a job keeps the unused upstream open between its prepare and its cleanup (holdFor). */
  holdMs?: number;
  /**
   * How long a started, not yet opened `borg serve` waits for the next open after the upstream
   * closed (0: none). Starting borg's Python costs 0.3–0.8 CPU-s, which otherwise a job under way
   * pays again (in wall time too) when an exclusive operation closed the upstream in between.
   */
  spareTtlMs?: number;
  /** Shared by the service's repositories (keys carry the repository id); a handle's own if absent. */
  itemsCache?: ItemsCache;
}

/** Most bytes a put may decompress to (borg's own chunks are at most ~20 MiB). */
export const MAX_PLAINTEXT = 64 * 1024 * 1024;
/**
 * Parsed items chunks kept (by one repository service, all repositories together): 32 bytes per
 * referenced chunk, so the item streams of about two million files.
 */
export const ITEMS_CACHE_BYTES = 64 * 1024 * 1024;

/** What the repository needs to know of a live proxy session (sessions/policy.ts JobSession extends it). */
export interface LiveSession {
  readonly jobId: string;
  /** Ids being verified right now (claimed before any await). */
  readonly claims: { has(idHex: string): boolean };
  /** Ids stored by the session. */
  readonly puts: { has(idHex: string): boolean; keys(): Iterable<string> };
  readonly upstreamLost?: boolean; // its borg serve ended: what it stored uncommitted went with it
  /** Appends stored ids to the job's put log, durably. */
  logPuts(): void;
}

const COMMIT_ARGS = { save_space: false, compact: false, threshold: 0.1, cleanup_commits: false };

export class RepositoryHandle {
  readonly nonces: RealNonces;
  readonly commitLock = new Mutex();
  readonly chunks: ChunkStore;
  /** Live proxy sessions on this repository. */
  readonly sessions = new Set<LiveSession>();
  /** What each items chunk held when an archive was last checked (sessions/backup-archive.ts). */
  readonly itemsCache: ItemsCache;

  private upstream: Upstream | undefined;
  /** A started `borg serve` without an open repository (no lock), ready for the next open. */
  private spare: { up: Promise<Upstream>; timer: NodeJS.Timeout } | undefined;
  private opening: Promise<Upstream> | undefined;
  private users = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly holds = new JobHolds();
  private manifestState: CommittedManifest | undefined;
  /** Set while an exclusive operation (prune, check, admin borg) runs or waits for users to leave. */
  private exclusiveWaiters: Array<() => void> = [];
  private exclusiveTail: Promise<void> = Promise.resolve();
  private exclusiveActive = false;
  private drainWaiters: Array<() => void> = [];
  onDrainWait: (() => void) | undefined; // while an exclusive operation waits for users to leave
  /** Fired when the upstream dies unexpectedly: sessions of this repository must end. */
  onUpstreamLost: ((err: Error) => void) | undefined;

  constructor(
    readonly info: RepositoryInfo,
    readonly key: BorgKey,
    private readonly deps: RepositoryDeps,
  ) {
    mkdirSync(deps.stateDir, { recursive: true, mode: 0o700 });
    this.itemsCache = deps.itemsCache ?? new ItemsCache(ITEMS_CACHE_BYTES);
    this.nonces = new RealNonces(join(deps.stateDir, 'nonce'), undefined);
    this.chunks = new ChunkStore(join(deps.stateDir, 'chunks'), deps.log);
    deps.pool.registerKey(this.keyRef, key);
  }

  get keyRef() {
    return `repo:${this.info.id}`;
  }

  get manifest(): CommittedManifest {
    if (!this.manifestState) throw new Error('repository is not open');
    return this.manifestState;
  }

  /** Takes a share of the upstream (opening it if needed); waits while an exclusive operation runs or waits. */
  async acquire(signal?: AbortSignal): Promise<Upstream> {
    while (this.exclusiveActive || this.exclusiveWaiters.length > 0) await untilAborted(this.exclusiveTail, signal);
    if (signal?.aborted) throw new Error('the request was given up');
    this.users++;
    clearTimeout(this.idleTimer);
    try {
      return await this.open();
    } catch (err) {
      this.release();
      throw err;
    }
  }

  release() {
    this.users--;
    if (this.users > 0) return;
    for (const w of this.drainWaiters.splice(0)) w();
    this.scheduleIdleClose();
  }

  /**
   * Keeps the upstream open from the job's prepare to its cleanup, idle while the job's files reach
   * its client: closing it there cost every job a second and (the spare) a third `borg serve`, each
   * 0.3–0.8 CPU-s of Python start-up. No share: an exclusive operation closes it all the same.
   */
  holdFor(jobId: string) {
    this.holds.hold(jobId, this.deps.holdMs ?? 15 * 60_000);
  }

  /** The job is done with the repository: the upstream closes once idle as usual. */
  endHold(jobId: string) {
    if (this.holds.end(jobId)) this.scheduleIdleClose();
  }

  private scheduleIdleClose() {
    clearTimeout(this.idleTimer);
    if (!this.upstream || this.exclusiveActive || this.users > 0) return;
    const delay = Math.max(this.deps.idleCloseMs ?? 5000, this.holds.lastUntil() - Date.now());
    this.idleTimer = setTimeout(() => {
      if (this.users > 0) return;
      if (this.holds.lastUntil() > Date.now()) this.scheduleIdleClose();
      else void this.closeUpstream();
    }, delay);
    this.idleTimer.unref();
  }

  async use<T>(fn: (up: Upstream) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const up = await this.acquire(signal);
    try {
      return await fn(up);
    } finally {
      this.release();
    }
  }

  /**
   * Runs `fn` with the repository lock free for a borg command of the server (prune, compact,
   * check, admin CLI): new users wait, current ones finish, the upstream closes; afterwards the
   * next user reopens it and reloads the manifest.
   */
  async exclusive<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    const prev = this.exclusiveTail;
    this.exclusiveTail = prev.then(() => mine);
    this.exclusiveWaiters.push(done);
    // Until it runs, a waiting exclusive holds back every new user of the repository (so that
    // sessions cannot starve it): one whose requester has gone away must leave the queue at
    // once, or new jobs wait for the running ones to end for nothing.
    try {
      await untilAborted(prev, signal);
      while (this.users > 0) {
        this.onDrainWait?.();
        await untilAborted(new Promise<void>((r) => (this.drainWaiters.push(r), setTimeout(r, 1000).unref())), signal);
      }
    } catch (err) {
      this.exclusiveWaiters.splice(this.exclusiveWaiters.indexOf(done), 1);
      done();
      throw err;
    }
    try {
      this.exclusiveActive = true;
      await this.closeUpstream();
      return await fn();
    } finally {
      this.exclusiveActive = false;
      this.exclusiveWaiters.splice(this.exclusiveWaiters.indexOf(done), 1);
      this.manifestState = undefined;
      done();
    }
  }

  private async open(): Promise<Upstream> {
    if (this.upstream && !this.upstream.isClosed) return this.upstream;
    this.opening ??= this.doOpen().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async doOpen(): Promise<Upstream> {
    const up = await this.startUpstream();
    try {
      await up.openRepository();
      if (up.repoId !== this.info.borgId) throw new Error(`${this.info.path} holds borg repository ${up.repoId}, expected ${this.info.borgId}`);
      const object = asBytes(await up.call('get', { id: MANIFEST_ID }), 'manifest');
      const dec = await decryptUnchecked(this.key, object, { maxOutput: MAX_PLAINTEXT });
      const parsed = parseManifest(this.key, dec.data);
      this.manifestState = { plaintext: dec.data, parsed, object };
      this.nonces.attach(nonceCalls(up), (dec.iv ?? 0n) + blocksFor(object.length));
      await this.chunks.sync(parsed.archives, (archiveId) => this.readArchiveRefs(up, archiveId));
      this.upstream = up;
      void up.exited.then(() => {
        if (this.upstream === up) {
          this.upstream = undefined;
          this.nonces.detach();
          this.manifestState = undefined;
          if (!this.closingOnPurpose) this.onUpstreamLost?.(new Error(`borg serve for ${this.info.name} ended`));
        }
      });
      this.deps.log.info({ repository: this.info.name, archives: parsed.archives.size }, 'repository opened');
      return up;
    } catch (err) {
      await up.close();
      throw err;
    }
  }

  private closingOnPurpose = false;

  private upstreamOptions() {
    return { borgPath: this.deps.borgPath, repoPath: this.info.path, lockWait: this.deps.lockWait ?? 60, log: this.deps.log };
  }

  /** The spare if it is still alive, a freshly started `borg serve` otherwise. */
  private async startUpstream(): Promise<Upstream> {
    const spare = this.spare;
    this.spare = undefined;
    if (spare) {
      clearTimeout(spare.timer);
      const up = await spare.up.catch(() => undefined);
      if (up && !up.isClosed) return up;
    }
    return Upstream.start(this.upstreamOptions());
  }

  private startSpare() {
    const ttl = this.deps.spareTtlMs ?? 10 * 60_000;
    if (ttl <= 0 || this.spare || this.shutDown) return;
    // Only a job under way is sure to open it again soon; after an idle close a spare mostly died unused.
    if (this.holds.lastUntil() === 0) return;
    const up = Upstream.start(this.upstreamOptions());
    // A spare that fails to start is simply not there; the next open starts borg itself and
    // reports what went wrong.
    up.catch((err: Error) => this.deps.log.debug({ repository: this.info.name, err: err.message }, 'spare borg serve did not start'));
    const timer = setTimeout(() => {
      if (this.spare?.up !== up) return;
      this.spare = undefined;
      void up.then((u) => u.close()).catch(() => {});
    }, ttl);
    timer.unref();
    this.spare = { up, timer };
  }

  private async closeSpare() {
    const spare = this.spare;
    this.spare = undefined;
    if (!spare) return;
    clearTimeout(spare.timer);
    await spare.up.then((u) => u.close()).catch(() => {});
  }

  private async closeUpstream() {
    const up = this.upstream;
    if (!up) return;
    this.closingOnPurpose = true;
    try {
      await up.close();
    } finally {
      this.closingOnPurpose = false;
      if (this.upstream === up) {
        this.upstream = undefined;
        this.nonces.detach();
      }
    }
    this.deps.log.debug({ repository: this.info.name }, 'repository closed');
    this.startSpare();
  }

  private shutDown = false;

  async shutdown() {
    this.shutDown = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    await this.closeUpstream();
    await this.closeSpare();
  }

  /** Reads and decrypts an object with the real key (ids are checked). */
  async readObject(up: Upstream, id: Buffer): Promise<{ plaintext: Buffer; csize: number }> {
    const obj = asBytes(await up.call('get', { id }), 'object');
    const dec = await decryptUnchecked(this.key, obj, { maxOutput: MAX_PLAINTEXT });
    if (!idHash(this.key, dec.data).equals(id)) throw new UpstreamError('IntegrityError', `object ${id.toString('hex')} does not match its id`);
    return { plaintext: dec.data, csize: obj.length };
  }

  /** Encrypts a plaintext with the real key (uncompressed payload) under a fresh counter. */
  async sealObject(plaintext: Buffer): Promise<Buffer> {
    const payload = compressNone(plaintext);
    const iv = await this.nonces.allocate(payload.length);
    return encryptObject(this.key, payload, iv);
  }

  /** Writes a new real manifest (server time, real-key TAM); the caller holds commitLock and commits. */
  async writeManifest(up: Upstream, archives: ReadonlyMap<string, ManifestArchive>): Promise<CommittedManifest> {
    const prev = this.manifest.parsed;
    const plaintext = packManifest(this.key, { archives, timestamp: nextTimestamp(prev.timestamp), config: prev.config, itemKeys: prev.itemKeys.length ? prev.itemKeys : undefined });
    const object = await this.sealObject(plaintext);
    await up.call('put', { id: MANIFEST_ID, data: object });
    return { plaintext, parsed: parseManifest(this.key, plaintext), object };
  }

  /**
   * Commits the upstream transaction. It holds every session's uncommitted puts, so each live
   * session's put log is made durable first: a crash after this commit must still let cleanup
   * find what a failed job left behind.
   */
  async commit(up: Upstream): Promise<void> {
    for (const s of this.sessions) s.logPuts();
    await up.commit(COMMIT_ARGS);
  }

  /**
   * Whether a live session stored the object (committed or not): a put of it need not be written
   * again. Asked of the sessions themselves rather than kept in a repository-wide set, which grew
   * with every put of every session and outlived sessions whose objects were rolled back.
   */
  storedByLiveSession(idHex: string): boolean {
    for (const s of this.sessions) if (s.puts.has(idHex) && !s.upstreamLost) return true;
    return false;
  }

  /** Whether a live session of another job stored or is verifying the object: a cleanup must leave it. */
  claimedByOthers(idHex: string, exceptJobId: string): boolean {
    for (const s of this.sessions) if (s.jobId !== exceptJobId && (s.claims.has(idHex) || s.puts.has(idHex))) return true;
    return false;
  }

  /**
   * Ends borg serve without a commit, as after its crash: the transaction it holds — every live
   * session's uncommitted puts, on a full disk perhaps a segment written halfway — goes with it
   * (borg deletes the uncommitted segments when the next transaction starts), and the sessions of
   * this repository end through onUpstreamLost, so none counts on what was discarded.
   */
  async discardTransaction(reason: string): Promise<void> {
    const up = this.upstream;
    if (!up || up.isClosed) return;
    this.deps.log.warn({ repository: this.info.name, reason }, 'discarding the uncommitted transaction');
    await up.close();
  }

  /** After a successful upstream commit that included `m`. */
  setCommittedManifest(m: CommittedManifest) {
    this.manifestState = m;
  }

  /** Every chunk an archive references, with sizes (for the per-archive chunk index). */
  async readArchiveRefs(up: Upstream, archiveId: Buffer) {
    const { readArchiveChunkRefs } = await import('./archive-refs.js');
    return readArchiveChunkRefs((id) => this.readObject(up, id), this.key, archiveId);
  }
}
