// Worker thread of CryptoPool: holds the keys it was given (the real key of each repository, the
// job keys of live sessions) and runs verify tasks.
import { parentPort } from 'node:worker_threads';
import type { BorgKey, KeyType } from '../borg/keys.js';
import { runVerifyTask } from './crypto-pool.js';

const keys = new Map<string, BorgKey>();

interface KeyMsg {
  type: KeyType;
  idKey: Uint8Array;
  encKey: Uint8Array;
  encHmacKey: Uint8Array;
}

interface Msg {
  seq: number;
  keyRef: string;
  jobKeyRef: string;
  keys: Record<string, KeyMsg>;
  id: Uint8Array;
  object: Uint8Array;
  maxPlaintext: number;
  iv?: bigint;
}

const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

parentPort!.on('message', (m: Msg | { forget: string }) => {
  if ('forget' in m) {
    keys.delete(m.forget);
    return;
  }
  for (const [ref, k] of Object.entries(m.keys)) {
    keys.set(ref, { type: k.type, idKey: buf(k.idKey), encKey: buf(k.encKey), encHmacKey: buf(k.encHmacKey), chunkSeed: 0, repositoryId: Buffer.alloc(32), tamRequired: true });
  }
  const key = keys.get(m.keyRef);
  const jobKey = keys.get(m.jobKeyRef);
  if (!key || !jobKey) {
    parentPort!.postMessage({ seq: m.seq, error: `no key ${key ? m.jobKeyRef : m.keyRef}` });
    return;
  }
  runVerifyTask(key, jobKey, { keyRef: m.keyRef, jobKeyRef: m.jobKeyRef, id: buf(m.id), object: buf(m.object), maxPlaintext: m.maxPlaintext, iv: m.iv }).then(
    (result) => {
      if (result.ok && result.object) {
        const obj = new Uint8Array(result.object.buffer, result.object.byteOffset, result.object.byteLength);
        parentPort!.postMessage({ seq: m.seq, result: { ...result, object: obj } }, obj.byteOffset === 0 && obj.byteLength === obj.buffer.byteLength ? [obj.buffer as ArrayBuffer] : []);
      } else parentPort!.postMessage({ seq: m.seq, result });
    },
    (err: Error) => parentPort!.postMessage({ seq: m.seq, error: err.message }),
  );
});
