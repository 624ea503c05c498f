// A restore job's session (DESIGN.md §3, §4.2; issue 20 point 4): read-only. The client may read
// its fake manifest, the archive being restored (re-signed with the job key at prepare time,
// served under that object's id) and the objects listed in the job's allowed.ids — the archive's
// items chunks and the data chunks of the selected paths (prepare-restore.ts). Each is read from
// the repository's segment files (segment-reader.ts; through `borg serve` when they cannot say),
// decrypted with the real key and its compressed payload handed on unchanged under the job key:
// as it is for an `authenticated` one (what the restore workflow asks for; job-key.ts says why),
// encrypted again for an AES key file (crypto pool, `reseal`). Any other get, and every write, is
// a violation.
//
// Of the operations the forced command forwards, `borg extract` uses only get (the manifest is a
// get of id 0). `rollback` is allowed as a no-op: borg's RemoteRepository calls it whenever the
// command ends on an exception (a full disk, a cancelled job, a refused get), and such an ending
// is no attack; there is nothing to roll back. `nonce` is refused: extract encrypts nothing.
import { readFileSync } from 'node:fs';
import type { Logger } from '../../../infra/logger.js';
import { compressNone } from '../../borg/compression.js';
import { asBytes } from '../../borg/msgpack.js';
import { isEncrypted } from '../../borg/keys.js';
import { AES_OVERHEAD, blocksUsed, encryptObject } from '../../borg/objects.js';
import type { CryptoPool } from '../crypto-pool.js';
import { IdFile } from '../id-set.js';
import type { OpenedJobKey } from '../job-key.js';
import { allowedIdsPath, readJobState, servedArchivePath } from '../job-state.js';
import type { RepositoryHandle } from '../repository.js';
import { SegmentReader } from '../segment-reader.js';
import { PolicyViolation, SessionError } from './errors.js';
import type { JobSession, SessionHooks, SessionOpening, SessionOperation, SessionPolicy } from './policy.js';

const restoreOperations: ReadonlySet<SessionOperation> = new Set(['getManifest', 'get', 'rollback']);

/** AES job keys only: counter blocks reserved at a time (one database write per 256 MiB served, not one per get). */
const NONCE_RESERVATION = 1n << 24n;
/**
 * Objects read and being resealed at once for one session, from the segment files or borg serve
 * (borg preloads up to 100 gets, a hostile client up to the proxy's 1,024): bounds the memory a
 * client's pipelined gets of 20 MiB objects hold, and keeps borg serve's next read queued while
 * replies travel.
 */
const READS_IN_FLIGHT = 16;
/** How long after a failed open of the segment reader the next get tries again. */
const REOPEN_MS = 5000;

export const restorePolicy: SessionPolicy = {
  allows: restoreOperations,
  readOnly: true,
  // archiver.py do_extract: @with_repository(compatibility=…), exclusive left at False
  exclusive: false,
  refuses: (job) => (job.kind !== 'restore' || !job.restore || !job.clientId ? 'no such running job' : undefined),
  open: (o) => new RestoreSession(o),
};

export class RestoreSession implements JobSession {
  readonly repo: RepositoryHandle;
  readonly jobId: string;
  /** A restore stores nothing: nothing to claim, log or sweep. */
  readonly claims: ReadonlySet<string> = new Set();
  readonly puts: ReadonlyMap<string, unknown> = new Map();
  private readonly jobKey: OpenedJobKey;
  private readonly pool: CryptoPool;
  private readonly hooks: SessionHooks;
  private readonly log: Logger;
  private readonly manifest: Buffer;
  private readonly archiveIdHex: string;
  private readonly archive: Buffer;
  private allowed: IdFile;
  private readonly allowedPath: string;
  /** The selection is still walked: allowed.ids is empty until then (prepare-restore.ts). */
  private selecting: boolean;
  private reading = 0;
  /** Gets waiting for one of the READS_IN_FLIGHT reads to end, in arrival order. */
  private readonly readWaiters: Array<() => void> = [];
  private nonceNext = 0n;
  private nonceEnd = 0n;
  private nextReservation: Promise<{ start: bigint; end: bigint }> | undefined;
  /** Reads objects from the segment files (undefined: not open, the gets go through borg serve). */
  private reader: SegmentReader | undefined;
  private readerRetryAt = 0;
  private closed = false;

  constructor(o: SessionOpening) {
    this.repo = o.repo;
    this.jobId = o.job.id;
    this.jobKey = o.jobKey;
    this.pool = o.pool;
    this.hooks = o.hooks;
    this.log = o.log.child({ job: o.job.id });
    // The job's files read again, here, in one synchronous go: a new round of the job writes its
    // state, served archive and empty allowed.ids without a turn of the event loop in between
    // (prepare-restore.ts), so what is read belongs to one round; attach's copy may be older.
    const st = readJobState(o.config, o.job.id) ?? o.state;
    this.manifest = Buffer.from(st.servedManifest, 'base64');
    const served = Object.keys(st.idMap);
    if (served.length !== 1) throw new Error('the restore job state names no archive');
    this.archiveIdHex = served[0]!;
    this.archive = readFileSync(servedArchivePath(o.config, o.job.id));
    this.selecting = st.selecting === true;
    this.allowedPath = allowedIdsPath(o.config, o.job.id);
    this.allowed = new IdFile(this.allowedPath);
    o.pool.registerKey(this.jobKeyRef, o.jobKey.key);
  }

  get jobKeyRef() {
    return `job:${this.jobId}`;
  }

  async manifestObject(): Promise<Buffer> {
    return this.jobEncrypt(this.manifest);
  }

  async get(id: Buffer): Promise<Buffer> {
    if (this.closed) throw new Error('the session has ended');
    const hex = id.toString('hex');
    if (hex === this.archiveIdHex) return this.jobEncrypt(this.archive);
    if (!this.allowed.has(id) && !(await this.selectedHas(id))) throw new PolicyViolation('forbidden-get', `get of object ${hex}, which the archive being restored does not hold for the selected paths`);
    const fromSegment = await this.inFlight(async () => {
      const stored = this.openReader()?.read(id);
      // What the segment file gave must also open with the real key; if not, borg serve reads it
      // again and reports any damage its own way.
      const resealed = stored && (await this.reseal(id, stored.object, stored));
      return resealed?.ok ? resealed.object : undefined;
    });
    if (fromSegment) return fromSegment;
    return this.inFlight(async () => {
      const object = asBytes(await this.repo.use((up) => up.call('get', { id })), 'object');
      const r = await this.reseal(id, object);
      if (!r.ok || !r.object) throw new Error(`object ${hex} of the repository does not open with its key: ${r.ok ? 'no result' : r.detail}`);
      return r.object;
    });
  }

  /**
   * Whether the selection, once walked, allows `id`; false at once when it is made already. While
   * it is walked, this get waits for it (a get the selection does not allow is a violation then,
   * as before); a walk that failed or is not running ends this get with an error, not a violation
   * (the restoreSelection activity fails the job with the walk's own message).
   */
  private async selectedHas(id: Buffer): Promise<boolean> {
    if (!this.selecting) return false;
    const walk = this.hooks.restoreSelection();
    const unready = new SessionError('ProxyError', "BorgCube: this restore's selection failed, or is not being made, on the storage host; the job's error says why");
    if (!walk) throw unready;
    try {
      await walk;
    } catch {
      throw unready;
    }
    // The first get to wake opens the new file; a session closed meanwhile opens nothing.
    if (this.closed) throw new Error('the session has ended');
    if (this.selecting) {
      const full = new IdFile(this.allowedPath);
      this.allowed.close();
      this.allowed = full;
      this.selecting = false;
    }
    return this.allowed.has(id);
  }

  /**
   * The segment reader, opened at the first get; after a failed open (logged) it is tried again
   * at most every REOPEN_MS, the gets meanwhile going through borg serve.
   */
  private openReader(): SegmentReader | undefined {
    // A get that was waiting for a slot when the session closed opens nothing that close missed.
    if (this.closed) return undefined;
    if (this.reader === undefined && performance.now() >= this.readerRetryAt) {
      this.reader = SegmentReader.open(this.repo.info.path, this.log);
      if (!this.reader) this.readerRetryAt = performance.now() + REOPEN_MS;
    }
    return this.reader;
  }

  /**
   * `stored`: read from a segment file, so its memory is this get's own (resealed in place), and
   * handed over whole when `owned` (it may move to a crypto thread without a copy).
   */
  private async reseal(id: Buffer, object: Buffer, stored?: { owned: boolean }) {
    if (object.length < AES_OVERHEAD) return { ok: false as const, detail: 'it is too short to be encrypted' };
    const iv = await this.jobNonce(object.length - AES_OVERHEAD);
    return this.pool.reseal({ keyRef: this.repo.keyRef, jobKeyRef: this.jobKeyRef, id, object, iv, transfer: stored?.owned, inPlace: stored !== undefined });
  }

  /**
   * Runs one read of the repository and its reseal, at most READS_IN_FLIGHT at once (the next
   * waiting get starts as soon as any ends, not behind a particular one). The upstream only for
   * the read itself: a tenant's commit waits for no restore's client.
   */
  private async inFlight<T>(read: () => Promise<T>): Promise<T> {
    while (this.reading >= READS_IN_FLIGHT) await new Promise<void>((resolve) => this.readWaiters.push(resolve));
    this.reading++;
    try {
      return await read();
    } finally {
      this.reading--;
      this.readWaiters.shift()?.();
    }
  }

  private async jobEncrypt(plaintext: Buffer): Promise<Buffer> {
    const payload = compressNone(plaintext);
    return encryptObject(this.jobKey.key, payload, await this.jobNonce(payload.length));
  }

  /**
   * The job-key counter for a payload of `length` bytes; none for an authenticated job key. AES
   * job keys (a restore whose workflow or storage host predates authenticated ones) take counters
   * from a reservation of the session's own. The next reservation is taken from the job's row
   * while half of this one is left: every get needs a counter, and waiting for that database write
   * stalled the whole restore (up to half a second here, twice per GB).
   */
  private async jobNonce(length: number): Promise<bigint | undefined> {
    if (!isEncrypted(this.jobKey.key.type)) return undefined;
    const blocks = BigInt(blocksUsed(length));
    while (this.nonceNext + blocks > this.nonceEnd) {
      const next = this.reserve(blocks);
      const r = await next;
      // The first get to wake switches to it; the others find room in it, or reserve again.
      if (this.nextReservation === next) {
        this.nextReservation = undefined;
        this.nonceNext = r.start;
        this.nonceEnd = r.end;
      }
    }
    const n = this.nonceNext;
    this.nonceNext += blocks;
    if (this.nonceEnd - this.nonceNext < NONCE_RESERVATION / 2n) this.reserve(blocks).catch(() => {});
    return n;
  }

  /** The next reservation, asked for once; forgotten if it fails, so that the next get asks again. */
  private reserve(blocks: bigint): Promise<{ start: bigint; end: bigint }> {
    if (this.nextReservation) return this.nextReservation;
    const want = blocks > NONCE_RESERVATION ? blocks : NONCE_RESERVATION;
    const p = this.hooks.allocateJobNonce(want).then((start) => ({ start, end: start + want }));
    this.nextReservation = p;
    p.catch(() => {
      if (this.nextReservation === p) this.nextReservation = undefined;
    });
    return p;
  }

  put(id: Buffer): Promise<void> {
    return Promise.reject(new PolicyViolation('forbidden-put', `put of object ${id.toString('hex')} in a restore`));
  }

  async barrier(): Promise<void> {}

  delete(id: Buffer): void {
    throw new PolicyViolation('forbidden-delete', `delete of object ${id.toString('hex')} in a restore`);
  }

  putManifest(): Promise<void> {
    return Promise.reject(new PolicyViolation('manifest-write', 'a manifest write in a restore'));
  }

  commit(): Promise<void> {
    return Promise.reject(new PolicyViolation('forbidden-method', 'commit in a restore'));
  }

  /** Nothing was written: nothing to undo. */
  async rollback(): Promise<void> {}

  logPuts(): void {}

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.allowed.close();
    this.reader?.close();
    this.pool.forgetKey(this.jobKeyRef);
    this.repo.sessions.delete(this);
    this.log.debug('restore session closed');
    return Promise.resolve();
  }
}
