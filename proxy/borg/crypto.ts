// Primitive crypto for Borg's objects (BORG_PROTOCOL.md §3.1; borg/crypto/key.py `ID_HMAC_SHA_256`,
// `ID_BLAKE2b_256`, `PlaintextKey.id_hash`; crypto/low_level.pyx `blake2b_256`, `AES256_CTR_*`).
//
// BLAKE2b-256 in borg is a plain digest with digest_size=32 over key ‖ data (no BLAKE2 key parameter). Node's
// createHash('blake2b512') cannot produce it (the digest length is part of the parameter block), so this uses
// hash-wasm's createBLAKE2b(256), the fastest we found (docs/performance.md, "Libraries of proxy/borg").
import { createCipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createBLAKE2b } from 'hash-wasm';
import koffi from 'koffi';

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

/**
 * AES-256-CTR with a full 16-byte initial counter block (OpenSSL's 128-bit big-endian counter, like
 * borg). With `out`, the result is written there (at least `data.length` bytes) and `out` returned.
 */
export function aes256Ctr(key: Uint8Array, counterBlock: Uint8Array, data: Uint8Array, out?: Buffer): Buffer {
  const native = nativeAes();
  if (native) return native(key, counterBlock, data, out);
  const c = createCipheriv('aes-256-ctr', key, counterBlock);
  const ct = c.update(data);
  const fin = c.final();
  const r = fin.length === 0 ? ct : Buffer.concat([ct, fin]);
  if (!out) return r;
  r.copy(out);
  return out;
}

type AesCtr = (key: Uint8Array, counterBlock: Uint8Array, data: Uint8Array, out?: Buffer) => Buffer;

let aes: AesCtr | null | undefined;

/**
 * AES-CTR through the OpenSSL Node itself is built with (its exported symbols, called through
 * koffi), with one cipher context per key that keeps the key schedule: createCipheriv builds
 * both per call, and the service does two per object (figures in docs/performance.md). Contexts
 * belong to the thread that made them (each worker thread loads this module itself) and are
 * freed when their key is collected. Null where Node's OpenSSL symbols are not reachable.
 */
function nativeAes(): AesCtr | null {
  if (aes !== undefined) return aes;
  aes = null;
  let lib: koffi.IKoffiLib;
  try {
    lib = koffi.load(null);
  } catch {
    return aes;
  }
  const fn = (decl: string) => {
    try {
      return lib.func(decl) as (...args: unknown[]) => unknown;
    } catch {
      return undefined;
    }
  };
  const ctxNew = fn('void *EVP_CIPHER_CTX_new()');
  const ctxFree = fn('void EVP_CIPHER_CTX_free(void *ctx)');
  const cipher = fn('const void *EVP_aes_256_ctr()');
  const init = fn('int EVP_EncryptInit_ex(void *ctx, const void *cipher, void *impl, const uint8_t *key, const uint8_t *iv)');
  const update = fn('int EVP_EncryptUpdate(void *ctx, uint8_t *out, int32_t *outl, const uint8_t *in, int inl)');
  if (!ctxNew || !ctxFree || !cipher || !init || !update) return aes;
  const aes256 = cipher();
  const freeCtx = new FinalizationRegistry<unknown>((ctx) => ctxFree(ctx));
  const contexts = new WeakMap<Uint8Array, { ctx: unknown; key: Buffer }>();
  const outl = new Int32Array(1);
  const contextFor = (key: Uint8Array) => {
    const known = contexts.get(key);
    // A key's bytes changed in place (no caller does that) would make a stale context: checked.
    if (known && known.key.equals(key)) return known.ctx;
    if (key.length !== 32) throw new RangeError(`AES-256 needs a 32-byte key, not ${key.length}`);
    const ctx = ctxNew();
    if (!ctx) throw new Error('EVP_CIPHER_CTX_new failed');
    freeCtx.register(key, ctx);
    if (init(ctx, aes256, null, key, null) !== 1) throw new Error('EVP_EncryptInit_ex failed');
    contexts.set(key, { ctx, key: Buffer.from(key) });
    return ctx;
  };
  aes = (key, counterBlock, data, out) => {
    if (counterBlock.length !== 16) throw new RangeError('the AES-CTR counter block has 16 bytes');
    const ctx = contextFor(key);
    const dst = out ?? Buffer.allocUnsafe(data.length);
    if (dst.length < data.length) throw new RangeError('output buffer too small');
    if (data.length > 0x7fffffff) throw new RangeError('data too large for one AES-CTR call');
    // A new counter block on the same context keeps the key schedule (key NULL).
    if (init(ctx, null, null, null, counterBlock) !== 1 || update(ctx, dst, outl, data, data.length) !== 1 || outl[0] !== data.length) {
      throw new Error('OpenSSL AES-CTR failed');
    }
    return dst;
  };
  return aes;
}

/** Constant-time equality that is false (not an exception) for different lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
