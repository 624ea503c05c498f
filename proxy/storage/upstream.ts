// The repository service's RPC client for one `borg serve` (BORG_PROTOCOL.md §1): legacy
// negotiate, then dict requests; borg serve answers strictly in order, so replies are matched by
// msgid in a FIFO. One Upstream holds the repository's exclusive lock while it is open (§7).
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../../infra/logger.js';
import { baseEnv } from '../../infra/subprocess.js';
import { LIMITS, Unpacker, packParts, type Packable, type Value } from '../borg/msgpack.js';
import { encodeNegotiate, parseReply } from '../borg/rpc.js';
import { writeCoalesced } from '../protocol/frames.js';
import type { NonceUpstream } from './nonces.js';

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    /** Python exception class name from borg serve, e.g. ObjectNotFound, LockTimeout. */
    readonly cls: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The text of borg serve's error reply: its first argument, or the short form. Borg's
 * InsufficientFreeSpaceError carries only its two figures (required, available), which alone
 * would say nothing: its message is rebuilt as borg words it (repository.py).
 */
export function upstreamErrorText(cls: string, args: readonly unknown[], short: readonly unknown[]): string {
  const str = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('utf8') : typeof v === 'string' ? v : undefined);
  const [first, second] = args.map(str);
  if (cls === 'InsufficientFreeSpaceError' && first !== undefined && second !== undefined) return `Insufficient free space to complete transaction (required: ${first}, available: ${second}).`;
  return Buffer.isBuffer(args[0]) ? args[0].toString('utf8') : short.map((s) => (Buffer.isBuffer(s) ? s.toString('utf8') : '')).join(' ');
}

export class UpstreamClosedError extends Error {
  override name = 'UpstreamClosedError';
}

interface Pending {
  msgid: number;
  method: string;
  resolve: (v: Value) => void;
  reject: (e: Error) => void;
}

export interface UpstreamOptions {
  borgPath: string;
  repoPath: string;
  /** Seconds to wait for the repository lock (another writer, an admin command). */
  lockWait: number;
  log: Logger;
  /** Run borg serve as this account (a root process acting for the storage account). */
  runAs?: { uid: number; gid: number };
}

export class Upstream {
  private msgid = 0;
  private readonly pending: Pending[] = [];
  private readonly unpacker = new Unpacker(LIMITS.client);
  private closed = false;
  private exitPromise: Promise<void>;
  private stderrTail: string[] = [];
  /** The repository id returned by `open` (hex). */
  repoId = '';

  private constructor(
    private readonly child: ChildProcess,
    private readonly opts: UpstreamOptions,
  ) {
    this.exitPromise = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.failAll(new UpstreamClosedError(`borg serve for ${opts.repoPath} exited (${signal ?? code})${this.stderrTail.length ? `: ${this.stderrTail.at(-1)}` : ''}`));
        resolve();
      });
    });
    child.on('error', (err) => this.failAll(new UpstreamClosedError(`borg serve: ${err.message}`)));
    child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
    child.stderr!.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        this.stderrTail.push(line.slice(0, 500));
        if (this.stderrTail.length > 20) this.stderrTail.shift();
        opts.log.debug({ repo: opts.repoPath, line: line.slice(0, 500) }, 'borg serve');
      }
    });
    child.stdin!.on('error', (err) => this.failAll(new UpstreamClosedError(`borg serve stdin: ${err.message}`)));
  }

  /**
   * Starts `borg serve` and negotiates, without opening the repository: no lock is taken, so
   * such a process can wait as a spare while others use the repository.
   */
  static async start(opts: UpstreamOptions): Promise<Upstream> {
    const child = spawn(opts.borgPath, ['serve', '--restrict-to-repository', opts.repoPath], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: baseEnv({ HOME: opts.runAs ? '/nonexistent' : (process.env.HOME ?? '/nonexistent') }),
      ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
    });
    const up = new Upstream(child, opts);
    try {
      await up.sendRaw([encodeNegotiate(++up.msgid)], 'negotiate');
      return up;
    } catch (err) {
      await up.close();
      throw err;
    }
  }

  /** Opens the repository of a started upstream, with the exclusive lock. */
  async openRepository(): Promise<void> {
    if (this.repoId) throw new Error(`${this.opts.repoPath} is open already`);
    const id = await this.call('open', {
      path: this.opts.repoPath,
      create: false,
      lock_wait: this.opts.lockWait,
      lock: true,
      exclusive: true,
      append_only: false,
      make_parent_dirs: false,
    });
    if (!Buffer.isBuffer(id) || id.length !== 32) throw new UpstreamError('ProtocolError', 'open returned no repository id');
    this.repoId = id.toString('hex');
  }

  get isClosed() {
    return this.closed;
  }

  /** Resolves when borg serve has exited. */
  get exited() {
    return this.exitPromise;
  }

  /** A dict-format call (BORG_PROTOCOL.md §1.3). */
  call(method: string, args: Record<string, Packable> = {}): Promise<Value> {
    if (method === 'put' || method === 'delete') this.writesSent++;
    // Keys in the order i, m, a (§1.3); large object data stays a zero-copy part of the message.
    return this.sendRaw(packParts(new Map<string, Packable>([['i', ++this.msgid], ['m', method], ['a', args]])), method);
  }

  /** Puts and deletes sent, and how many of them the last successful commit covered. */
  private writesSent = 0;
  private writesCommitted = 0;

  /**
   * Commits the transaction, if there is one: borg 1.2.4 fails a commit with nothing written
   * since the last (its index is None then: `'NoneType' object has no attribute 'size'`), which
   * ended the session of a client that committed twice. borg serve handles calls in order, so
   * the writes sent before this commit are the ones it covers.
   */
  async commit(args: Record<string, Packable>): Promise<void> {
    const covers = this.writesSent;
    if (covers === this.writesCommitted) return;
    await this.call('commit', args);
    this.writesCommitted = Math.max(this.writesCommitted, covers);
  }

  private sendRaw(parts: Buffer[], method: string): Promise<Value> {
    if (this.closed) return Promise.reject(new UpstreamClosedError(`borg serve for ${this.opts.repoPath} is closed`));
    const msgid = this.msgid;
    return new Promise((resolve, reject) => {
      this.pending.push({ msgid, method, resolve, reject });
      writeCoalesced(this.child.stdin!, parts);
    });
  }

  private onData(chunk: Buffer) {
    try {
      this.unpacker.feed(chunk);
      for (let msg = this.unpacker.next(); msg !== undefined; msg = this.unpacker.next()) this.onMessage(msg);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'unreadable reply from borg serve');
      this.kill();
    }
  }

  private onMessage(msg: Value) {
    const p = this.pending.shift();
    if (!p) {
      this.opts.log.error('borg serve sent an unexpected message');
      this.kill();
      return;
    }
    let r;
    try {
      r = parseReply(msg);
    } catch (err) {
      p.reject(new UpstreamError('ProtocolError', (err as Error).message));
      this.kill();
      return;
    }
    if (r.msgid !== p.msgid) {
      p.reject(new UpstreamError('ProtocolError', `reply for msgid ${r.msgid} while waiting for ${p.msgid}`));
      this.kill();
      return;
    }
    if (r.ok) return p.resolve(r.result);
    p.reject(new UpstreamError(r.error.exceptionClass, `${p.method}: ${upstreamErrorText(r.error.exceptionClass, r.error.args, r.error.short) || 'failed'}`));
  }

  private failAll(err: Error) {
    this.closed = true;
    for (const p of this.pending.splice(0)) p.reject(err);
  }

  private kill() {
    this.failAll(new UpstreamClosedError('borg serve protocol error'));
    this.child.kill('SIGKILL');
  }

  /** Closes stdin (borg serve then closes the repository and releases the lock) and waits. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.child.stdin!.end();
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await this.exitPromise;
    clearTimeout(timer);
  }
}

/** Deletes an object that may be gone already; true when it was there. */
export async function deleteIfPresent(up: Upstream, id: Buffer): Promise<boolean> {
  try {
    await up.call('delete', { id });
    return true;
  } catch (err) {
    if (!(err instanceof UpstreamError && err.cls === 'ObjectNotFound')) throw err;
    return false;
  }
}

/** borg serve's calls that reserve AES-CTR nonces (RealNonces, nonces.ts), through `up`. */
export function nonceCalls(up: Upstream): NonceUpstream {
  return {
    getFreeNonce: async () => intOrNull(await up.call('get_free_nonce')),
    commitNonceReservation: async (next, start) => {
      await up.call('commit_nonce_reservation', { next_unreserved: next, start_nonce: start });
    },
  };
}

function intOrNull(v: Value): bigint | null {
  if (v === null) return null;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'bigint') return v;
  throw new UpstreamError('ProtocolError', 'get_free_nonce returned no integer');
}
