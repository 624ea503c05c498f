// Worker thread of CryptoPool: holds the real keys it was given and runs verify tasks.
import { parentPort } from 'node:worker_threads';
import type { BorgKey, KeyType } from '../borg/keys.js';
import { runVerifyTask } from './crypto-pool.js';

const keys = new Map<string, BorgKey>();

interface Msg {
  seq: number;
  keyRef: string;
  key?: { type: KeyType; idKey: Uint8Array; encKey: Uint8Array; encHmacKey: Uint8Array };
  id: Uint8Array;
  payload: Uint8Array;
  maxPlaintext: number;
  iv?: bigint;
}

parentPort!.on('message', (m: Msg) => {
  if (m.key) {
    const b = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    keys.set(m.keyRef, { type: m.key.type, idKey: b(m.key.idKey), encKey: b(m.key.encKey), encHmacKey: b(m.key.encHmacKey), chunkSeed: 0, repositoryId: Buffer.alloc(32), tamRequired: true });
  }
  const key = keys.get(m.keyRef);
  if (!key) {
    parentPort!.postMessage({ seq: m.seq, error: `no key ${m.keyRef}` });
    return;
  }
  const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  runVerifyTask(key, { keyRef: m.keyRef, id: buf(m.id), payload: buf(m.payload), maxPlaintext: m.maxPlaintext, iv: m.iv }).then(
    (result) => {
      if (result.ok && result.object) {
        const obj = new Uint8Array(result.object.buffer, result.object.byteOffset, result.object.byteLength);
        parentPort!.postMessage({ seq: m.seq, result: { ...result, object: obj } }, obj.byteOffset === 0 && obj.byteLength === obj.buffer.byteLength ? [obj.buffer as ArrayBuffer] : []);
      } else parentPort!.postMessage({ seq: m.seq, result });
    },
    (err: Error) => parentPort!.postMessage({ seq: m.seq, error: err.message }),
  );
});
