// Primitive crypto for Borg's objects (BORG_PROTOCOL.md §3.1; borg/crypto/key.py `ID_HMAC_SHA_256`,
// `ID_BLAKE2b_256`, `PlaintextKey.id_hash`; crypto/low_level.pyx `blake2b_256`, `AES256_CTR_*`).
//
// BLAKE2b-256 in borg is a plain digest with digest_size=32 over key ‖ data (no BLAKE2 key parameter). Node's
// createHash('blake2b512') cannot produce it (the digest length is part of the parameter block), so this uses
// hash-wasm's createBLAKE2b(256), measured at ~0.5 GB/s here; @noble/hashes is ~25x slower (PERF_NOTES.md).
import { createCipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createBLAKE2b } from 'hash-wasm';

// One hasher for the process: hash-wasm hashers are synchronous once created, and JS never interleaves
// two synchronous init/update/digest sequences, so sharing it is safe.
const blake = await createBLAKE2b(256);

/** BLAKE2b with a 32-byte digest and no key parameter over the concatenation of `parts`. */
export function blake2b256(...parts: Uint8Array[]): Buffer {
  blake.init();
  for (const p of parts) blake.update(p);
  return Buffer.from(blake.digest('binary'));
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** AES-256-CTR with a full 16-byte initial counter block (OpenSSL's 128-bit big-endian counter, like borg). */
export function aes256Ctr(key: Uint8Array, counterBlock: Uint8Array, data: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-ctr', key, counterBlock);
  const out = c.update(data);
  const fin = c.final();
  return fin.length === 0 ? out : Buffer.concat([out, fin]);
}

/** Constant-time equality that is false (not an exception) for different lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
