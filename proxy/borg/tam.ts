// TAM: tertiary authentication for metadata (BORG_PROTOCOL.md §5.2; borg/crypto/key.py `KeyBase._tam_key`,
// `pack_and_authenticate_metadata`, `unpack_and_verify_manifest`, `PlaintextKey._tam_key`).
//
//   tam_key = HKDF-SHA512(ikm = id_key ‖ enc_key ‖ enc_hmac_key (raw stored lengths: 96 or 288 bytes),
//                         salt = tam.salt, info = "borg-metadata-authentication-" + context, L = 64)
//   tam.hmac = HMAC-SHA512(tam_key, packb(map with tam = {hmac: 0^64, salt, type}))
//
// Verification follows 1.2.4: zero the FIRST occurrence of the hmac bytes in the raw plaintext and recompute.
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { constantTimeEqual } from './crypto.js';
import { BorgFormatError, IntegrityError } from './errors.js';
import type { BorgKey } from './keys.js';
import { asBytes, asMap, packb, sortedMap, unpackb, type Packable, type UnpackLimits, type ValueMap } from './msgpack.js';

export type TamContext = 'manifest' | 'archive';
export const TAM_TYPE = 'HKDF_HMAC_SHA512';

/** The 64-byte HMAC key for `context` (PlaintextKey: salt ‖ context, which is public). */
export function tamKey(key: BorgKey, salt: Uint8Array, context: TamContext): Buffer {
  if (key.type === 0x02) return Buffer.concat([salt, Buffer.from(context)]);
  const ikm = Buffer.concat([key.idKey, key.encKey, key.encHmacKey]);
  return Buffer.from(hkdfSync('sha512', ikm, salt, `borg-metadata-authentication-${context}`, 64));
}

function tamMap(hmac: Buffer, salt: Buffer): Map<string, Packable> {
  return sortedMap<Packable>({ type: TAM_TYPE, hmac, salt });
}

/**
 * Packs `metadata` with a TAM under `key` (pack_and_authenticate_metadata): keys sorted like StableDict, packed
 * once with a zero hmac, HMAC'd, packed again. Any `tam` entry in `metadata` is replaced.
 */
export function packWithTam(
  key: BorgKey,
  metadata: ReadonlyMap<string, Packable>,
  context: TamContext,
  salt: Buffer = randomBytes(64),
): Buffer {
  const m = sortedMap(new Map([...metadata].filter(([k]) => k !== 'tam')).set('tam', tamMap(Buffer.alloc(64), salt)));
  const first = packb(m);
  const hmac = createHmac('sha512', tamKey(key, salt, context)).update(first).digest();
  m.set('tam', tamMap(hmac, salt));
  return packb(m);
}

export interface TamResult {
  /** The decoded map, `tam` removed. */
  readonly value: ValueMap;
  /** True if a TAM was present and verified; false only when allowed (`required: false`) and absent. */
  readonly verified: boolean;
}

export interface TamVerifyOptions {
  /** Refuse a missing TAM (default true: BorgCube always requires TAMs). */
  readonly required?: boolean;
}

/**
 * Unpacks `plaintext` with `limits` and verifies its TAM like 1.2.4's unpack_and_verify_manifest (for the
 * archive context too, which 1.2.5+ checks the same way). Throws IntegrityError on any mismatch.
 */
export function verifyTam(key: BorgKey, plaintext: Buffer, context: TamContext, limits: UnpackLimits, opts: TamVerifyOptions = {}): TamResult {
  const required = opts.required ?? true;
  if (plaintext.subarray(0, 4).equals(Buffer.from([0xc1, 0xc1, 0xc1, 0xc1]))) {
    throw new BorgFormatError('metadata from the future (starts with c1c1c1c1)', 'unsupported-manifest');
  }
  const value = asMap(unpackb(plaintext, limits), context);
  const tam = value.get('tam');
  value.delete('tam');
  if (tam === undefined) {
    if (required) throw new IntegrityError(`${context} has no TAM but TAM is required`, 'tam-missing');
    return { value, verified: false };
  }
  if (!(tam instanceof Map)) throw new IntegrityError(`${context} TAM is not a map`, 'tam');
  const type = tam.get('type');
  if (!Buffer.isBuffer(type) || type.toString('latin1') !== TAM_TYPE) {
    // borg ignores an unsupported suite when TAM is not required; we never accept it silently.
    throw new IntegrityError(`${context} TAM uses an unsupported suite`, 'tam-suite');
  }
  // borg only checks that hmac and salt are bytes; it always writes 64 of each, so we insist on that.
  const hmac = asBytes(tam.get('hmac'), 'tam.hmac', { len: 64 });
  const salt = asBytes(tam.get('salt'), 'tam.salt', { len: 64 });
  const zeroed = Buffer.from(plaintext);
  const at = zeroed.indexOf(hmac);
  zeroed.fill(0, at, at + 64);
  const expected = createHmac('sha512', tamKey(key, salt, context)).update(zeroed).digest();
  if (!constantTimeEqual(expected, hmac)) {
    throw new IntegrityError(context === 'manifest' ? 'Manifest authentication did not verify' : 'Archive authentication did not verify', 'tam');
  }
  return { value, verified: true };
}
