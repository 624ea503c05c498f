// The crypto pool as the repository service runs it: compiled, with its worker threads (under
// vitest the TypeScript sources run every task inline, which exercises none of the batching).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compressLz4, compressNone } from '../../proxy/borg/compression.js';
import { createJobKey, type BorgKey } from '../../proxy/borg/keys.js';
import { decryptObject, encryptObject, idHash } from '../../proxy/borg/objects.js';
import type * as PoolModule from '../../proxy/storage/crypto-pool.js';
import type { VerifyResult } from '../../proxy/storage/crypto-pool.js';
import { projectRoot } from '../harness/paths.js';

const { CryptoPool } = (await import(pathToFileURL(join(projectRoot, 'dist/proxy/storage/crypto-pool.js')).href)) as typeof PoolModule;

const real: BorgKey = { type: 0x03, idKey: randomBytes(32), encKey: randomBytes(32), encHmacKey: randomBytes(32), chunkSeed: 0, repositoryId: randomBytes(32), tamRequired: true };
const pool = new CryptoPool(2);
afterAll(() => pool.close());

/** A chunk as a client with the job key sends it: text-like (lz4) or random (stored). */
function clientObject(jobKey: BorgKey, size: number, n: number) {
  const plain = n % 3 === 0 ? randomBytes(size) : Buffer.from(`${n} `.repeat(size).slice(0, size));
  const payload = n % 3 === 0 ? compressNone(plain) : compressLz4(plain);
  return { id: idHash(real, plain), plain, payload, object: encryptObject(jobKey, payload, BigInt(n) * 100_000n) };
}

describe('CryptoPool with worker threads', () => {
  it('verifies and re-encrypts many objects at once, small and large, and keeps each result with its own task', async () => {
    const job = createJobKey(real).key;
    pool.registerKey('real', real);
    pool.registerKey('job:1', job);
    const sizes = [1, 100, 4096, 16_000, 70_000, 1_500_000, 3_000_000];
    const objects = Array.from({ length: 120 }, (_, n) => clientObject(job, sizes[n % sizes.length]!, n));
    const tampered = Buffer.from(objects[5]!.object);
    tampered[tampered.length - 1]! ^= 1;
    const results: Array<Promise<VerifyResult>> = objects.map((o, n) => {
      // big ones as the service hands them over (an allocation of their own, moved, not copied)
      const own = o.object.length >= 256 * 1024;
      const object = own ? Buffer.from(o.object) : o.object;
      return pool.verify({ keyRef: 'real', jobKeyRef: 'job:1', id: o.id, object, maxPlaintext: 64 << 20, iv: BigInt(n) * 1_000_000n, transfer: own });
    });
    const bad = pool.verify({ keyRef: 'real', jobKeyRef: 'job:1', id: objects[5]!.id, object: tampered, maxPlaintext: 64 << 20, iv: 1n });
    const wrongId = pool.verify({ keyRef: 'real', jobKeyRef: 'job:1', id: objects[6]!.id, object: objects[7]!.object, maxPlaintext: 64 << 20, iv: 2n });
    for (const [n, r] of (await Promise.all(results)).entries()) {
      const o = objects[n]!;
      if (!r.ok) throw new Error(`object ${n}: ${r.reason} ${r.detail}`);
      expect(r.plaintextLength).toBe(o.plain.length);
      // stored with the real key at the counter given, the client's compressed payload unchanged
      const stored = decryptObject(real, r.object!);
      expect(stored.iv).toBe(BigInt(n) * 1_000_000n);
      expect(stored.payload.equals(o.payload)).toBe(true);
    }
    expect(await bad).toMatchObject({ ok: false, reason: 'bad-mac' });
    expect(await wrongId).toMatchObject({ ok: false, reason: 'id-mismatch' });
    pool.forgetKey('job:1');
  });

  it('sends waiting tasks before a key is forgotten', async () => {
    const job = createJobKey(real).key;
    pool.registerKey('job:2', job);
    const o = clientObject(job, 5000, 1);
    // queued, not yet sent (the pool waits a few ms for more), when the key goes
    const r = pool.verify({ keyRef: 'real', jobKeyRef: 'job:2', id: o.id, object: o.object, maxPlaintext: 64 << 20, iv: 7n });
    pool.forgetKey('job:2');
    expect(await r).toMatchObject({ ok: true, plaintextLength: 5000 });
    await expect(pool.verify({ keyRef: 'real', jobKeyRef: 'job:2', id: o.id, object: o.object, maxPlaintext: 64 << 20, iv: 8n })).rejects.toThrow(/no key registered/);
  });

  it('reseals stored objects for a restore: the same compressed payload under the job key, mixed with verifies', async () => {
    const job = createJobKey(real).key;
    pool.registerKey('job:3', job);
    const sizes = [0, 17, 5000, 600_000, 2_000_000];
    const stored = Array.from({ length: 40 }, (_, n) => {
      const plain = n % 2 ? randomBytes(sizes[n % sizes.length]!) : Buffer.from('x'.repeat(sizes[n % sizes.length]!));
      const payload = n % 2 ? compressNone(plain) : compressLz4(plain);
      return { payload, object: encryptObject(real, payload, BigInt(n) * 1_000_000n) };
    });
    const put = clientObject(job, 3000, 4);
    const verified = pool.verify({ keyRef: 'real', jobKeyRef: 'job:3', id: put.id, object: put.object, maxPlaintext: 64 << 20, iv: 99n });
    const results = stored.map((s, n) => pool.reseal({ keyRef: 'real', jobKeyRef: 'job:3', id: Buffer.alloc(32), object: s.object, iv: BigInt(n) * 500_000n }));
    const corrupt = Buffer.from(stored[3]!.object);
    corrupt[50]! ^= 1;
    const bad = pool.reseal({ keyRef: 'real', jobKeyRef: 'job:3', id: Buffer.alloc(32), object: corrupt, iv: 1n });
    // A small object is resealed on the calling thread: its MAC is checked there just the same.
    const smallCorrupt = Buffer.from(stored[1]!.object);
    smallCorrupt[smallCorrupt.length - 1]! ^= 1;
    expect(smallCorrupt.length).toBeLessThan(32 * 1024);
    expect(await pool.reseal({ keyRef: 'real', jobKeyRef: 'job:3', id: Buffer.alloc(32), object: smallCorrupt, iv: 2n })).toMatchObject({ ok: false, reason: 'bad-mac' });
    for (const [n, r] of (await Promise.all(results)).entries()) {
      if (!r.ok) throw new Error(`object ${n}: ${r.reason} ${r.detail}`);
      const served = decryptObject(job, r.object!);
      expect(served.iv).toBe(BigInt(n) * 500_000n);
      expect(served.payload.equals(stored[n]!.payload)).toBe(true);
      expect(() => decryptObject(real, r.object!)).toThrow(/MAC/);
    }
    expect(await bad).toMatchObject({ ok: false, reason: 'bad-mac' });
    expect(await verified).toMatchObject({ ok: true, plaintextLength: 3000 });
    pool.forgetKey('job:3');
  });

  it('reseals in place for an authenticated job key: big ones moved both ways, small ones packed, each [0x07][payload] of its own', async () => {
    const job = createJobKey(real, 0x07).key;
    pool.registerKey('job:4', job);
    const sizes = [0, 17, 40_000, 300_000, 2_000_000];
    const stored = Array.from({ length: 30 }, (_, n) => {
      const plain = n % 2 ? randomBytes(sizes[n % sizes.length]!) : Buffer.from(`${n}`.repeat(sizes[n % sizes.length]!).slice(0, sizes[n % sizes.length]));
      const payload = n % 2 ? compressNone(plain) : compressLz4(plain);
      return { payload, object: encryptObject(real, payload, BigInt(n) * 1_000_000n) };
    });
    // As the restore session hands segment reads over: its own memory, big ones in an allocation of their own.
    const results = stored.map((s) => {
      const own = s.object.length >= 256 * 1024;
      return pool.reseal({ keyRef: 'real', jobKeyRef: 'job:4', id: Buffer.alloc(32), object: Buffer.from(s.object), transfer: own, inPlace: true });
    });
    for (const [n, r] of (await Promise.all(results)).entries()) {
      if (!r.ok) throw new Error(`object ${n}: ${r.reason} ${r.detail}`);
      const served = r.object!;
      expect(served[0]).toBe(0x07);
      expect(served.subarray(1).equals(stored[n]!.payload)).toBe(true);
      // A moved object comes back in the very memory it went in: the envelope's head cut off, not copied.
      if (stored[n]!.object.length >= 256 * 1024) {
        expect(served.byteOffset).toBe(40);
        expect(served.buffer.byteLength).toBe(stored[n]!.object.length);
      }
    }
    expect(stored.filter((s) => s.object.length >= 256 * 1024).length).toBeGreaterThan(3);
    // An AES job key is never served at a made-up counter.
    pool.registerKey('job:5', createJobKey(real).key);
    // 300,000 random bytes, stored as they are: a worker thread's task.
    const big = Buffer.from(stored[3]!.object);
    expect(big.length).toBeGreaterThan(32 * 1024);
    await expect(pool.reseal({ keyRef: 'real', jobKeyRef: 'job:5', id: Buffer.alloc(32), object: big })).rejects.toThrow(/needs an iv/);
    await expect(pool.reseal({ keyRef: 'real', jobKeyRef: 'job:5', id: Buffer.alloc(32), object: Buffer.from(stored[1]!.object) })).rejects.toThrow(/needs an iv/);
    pool.forgetKey('job:4');
    pool.forgetKey('job:5');
  });
});
