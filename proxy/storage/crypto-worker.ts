// Worker thread of CryptoPool: holds the keys it was given (the real key of each repository, the
// job keys of live sessions) and runs the verify tasks of each batch, answering with one message.
import { parentPort } from 'node:worker_threads';
import type { BorgKey } from '../borg/keys.js';
import { packObjects, runVerifyTask, type BatchMessage, type ResultMessage, type TaskMessage } from './crypto-pool.js';

const keys = new Map<string, BorgKey>();

/** Resulting objects from this size on cross back in their own buffer, without a copy. */
const MOVE_FROM = 256 * 1024;

/**
 * Plaintexts are only hashed, so they are decoded into this one buffer instead of a new one per
 * object (borg's chunks are at most 8 MiB; a larger plaintext gets its own allocation).
 */
const scratch = Buffer.allocUnsafeSlow(8 * 1024 * 1024);

/** Batches run one after the other: a task owns `scratch` until it has settled. */
let queue: Promise<void> = Promise.resolve();

/**
 * Whether `obj`'s whole buffer may move with it: a fresh allocation it fills, or the task's own
 * moved buffer it was resealed in (for an authenticated job key it starts past the old envelope's
 * head). The batch's shared buffer never moves: it holds other tasks' objects.
 */
const ownsBuffer = (obj: Uint8Array, t: TaskMessage) => (obj.byteOffset === 0 && obj.byteLength === obj.buffer.byteLength) || (t.moved === true && obj.buffer === t.object.buffer);

const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

parentPort!.on('message', (m: BatchMessage | { forget: string }) => {
  if ('forget' in m) {
    keys.delete(m.forget);
    return;
  }
  for (const [ref, k] of Object.entries(m.keys)) {
    keys.set(ref, { type: k.type, idKey: buf(k.idKey), encKey: buf(k.encKey), encHmacKey: buf(k.encHmacKey), chunkSeed: 0, repositoryId: Buffer.alloc(32), tamRequired: true });
  }
  queue = queue.then(() => runBatch(m));
});

async function runBatch(m: BatchMessage) {
  const out: ResultMessage = { results: [] };
  const transfer: ArrayBuffer[] = [];
  /** Results whose objects are copied into the batch's one buffer below. */
  const toPack: Array<{ object: Uint8Array }> = [];
  for (const t of m.tasks) {
    const key = keys.get(t.keyRef);
    const jobKey = keys.get(t.jobKeyRef);
    if (!key || !jobKey) {
      out.results.push({ seq: t.seq, error: `no key ${key ? t.jobKeyRef : t.keyRef}` });
      continue;
    }
    try {
      const result = await runVerifyTask(key, jobKey, { op: t.op, keyRef: t.keyRef, jobKeyRef: t.jobKeyRef, id: buf(t.id), object: buf(t.object), maxPlaintext: t.maxPlaintext, iv: t.iv, inPlace: t.inPlace }, scratch);
      if (result.ok && result.object) {
        const obj = new Uint8Array(result.object.buffer, result.object.byteOffset, result.object.byteLength);
        const r = { seq: t.seq, result: { ...result, object: obj } };
        out.results.push(r);
        // A big buffer of its own moves as it is; the rest go in one buffer below (a small one
        // may be a view into Node's shared pool, and one transfer per object cost more than the
        // copy: see CryptoPool.flush).
        if (obj.byteLength >= MOVE_FROM && ownsBuffer(obj, t)) transfer.push(obj.buffer as ArrayBuffer);
        else toPack.push(r.result);
      } else out.results.push({ seq: t.seq, result });
    } catch (err) {
      out.results.push({ seq: t.seq, error: (err as Error).message });
    }
  }
  if (toPack.length) transfer.push(packObjects(toPack));
  parentPort!.postMessage(out, transfer);
}
