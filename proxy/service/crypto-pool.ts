// The per-byte work of the repository service — decompress a client's payload, recompute its id,
// encrypt it with the real key — spread over worker threads, one per core (DESIGN.md §5), so that
// verifying one session's chunk never stalls the others and both cores of a small server work.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { constantTimeEqual } from '../borg/crypto.js';
import { decompress } from '../borg/compression.js';
import type { BorgKey } from '../borg/keys.js';
import { encryptObject, idHash } from '../borg/objects.js';

export interface VerifyTask {
  keyRef: string;
  id: Buffer;
  payload: Buffer;
  maxPlaintext: number;
  /** When set, also encrypt P with the real key at this counter. */
  iv?: bigint;
}

export type VerifyResult =
  | { ok: true; plaintextLength: number; object?: Buffer }
  | { ok: false; reason: 'id-mismatch' | 'undecodable'; detail: string };

/** The work itself; runs in a worker thread (or inline when there are none, e.g. under vitest). */
export async function runVerifyTask(key: BorgKey, t: VerifyTask): Promise<VerifyResult> {
  let data: Buffer;
  try {
    data = (await decompress(t.payload, { maxOutput: t.maxPlaintext })).data;
  } catch (err) {
    return { ok: false, reason: 'undecodable', detail: (err as Error).message };
  }
  if (!constantTimeEqual(idHash(key, data), t.id)) return { ok: false, reason: 'id-mismatch', detail: `payload does not hash to ${t.id.toString('hex')}` };
  return { ok: true, plaintextLength: data.length, object: t.iv === undefined ? undefined : encryptObject(key, t.payload, t.iv) };
}

interface Pending {
  resolve: (r: VerifyResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: number;
  keys: Set<string>;
}

export class CryptoPool {
  private readonly slots: Slot[] = [];
  private readonly keys = new Map<string, BorgKey>();
  private readonly pending = new Map<number, Pending>();
  private seq = 0;

  constructor(size = availableParallelism()) {
    const script = fileURLToPath(new URL('./crypto-worker.js', import.meta.url));
    // Compiled code only: under vitest the sources are TypeScript and tasks run inline.
    if (!import.meta.url.endsWith('.js')) return;
    for (let i = 0; i < Math.max(1, size); i++) {
      const worker = new Worker(script);
      const slot: Slot = { worker, busy: 0, keys: new Set() };
      worker.on('message', (m: { seq: number; result?: VerifyResult & { object?: Uint8Array }; error?: string }) => {
        slot.busy--;
        const p = this.pending.get(m.seq);
        if (!p) return;
        this.pending.delete(m.seq);
        if (m.error) p.reject(new Error(m.error));
        else {
          const r = m.result!;
          p.resolve(r.ok && r.object ? { ...r, object: Buffer.from(r.object.buffer, r.object.byteOffset, r.object.byteLength) } : r);
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

  async verify(t: VerifyTask): Promise<VerifyResult> {
    const key = this.keys.get(t.keyRef);
    if (!key) throw new Error(`no key registered as ${t.keyRef}`);
    if (this.slots.length === 0) return runVerifyTask(key, t);
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy++;
    const seq = ++this.seq;
    // One copy into a transferable buffer; the socket's buffer may hold other frames too.
    const payload = new Uint8Array(t.payload.length);
    payload.set(t.payload);
    const msg: Record<string, unknown> = { seq, keyRef: t.keyRef, id: new Uint8Array(t.id), payload, maxPlaintext: t.maxPlaintext, iv: t.iv };
    if (!slot.keys.has(t.keyRef)) {
      msg.key = { type: key.type, idKey: key.idKey, encKey: key.encKey, encHmacKey: key.encHmacKey };
      slot.keys.add(t.keyRef);
    }
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      slot.worker.postMessage(msg, [payload.buffer]);
    });
  }

  async close() {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
