// The per-byte work of the repository service — check the job-key MAC of a client's object and
// open it, decompress, recompute the id, encrypt it with the real key — spread over worker threads,
// one per core (DESIGN.md §5), so that verifying one session's chunk never stalls the others and
// both cores of a small server work.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { constantTimeEqual } from '../borg/crypto.js';
import { decompress } from '../borg/compression.js';
import { DecompressionError, IntegrityError } from '../borg/errors.js';
import { isEncrypted, type BorgKey } from '../borg/keys.js';
import { AES_OVERHEAD, decryptObject, encryptObject, idHash, resealInPlace } from '../borg/objects.js';

export interface VerifyTask {
  /**
   * `verify` (default): a client's put, checked as described at runVerifyTask. `reseal`: an object
   * of the repository served to a client — decrypted with `keyRef`, its compressed payload
   * encrypted unchanged with `jobKeyRef` at `iv`, or wrapped as it is for an authenticated job key
   * (a restore's gets; no id check: the client's borg checks every id itself, and the payload is
   * not even decompressed here).
   */
  op?: 'verify' | 'reseal';
  /** The real key (ids, and the encryption of what is stored). */
  keyRef: string;
  /** The job key: the one the client encrypted with (`verify`), the one it is served under (`reseal`). */
  jobKeyRef: string;
  id: Buffer;
  /** The object as the client sent it. */
  object: Buffer;
  maxPlaintext: number;
  /** `verify`: when set, also encrypt the payload with the real key at this counter. `reseal`: the job key's counter (AES job keys only). */
  iv?: bigint;
  /**
   * The caller hands over `object`'s memory (an allocation of its own that it will not touch
   * again): it moves to the worker thread without a copy.
   */
  transfer?: boolean;
  /** `reseal` only: `object`'s bytes are the caller's to overwrite; the result is written there. */
  inPlace?: boolean;
}

export type VerifyResult =
  | { ok: true; plaintextLength: number; object?: Buffer }
  | { ok: false; reason: 'bad-mac' | 'id-mismatch' | 'undecodable' | 'too-large'; detail: string };

/**
 * The work itself; runs in a worker thread (or inline when there are none, e.g. under vitest):
 * type byte and MAC under the job key, decrypt, bounded decompress, id, then the same compressed
 * payload encrypted with the real key (BORG_PROTOCOL.md §3.1, §4: no recompression).
 *
 * `scratch`: memory for the plaintext, which is only hashed. The caller must not start another
 * task with the same scratch before this one has settled — it would overwrite the plaintext
 * between decompression and id check (the worker thread runs its tasks one after the other).
 */
export async function runVerifyTask(key: BorgKey, jobKey: BorgKey, t: VerifyTask, scratch?: Buffer): Promise<VerifyResult> {
  if (t.op === 'reseal') return runResealTask(key, jobKey, t);
  let payload: Buffer;
  try {
    payload = decryptObject(jobKey, t.object).payload;
  } catch (err) {
    return { ok: false, reason: 'bad-mac', detail: (err as Error).message };
  }
  let data: Buffer;
  try {
    data = (await decompress(payload, { maxOutput: t.maxPlaintext, into: scratch })).data;
  } catch (err) {
    // Over maxPlaintext (a job's bound, not a broken object): refused from the headers, before decoding.
    const tooLarge = err instanceof DecompressionError && err.code === 'too-large';
    return { ok: false, reason: tooLarge ? 'too-large' : 'undecodable', detail: (err as Error).message };
  }
  if (!constantTimeEqual(idHash(key, data), t.id)) return { ok: false, reason: 'id-mismatch', detail: `payload does not hash to ${t.id.toString('hex')}` };
  return { ok: true, plaintextLength: data.length, object: t.iv === undefined ? undefined : encryptObject(key, payload, t.iv) };
}

function runResealTask(key: BorgKey, jobKey: BorgKey, t: Pick<VerifyTask, 'object' | 'iv' | 'inPlace'>): VerifyResult {
  // An authenticated job key takes no counter; an AES one must never default to 0.
  if (t.iv === undefined && isEncrypted(jobKey.type)) throw new Error('a reseal task for an AES job key needs an iv');
  if (t.inPlace && isEncrypted(key.type)) {
    try {
      return { ok: true, plaintextLength: t.object.length - AES_OVERHEAD, object: resealInPlace(key, jobKey, t.object, t.iv) };
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      return { ok: false, reason: 'bad-mac', detail: err.message };
    }
  }
  let payload: Buffer;
  try {
    payload = decryptObject(key, t.object).payload;
  } catch (err) {
    return { ok: false, reason: 'bad-mac', detail: (err as Error).message };
  }
  return { ok: true, plaintextLength: payload.length, object: encryptObject(jobKey, payload, t.iv) };
}

/**
 * Copies the objects of `items` into one new buffer and points each item at its copy: the buffer
 * crosses to the other thread in one transfer (both directions of CryptoPool).
 */
export function packObjects(items: ReadonlyArray<{ object: Uint8Array }>): ArrayBuffer {
  let bytes = 0;
  for (const item of items) bytes += item.object.byteLength;
  const pack = new ArrayBuffer(bytes);
  let at = 0;
  for (const item of items) {
    const view = new Uint8Array(pack, at, item.object.byteLength);
    view.set(item.object);
    item.object = view;
    at += view.byteLength;
  }
  return pack;
}

interface Pending {
  resolve: (r: VerifyResult) => void;
  reject: (e: Error) => void;
}

/** One task as it crosses to a worker thread (keys travel once per thread, by name). */
export interface TaskMessage {
  seq: number;
  op?: VerifyTask['op'];
  keyRef: string;
  jobKeyRef: string;
  id: Uint8Array;
  object: Uint8Array;
  maxPlaintext: number;
  iv?: bigint;
  inPlace?: boolean;
  /** `object` crossed in an ArrayBuffer of its own (VerifyTask.transfer), not in the batch's shared one. */
  moved?: boolean;
}

export interface KeyMessage {
  type: BorgKey['type'];
  idKey: Uint8Array;
  encKey: Uint8Array;
  encHmacKey: Uint8Array;
}

/** Pool → worker thread: keys it has not seen yet, then the tasks of one batch. */
export interface BatchMessage {
  keys: Record<string, KeyMessage>;
  tasks: TaskMessage[];
}

/** A result as it crosses back: the re-encrypted object arrives as a plain Uint8Array. */
export type WireResult = Exclude<VerifyResult, { ok: true }> | { ok: true; plaintextLength: number; object?: Uint8Array };

/** Worker thread → pool: the results of one batch, in any order. */
export interface ResultMessage {
  results: Array<{ seq: number; result?: WireResult; error?: string }>;
}

interface Slot {
  worker: Worker;
  /** Tasks sent to this thread and not answered yet. */
  busy: number;
  keys: Set<string>;
}

/** Tasks that wait to cross to a worker thread together (see verify). */
interface Batch {
  tasks: TaskMessage[];
  /** Owned buffers that move as they are. */
  transfer: ArrayBuffer[];
  /** The tasks whose objects are copied into the batch's one buffer when it is sent. */
  toPack: TaskMessage[];
  bytes: number;
}

/**
 * How long a task may wait for others to cross with it. Puts arrive a few per read from a
 * proxy's socket, and each message costs both threads a wake-up and a (de)serialization each
 * way, ~60 µs here however small it is; a worker thread is idle between them, so waiting for it
 * batches nothing. Objects are verified ~3 ms later than they could be — borg does not wait for
 * a put's reply before sending the next one.
 */
const BATCH_WAIT_MS = 3;
/** A batch this large goes at once (one big chunk, or many small ones). */
const BATCH_BYTES = 1024 * 1024;

/** Objects below this size are resealed on the calling thread (see CryptoPool.reseal). */
const INLINE_RESEAL = 32 * 1024;

const emptyBatch = (): Batch => ({ tasks: [], transfer: [], toPack: [], bytes: 0 });

export class CryptoPool {
  private readonly slots: Slot[] = [];
  private readonly keys = new Map<string, BorgKey>();
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private batch = emptyBatch();
  private flushTimer: NodeJS.Timeout | undefined;
  /**
   * A restore's client waits for each reply (it reads its files in order), so its objects cross
   * with whatever else this turn of the event loop brought, not up to BATCH_WAIT_MS later: with
   * the timer, every object of 32 KiB–1 MiB came back ~3 ms late.
   */
  private flushSoon: NodeJS.Immediate | undefined;

  constructor(size = availableParallelism()) {
    const script = fileURLToPath(new URL('./crypto-worker.js', import.meta.url));
    // Compiled code only: under vitest the sources are TypeScript and tasks run inline.
    if (!import.meta.url.endsWith('.js')) return;
    for (let i = 0; i < Math.max(1, size); i++) {
      const worker = new Worker(script);
      const slot: Slot = { worker, busy: 0, keys: new Set() };
      worker.on('message', (m: ResultMessage) => {
        for (const { seq, result, error } of m.results) {
          slot.busy--;
          const p = this.pending.get(seq);
          if (!p) continue;
          this.pending.delete(seq);
          if (error !== undefined) p.reject(new Error(error));
          else {
            const r = result!;
            if (!r.ok) p.resolve(r);
            else p.resolve({ ok: true, plaintextLength: r.plaintextLength, object: r.object && Buffer.from(r.object.buffer, r.object.byteOffset, r.object.byteLength) });
          }
        }
      });
      worker.on('error', (err) => {
        for (const [, p] of this.pending) p.reject(err);
        this.pending.clear();
      });
      worker.unref();
      this.slots.push(slot);
    }
  }

  registerKey(ref: string, key: BorgKey) {
    this.keys.set(ref, key);
  }

  /** A job ended: its key leaves the pool and every worker thread. */
  forgetKey(ref: string) {
    // A batch still waiting may name it: it goes first.
    this.flush();
    this.keys.delete(ref);
    for (const slot of this.slots) {
      if (slot.keys.delete(ref)) slot.worker.postMessage({ forget: ref });
    }
  }

  async verify(t: VerifyTask): Promise<VerifyResult> {
    const key = this.keys.get(t.keyRef);
    const jobKey = this.keys.get(t.jobKeyRef);
    if (!key || !jobKey) throw new Error(`no key registered as ${key ? t.jobKeyRef : t.keyRef}`);
    if (this.slots.length === 0) return runVerifyTask(key, jobKey, t);
    const seq = ++this.seq;
    // An owned buffer moves as it is; others are copied into the batch's one buffer when it is
    // sent (the socket's buffer may hold other frames too).
    const object = t.transfer ? new Uint8Array(t.object.buffer, t.object.byteOffset, t.object.byteLength) : t.object;
    const task: TaskMessage = { seq, op: t.op, keyRef: t.keyRef, jobKeyRef: t.jobKeyRef, id: new Uint8Array(t.id), object, maxPlaintext: t.maxPlaintext, iv: t.iv, inPlace: t.inPlace, moved: t.transfer === true };
    const b = this.batch;
    b.tasks.push(task);
    b.bytes += object.byteLength;
    if (t.transfer) b.transfer.push(object.buffer as ArrayBuffer);
    else b.toPack.push(task);
    const result = new Promise<VerifyResult>((resolve, reject) => this.pending.set(seq, { resolve, reject }));
    if (b.bytes >= BATCH_BYTES) this.flush();
    else if (t.op === 'reseal') this.flushSoon ??= setImmediate(() => this.flush());
    else this.flushTimer ??= setTimeout(() => this.flush(), BATCH_WAIT_MS);
    return result;
  }

  /**
   * An object of the repository, resealed for a client (VerifyTask `reseal`). A small one is done
   * on this thread: its MAC check and AES pass (two with an AES job key) take a few tens of µs,
   * less than its trip to a worker thread (a message each way, a copy each way) — a restore's
   * profile had this thread spend 3.1 s in postMessage for 357 MB, mostly for objects of a few KiB.
   */
  async reseal(t: Omit<VerifyTask, 'op' | 'maxPlaintext'>): Promise<VerifyResult> {
    if (t.object.length < INLINE_RESEAL) {
      const key = this.keys.get(t.keyRef);
      const jobKey = this.keys.get(t.jobKeyRef);
      if (!key || !jobKey) throw new Error(`no key registered as ${key ? t.jobKeyRef : t.keyRef}`);
      return runResealTask(key, jobKey, t);
    }
    return this.verify({ ...t, op: 'reseal', maxPlaintext: 0 });
  }

  private unschedule() {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    clearImmediate(this.flushSoon);
    this.flushSoon = undefined;
  }

  /** Sends the waiting batch to the least busy worker thread, with the keys it has not seen. */
  private flush() {
    this.unschedule();
    const { tasks, transfer, toPack } = this.batch;
    if (!tasks.length) return;
    this.batch = emptyBatch();
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const message: BatchMessage = { keys: {}, tasks };
    for (const t of tasks) {
      for (const ref of [t.keyRef, t.jobKeyRef]) {
        if (slot.keys.has(ref)) continue;
        // Registered when the task was queued; forgetKey sends waiting tasks before it forgets.
        const k = this.keys.get(ref)!;
        message.keys[ref] = { type: k.type, idKey: k.idKey, encKey: k.encKey, encHmacKey: k.encHmacKey };
        slot.keys.add(ref);
      }
    }
    // The objects that are not moved as they are go in one buffer: with a transferred buffer
    // per object, 20,000 verifies of 3-6 KiB objects kept this thread busy 480-660 ms, with
    // one per batch (both ways) 325-410 ms. Most objects of a backup are a few KiB.
    if (toPack.length) transfer.push(packObjects(toPack));
    slot.busy += tasks.length;
    slot.worker.postMessage(message, transfer);
  }

  async close() {
    this.unschedule();
    this.batch = emptyBatch();
    for (const [, p] of this.pending) p.reject(new Error('the crypto pool is closed'));
    this.pending.clear();
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
