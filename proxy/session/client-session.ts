// The client-facing half of the proxy (DESIGN.md §4): speaks Borg's RPC on stdin/stdout with the
// client, answers negotiate/open/load_key itself, checks the job-key MAC of every object the client
// sends and decrypts it, and forwards the payload to the repository service, which decides. Every
// method not on the list below is refused and reported. Malformed or oversized input ends the
// session at once; nothing of it is committed.
import type { Readable, Writable } from 'node:stream';
import { writeCoalesced } from '../protocol/frames.js';
import { LIMITS, Unpacker, asBytes, packParts, type Packable, type Value, type ValueMap } from '../borg/msgpack.js';
import { encodeError, encodeLegacyReply, negotiateResult, parseRequest, replyBytesHead } from '../borg/rpc.js';
import type { AttachResult, ServiceMessage } from '../protocol/replies.js';
import { BadArguments, checkCallArgs, checkNegotiateArgs, hasSignature } from './call-args.js';
import type { StorageLink } from './storage-link.js';

/** Stop reading the client while this much payload waits for the repository service. */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;
/**
 * …or this many requests: a restore's gets carry no payload, and a client that pipelines
 * millions of them must not pile them up in the service (borg itself keeps at most 100 in flight).
 */
const MAX_PENDING_CALLS = 1024;

export interface ClientSessionOptions {
  jobId: string;
  authInfo: string;
  input: Readable;
  output: Writable;
  service: StorageLink;
  /** One line for the client's log (stderr, as borg serve's JSON log records; §8.4). */
  tell(level: 'WARNING' | 'ERROR', message: string): void;
  /** Called once when the session is over (exit code for the process). */
  onEnd(code: number): void;
}

class Refusal extends Error {
  constructor(
    readonly kind: string,
    readonly detail: string,
    readonly cls = 'ProxyPolicyError',
  ) {
    super(detail);
  }
}

export class ClientSession {
  private readonly unpacker = new Unpacker(LIMITS.server);
  private negotiated = false;
  private attached: AttachResult | undefined;
  private attaching = false;
  private rid = 0;
  private readonly waiting = new Map<number, { msgid: number; method: string; bytes: number }>();
  private pendingBytes = 0;
  private ended = false;
  private paused = false;

  constructor(private readonly o: ClientSessionOptions) {}

  start() {
    this.o.service.onMessage((m, payload, length) => this.fromService(m, payload, length));
    this.o.input.on('data', (chunk: Buffer) => this.fromClient(chunk));
    this.o.input.on('end', () => this.end(0));
    this.o.input.on('error', () => this.end(1));
  }

  // ---- client → proxy ---------------------------------------------------------------------------

  private fromClient(chunk: Buffer) {
    if (this.ended) return;
    try {
      this.unpacker.feed(chunk);
      for (let m = this.unpacker.next(); m !== undefined; m = this.unpacker.next()) {
        this.onRequest(m);
        if (this.ended) return;
      }
    } catch (err) {
      if (err instanceof Refusal) return this.refuseAndEnd(err);
      // msgpack limits, bin/ext values, truncated or oversized frames (BORG_PROTOCOL.md §1.2).
      this.refuseAndEnd(new Refusal('malformed-input', `unreadable RPC data from the client: ${(err as Error).message}`));
    }
  }

  private onRequest(m: Value) {
    let req;
    try {
      req = parseRequest(m);
    } catch (err) {
      throw new Refusal('malformed-input', (err as Error).message);
    }
    if (!this.negotiated) {
      // The legacy 4-element negotiate comes first (§1.3/§1.4); a dict negotiate is accepted too.
      if (req.method !== 'negotiate') throw new Refusal('malformed-input', 'the first message was not negotiate');
      checked(() => checkNegotiateArgs(req.args));
      this.negotiated = true;
      // borg serve reports its real version; the client checks each method's `since` against it.
      if (req.format === 'legacy') this.o.output.write(encodeLegacyReply(req.msgid, negotiateResult()));
      else this.reply(req.msgid, negotiateResult());
      return;
    }
    if (req.format !== 'dict') throw new Refusal('malformed-input', 'a legacy request after negotiate');
    this.dispatch(req.msgid, req.method, req.args);
  }

  private dispatch(msgid: number, method: string, a: ValueMap) {
    // Every argument as stock borg sends it (call-args.ts); methods without a signature there are
    // refused below as forbidden, which is the more telling kind.
    if (hasSignature(method)) checked(() => checkCallArgs(method, a));
    switch (method) {
      case 'open': {
        if (this.attaching || this.attached) throw new Refusal('protocol', 'open called twice');
        this.attaching = true;
        const path = asBytes(a.get('path'), 'path', { maxLen: 4096 }).toString('latin1');
        // Which value is stock depends on the job's kind, which only the service knows.
        this.call(msgid, method, { t: 'attach', jobId: this.o.jobId, path, authInfo: this.o.authInfo, exclusive: a.get('exclusive') === true });
        return;
      }
      case '__len__':
        // Only a cache sync asks, and prepared caches never sync; a modest number leaks nothing.
        return this.needOpen(msgid, method, () => this.reply(msgid, 1));
      case 'load_key':
        return this.needOpen(msgid, method, (att) => this.reply(msgid, Buffer.from(att.keyText, 'utf8')));
      case 'get_free_nonce':
        return this.needOpen(msgid, method, () => this.call(msgid, method, { t: 'nonce', op: 'get' }));
      case 'commit_nonce_reservation':
        return this.needOpen(msgid, method, () => {
          const next = a.get('next_unreserved');
          const start = a.get('start_nonce');
          if (!isInt(next) || !(start === null || start === undefined || isInt(start))) throw new Refusal('malformed-input', 'commit_nonce_reservation with bad arguments');
          this.call(msgid, method, { t: 'nonce', op: 'commit', next: BigInt(next).toString(), start: start == null ? null : BigInt(start).toString() });
        });
      case 'get':
        return this.needOpen(msgid, method, () => {
          const id = asBytes(a.get('id'), 'id', { len: 32 });
          if (isZero(id)) this.call(msgid, method, { t: 'getManifest' });
          else this.call(msgid, method, { t: 'get', id: id.toString('hex') });
        });
      case 'put':
        return this.needOpen(msgid, method, () => {
          const id = asBytes(a.get('id'), 'id', { len: 32 });
          // Forwarded as sent: the service checks the job-key MAC and opens it. This process,
          // which parses hostile bytes, holds no key that could open anything.
          const data = asBytes(a.get('data'), 'data');
          if (isZero(id)) this.call(msgid, method, { t: 'putManifest' }, data);
          else this.call(msgid, method, { t: 'put', id: id.toString('hex') }, data);
        });
      case 'delete':
        return this.needOpen(msgid, method, () => this.call(msgid, method, { t: 'delete', id: asBytes(a.get('id'), 'id', { len: 32 }).toString('hex') }));
      case 'commit':
        return this.needOpen(msgid, method, () => this.call(msgid, method, { t: 'commit' }));
      case 'rollback':
        return this.needOpen(msgid, method, () => this.call(msgid, method, { t: 'rollback' }));
      default:
        // list, scan, check, destroy, break_lock, save_key, inject_exception, negotiate again, …
        throw new Refusal('forbidden-method', `method ${JSON.stringify(method.slice(0, 64))} is not allowed through BorgCube`);
    }
  }

  private needOpen(msgid: number, method: string, fn: (att: AttachResult) => void) {
    if (!this.attached) {
      if (this.attaching) throw new Refusal('protocol', `${method} before open finished`);
      throw new Refusal('protocol', `${method} before open`);
    }
    fn(this.attached);
  }

  private call(msgid: number, method: string, header: Record<string, unknown>, payload?: Buffer) {
    const rid = ++this.rid;
    const bytes = payload?.length ?? 0;
    this.waiting.set(rid, { msgid, method, bytes });
    this.pendingBytes += bytes;
    this.o.service.send({ ...header, rid }, payload);
    if ((this.pendingBytes > MAX_PENDING_BYTES || this.waiting.size > MAX_PENDING_CALLS) && !this.paused) {
      this.paused = true;
      this.o.input.pause();
    }
  }

  // ---- service → proxy → client -------------------------------------------------------------------

  private fromService(m: ServiceMessage, payload: Buffer[], length: number) {
    if (this.ended) return;
    if (m.t === 'abort') {
      this.o.tell('ERROR', `BorgCube ended this session: ${m.reason}`);
      return this.end(2);
    }
    const w = this.waiting.get(m.rid);
    if (!w) return this.end(2);
    this.waiting.delete(m.rid);
    this.pendingBytes -= w.bytes;
    if (this.paused && this.pendingBytes < MAX_PENDING_BYTES / 2 && this.waiting.size < MAX_PENDING_CALLS / 2) {
      this.paused = false;
      this.o.input.resume();
    }
    if (!m.ok) {
      this.replyError(w.msgid, m.error.cls, m.error.message);
      if (m.error.fatal) this.end(2);
      return;
    }
    const r = m.result;
    if (w.method === 'open') {
      this.attaching = false;
      if (!r || !('keyText' in r)) return this.end(2);
      this.attached = r;
      return this.reply(w.msgid, Buffer.from(r.repoId, 'hex'));
    }
    if (r === null) return this.reply(w.msgid, null);
    if ('int' in r) return this.reply(w.msgid, BigInt(r.int));
    // The object goes out in the memory it came in: the reply's head, then the socket's slices.
    if ('bytes' in r) return void writeCoalesced(this.o.output, [replyBytesHead(w.msgid, length), ...payload]);
    this.end(2);
  }

  private reply(msgid: number, result: Packable) {
    this.write(new Map<string, Packable>([['i', msgid], ['r', result]]));
  }

  /**
   * A Borg-shaped exception (§1.3): the client rebuilds known classes, shows the short text otherwise.
   * `args` is always `[message]`, a str-family value: borg 1.4 rebuilds more classes (Error,
   * LockTimeout, NotLocked, …) from `exception_args[0].decode()` (borg 1.4.0 remote.py:753-818).
   */
  private replyError(msgid: number, cls: string, message: string) {
    this.o.output.write(encodeError(msgid, { exceptionClass: cls, args: [message], short: [message], sysinfo: 'BorgCube proxy' }));
  }

  private write(v: Packable) {
    writeCoalesced(this.o.output, packParts(v));
  }

  private refuseAndEnd(r: Refusal) {
    // The kind only: the detail (the service records it in the job's log) may quote internals.
    this.o.tell('ERROR', `BorgCube refused this (${r.kind}); the details are in the job's log on the server`);
    // Before `open` has bound the connection to its job, the service knows no job to charge: name
    // the one our credential was issued for, with the proof sshd gave us (the service checks it).
    const who = this.attached ? {} : { jobId: this.o.jobId, authInfo: this.o.authInfo };
    this.o.service.send({ t: 'violation', kind: r.kind, detail: r.detail.slice(0, 4000), ...who });
    this.end(2);
  }

  private end(code: number) {
    if (this.ended) return;
    this.ended = true;
    this.o.input.pause();
    this.o.service.close();
    this.o.onEnd(code);
  }
}

/** Runs an argument check; a refusal becomes a `bad-arguments` violation. */
function checked(fn: () => void) {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof BadArguments)) throw err;
    throw new Refusal('bad-arguments', err.message);
  }
}

function isInt(v: Value | undefined): v is number | bigint {
  return (typeof v === 'number' && Number.isInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n);
}

function isZero(b: Buffer) {
  for (const x of b) if (x !== 0) return false;
  return true;
}
