// Repository object envelopes (BORG_PROTOCOL.md §3.1; borg/crypto/key.py `AESKeyBase.encrypt` / `decrypt`,
// `AuthenticatedKeyBase`, `PlaintextKey`, `KeyBase.assert_id`; crypto/low_level.pyx `AES256_CTR_BASE`).
//
//   AES types 0x00/0x01/0x03/0x04/0x05:  [type:1][MAC:32][IV:8 BE][AES-256-CTR(enc_key, 0^8 ‖ IV, P)]
//   0x02 none, 0x06/0x07 authenticated:  [type:1][P]
//
// The MAC covers IV ‖ ciphertext only (header_len=1, aad_offset=1): the type byte is NOT authenticated, so it
// is checked explicitly. Order as in borg: MAC first, then decrypt; after decompression the id is recomputed.
import { aes256Ctr, blake2b256, constantTimeEqual, hmacSha256, sha256 } from './crypto.js';
import { decompress, type Decompressed, type DecompressOptions } from './compression.js';
import { IntegrityError } from './errors.js';
import { isBlake2, isEncrypted, type BorgKey } from './keys.js';

/** Bytes an AES envelope adds: type + MAC + IV (PAYLOAD_OVERHEAD). */
export const AES_OVERHEAD = 41;
/** MANIFEST_ID: the manifest is stored under 32 zero bytes and is never id-checked. */
export const MANIFEST_ID = Buffer.alloc(32);

/** id_hash (§3.1): HMAC-SHA256(id_key, data), BLAKE2b-256(id_key ‖ data), or SHA-256 for `none`. */
export function idHash(key: BorgKey, data: Uint8Array): Buffer {
  if (key.type === 0x02) return sha256(data);
  return isBlake2(key.type) ? blake2b256(key.idKey, data) : hmacSha256(key.idKey, data);
}

/** AES counter blocks a payload uses: ceil(len/16) (crypto/low_level.pyx `num_cipher_blocks`). */
export function blocksUsed(payloadLength: number): number {
  return Math.ceil(payloadLength / 16);
}

function objectMac(key: BorgKey, ivAndCt: Uint8Array): Buffer {
  // AES256_CTR_HMAC_SHA256 / AES256_CTR_BLAKE2b: the BLAKE2 MAC is an unkeyed digest over enc_hmac_key ‖ data.
  return isBlake2(key.type) ? blake2b256(key.encHmacKey, ivAndCt) : hmacSha256(key.encHmacKey, ivAndCt);
}

function counterBlock(iv8: Uint8Array): Buffer {
  const cb = Buffer.alloc(16);
  cb.set(iv8, 8);
  return cb;
}

function typeMatches(key: BorgKey, b: number | undefined): boolean {
  // AESKeyBase.decrypt also accepts PassphraseKey's 0x01 for a RepoKey.
  return b === key.type || (b === 0x01 && key.type === 0x03);
}

export interface Decrypted {
  /** The compressed payload P, exactly as encrypted (a view into the object for unencrypted types). */
  readonly payload: Buffer;
  /** The object's IV (AES types only). */
  readonly iv?: bigint;
}

function checkTypeByte(key: BorgKey, obj: Buffer) {
  if (!typeMatches(key, obj[0])) {
    throw new IntegrityError(`object type byte 0x${(obj[0] ?? 0).toString(16)} does not match key type 0x${key.type.toString(16)}`, 'type-byte');
  }
}

/** An AES object's envelope: long enough, and its MAC under `key` right. */
function checkAesMac(key: BorgKey, obj: Buffer) {
  if (obj.length < AES_OVERHEAD) throw new IntegrityError('object shorter than the AES envelope', 'length');
  if (!constantTimeEqual(objectMac(key, obj.subarray(33)), obj.subarray(1, 33))) throw new IntegrityError('MAC Authentication failed', 'mac');
}

function checkIvRange(iv: bigint, payloadLength: number) {
  if (iv < 0n || iv + BigInt(blocksUsed(payloadLength)) > 2n ** 64n) throw new RangeError('IV outside the 64-bit counter space');
}

/** Checks the type byte and MAC, then decrypts. Throws IntegrityError. */
export function decryptObject(key: BorgKey, obj: Buffer): Decrypted {
  checkTypeByte(key, obj);
  if (!isEncrypted(key.type)) return { payload: obj.subarray(1) };
  checkAesMac(key, obj);
  const iv8 = obj.subarray(33, 41);
  return { payload: aes256Ctr(key.encKey, counterBlock(iv8), obj.subarray(41)), iv: iv8.readBigUInt64BE(0) };
}

/**
 * Encrypts payload P at counter `iv` (AES types), or wraps it as `[type][P]` (none/authenticated).
 * The caller owns nonce management (§3.2): the next free IV is `iv + blocksUsed(P.length)`.
 */
export function encryptObject(key: BorgKey, payload: Uint8Array, iv: bigint | number = 0n): Buffer {
  if (!isEncrypted(key.type)) {
    const out = Buffer.allocUnsafe(1 + payload.length);
    out[0] = key.type;
    out.set(payload, 1);
    return out;
  }
  const ivb = typeof iv === 'bigint' ? iv : BigInt(iv);
  checkIvRange(ivb, payload.length);
  const out = Buffer.allocUnsafe(AES_OVERHEAD + payload.length);
  out[0] = key.type;
  out.writeBigUInt64BE(ivb, 33);
  aes256Ctr(key.encKey, counterBlock(out.subarray(33, 41)), payload, out.subarray(41));
  objectMac(key, out.subarray(33)).copy(out, 1);
  return out;
}

/**
 * An AES object of `key` resealed for `jobKey` in its own memory: type byte and MAC checked,
 * decrypted; then, for an AES `jobKey`, encrypted at counter `iv` and MAC'd (AES-CTR keeps the
 * length; returns `obj`), for an authenticated one wrapped as `[type][P]` (returns the view of
 * `obj` from its last IV byte on). Allocates nothing: a restore's objects are a few hundred MB,
 * and fresh buffers for the plaintext and the new object each cost a page fault per 4 KiB here.
 * Throws IntegrityError before anything is changed.
 */
export function resealInPlace(key: BorgKey, jobKey: BorgKey, obj: Buffer, iv?: bigint): Buffer {
  if (!isEncrypted(key.type) || jobKey.type === 0x02) throw new RangeError('an in-place reseal needs an AES key and a job key');
  checkTypeByte(key, obj);
  checkAesMac(key, obj);
  const body = obj.subarray(41);
  if (!isEncrypted(jobKey.type)) {
    aes256Ctr(key.encKey, counterBlock(obj.subarray(33, 41)), body, body);
    obj[40] = jobKey.type;
    return obj.subarray(40);
  }
  if (iv === undefined) throw new RangeError('an AES job key needs a counter');
  checkIvRange(iv, body.length);
  aes256Ctr(key.encKey, counterBlock(obj.subarray(33, 41)), body, body);
  obj[0] = jobKey.type;
  obj.writeBigUInt64BE(iv, 33);
  aes256Ctr(jobKey.encKey, counterBlock(obj.subarray(33, 41)), body, body);
  objectMac(jobKey, obj.subarray(33)).copy(obj, 1);
  return obj;
}

export interface VerifiedChunk {
  /** Compressed payload P as received — re-encrypt this unchanged. */
  readonly payload: Buffer;
  readonly plaintext: Buffer;
  readonly plaintextLength: number;
  /** Compression label, e.g. `lz4` or `obfuscate(zstd)`. */
  readonly compression: string;
  readonly iv?: bigint;
}

/**
 * Full check of a chunk PUT: type byte, MAC, decrypt, bounded decompress, recomputed id compared in constant
 * time (borg's decrypt + assert_id). Throws IntegrityError or DecompressionError.
 *
 * `maxPlaintext` defaults to 128 MiB; legitimate plaintexts are at most 8 MiB for buzhash chunks and about
 * MAX_DATA_SIZE (20 MiB) for fixed-chunker blocks and metadata, so a proxy should pass a tighter bound.
 */
export async function verifyChunk(key: BorgKey, id: Uint8Array, obj: Buffer, maxPlaintext?: number): Promise<VerifiedChunk> {
  if (id.length !== 32) throw new IntegrityError('chunk id is not 32 bytes', 'id');
  const { payload, iv } = decryptObject(key, obj);
  const opts: DecompressOptions = maxPlaintext === undefined ? {} : { maxOutput: maxPlaintext };
  const d: Decompressed = await decompress(payload, opts);
  if (!constantTimeEqual(idHash(key, d.data), id)) {
    throw new IntegrityError(`Chunk ${Buffer.from(id).toString('hex')}: id verification failed`, 'id');
  }
  return { payload, plaintext: d.data, plaintextLength: d.data.length, compression: d.label, ...(iv === undefined ? {} : { iv }) };
}

/** Decrypts and decompresses without an id check (the manifest, §5.1: `key.decrypt(None, cdata)`). */
export async function decryptUnchecked(key: BorgKey, obj: Buffer, opts: DecompressOptions = {}): Promise<Decompressed & Decrypted> {
  const dec = decryptObject(key, obj);
  const d = await decompress(dec.payload, opts);
  return { ...d, ...dec };
}

/** Re-encrypts a verified payload with the real key at `iv` (payload unchanged, no recompression). */
export function reencrypt(realKey: BorgKey, payload: Uint8Array, iv: bigint | number): Buffer {
  return encryptObject(realKey, payload, iv);
}
