// Borg keys (BORG_PROTOCOL.md §2; borg/crypto/key.py `KeyfileKeyBase.decrypt_key_file` / `encrypt_key_file` /
// `_load` / `_save`, `KeyfileKey.save` / `load`, `RepoKey.load`, `random_blake2b_256_key`,
// `AESKeyBase.init_from_random_data`; item.pyx `Key`, `EncryptedKey`).
//
// Key text is either a key file (`BORG_KEY <64 hex>` line, then base64 wrapped at 70 columns, trailing \n) or
// the repokey text `load_key` returns (the same wrapped base64 without header, with embedded \n). The base64
// decodes to the PBKDF2 envelope (msgpack, sorted keys), whose `data` decrypts to the inner key map.
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { aes256Ctr, constantTimeEqual, hmacSha256 } from './crypto.js';
import { BorgFormatError, PassphraseWrongError } from './errors.js';
import { LIMITS, assertKeys, asMap, getBool, getBytes, getInt, getText, packb, sortedMap, unpackb, type Packable } from './msgpack.js';

/** Key TYPE bytes: the first byte of every repository object (§2.1). */
export const KeyType = {
  KEYFILE: 0x00,
  /** Obsolete PassphraseKey; borg decrypts such objects as RepoKey. */
  PASSPHRASE: 0x01,
  PLAINTEXT: 0x02,
  REPOKEY: 0x03,
  BLAKE2_KEYFILE: 0x04,
  BLAKE2_REPOKEY: 0x05,
  BLAKE2_AUTHENTICATED: 0x06,
  AUTHENTICATED: 0x07,
} as const;
export type KeyType = 0x00 | 0x02 | 0x03 | 0x04 | 0x05 | 0x06 | 0x07;

/** A loaded Borg key. For PLAINTEXT (0x02) all key buffers are empty. */
export interface BorgKey {
  readonly type: KeyType;
  /** 32 bytes (HMAC-SHA256 types) or 128 bytes (BLAKE2 types: 64 random ‖ 64 zero). */
  readonly idKey: Buffer;
  /** 32 bytes (AES-256). */
  readonly encKey: Buffer;
  /** 32 bytes (HMAC-SHA256 types) or 128 bytes (BLAKE2 types). */
  readonly encHmacKey: Buffer;
  /** Signed int32 seed of the buzhash chunker. */
  readonly chunkSeed: number;
  /** Informational; borg never compares it with the repository (§1.5). */
  readonly repositoryId: Buffer;
  readonly tamRequired: boolean;
}

export const isBlake2 = (t: KeyType): boolean => t === 0x04 || t === 0x05 || t === 0x06;
/** Types whose objects are AES-CTR encrypted with a MAC (0x01 is handled as 0x03). */
export const isEncrypted = (t: KeyType): boolean => t === 0x00 || t === 0x03 || t === 0x04 || t === 0x05;
/** Types stored as repokey (the key text travels through `load_key`). */
export const isRepokey = (t: KeyType): boolean => t === 0x03 || t === 0x05 || t === 0x06 || t === 0x07;

export function asKeyType(b: number): KeyType {
  if (b === 0x00 || b === 0x02 || b === 0x03 || b === 0x04 || b === 0x05 || b === 0x06 || b === 0x07) return b;
  if (b === 0x01) return 0x03; // identify_key: PassphraseKey objects are dispatched to RepoKey
  throw new BorgFormatError(`unsupported key type 0x${b.toString(16)}`, 'key-type');
}

/** The key for `-e none`: ids are unkeyed SHA-256, TAM key is salt ‖ context. */
export function plaintextKey(): BorgKey {
  const empty = Buffer.alloc(0);
  return { type: 0x02, idKey: empty, encKey: empty, encHmacKey: empty, chunkSeed: 0, repositoryId: empty, tamRequired: false };
}

// ------------------------------------------------------------------------------------------------
// Key text

export type ParsedKeyText =
  | { readonly kind: 'keyfile'; readonly repositoryId: Buffer; readonly envelope: Buffer }
  | { readonly kind: 'repokey'; readonly envelope: Buffer };

const BASE64_TEXT = /^[A-Za-z0-9+/=\s]+$/;

function strictBase64(text: string): Buffer {
  // borg's a2b_base64 skips any non-alphabet character; we only allow whitespace between the lines.
  const compact = text.replace(/\s+/g, '');
  if (!BASE64_TEXT.test(text) || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw new BorgFormatError('key text is not base64', 'key-text');
  }
  return Buffer.from(compact, 'base64');
}

/** Splits key text into its envelope bytes (and, for key files, the repository id of line 1). */
export function parseKeyText(text: string | Buffer): ParsedKeyText {
  const s = typeof text === 'string' ? text : text.toString('utf8');
  if (s.length > 16384) throw new BorgFormatError('key text too long', 'key-text');
  if (s.startsWith('BORG_KEY ')) {
    const nl = s.indexOf('\n');
    const first = (nl < 0 ? s : s.slice(0, nl)).trimEnd();
    const m = /^BORG_KEY ([0-9a-f]{64})$/.exec(first);
    if (!m?.[1]) throw new BorgFormatError('key file line 1 is not "BORG_KEY <64 hex digits>"', 'key-text');
    return { kind: 'keyfile', repositoryId: Buffer.from(m[1], 'hex'), envelope: strictBase64(nl < 0 ? '' : s.slice(nl + 1)) };
  }
  return { kind: 'repokey', envelope: strictBase64(s) };
}

/** base64 wrapped like `'\n'.join(textwrap.wrap(b2a_base64(data).decode('ascii')))` (70 columns). */
export function wrapBase64(data: Uint8Array): string {
  const b64 = Buffer.from(data).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 70) lines.push(b64.slice(i, i + 70));
  return lines.join('\n');
}

// ------------------------------------------------------------------------------------------------
// PBKDF2 envelope

export interface EnvelopeOptions {
  /** Refuse envelopes asking for more PBKDF2 iterations than this (default 1,000,000; borg writes 100,000). */
  readonly maxIterations?: number;
}

/** Decrypts the envelope (§2.2); a wrong passphrase is detected by the HMAC over the plaintext. */
export function decryptKeyEnvelope(envelope: Buffer, passphrase: string, opts: EnvelopeOptions = {}): Buffer {
  const env = asMap(unpackb(envelope, LIMITS.key), 'key envelope');
  assertKeys(env, ['algorithm', 'data', 'hash', 'iterations', 'salt', 'version'], 'key envelope');
  if (getInt(env, 'version') !== 1) throw new BorgFormatError('encrypted key version is not 1', 'key-version');
  if (getText(env, 'algorithm') !== 'sha256') throw new BorgFormatError('encrypted key algorithm is not sha256', 'key-algorithm');
  const iterations = getInt(env, 'iterations', { min: 1, max: opts.maxIterations ?? 1_000_000 });
  const salt = getBytes(env, 'salt', { maxLen: 1024 });
  const hash = getBytes(env, 'hash', { len: 32 });
  const data = getBytes(env, 'data');
  const kek = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, 32, 'sha256');
  const plain = aes256Ctr(kek, Buffer.alloc(16), data);
  if (!constantTimeEqual(hmacSha256(kek, plain), hash)) throw new PassphraseWrongError();
  return plain;
}

/** Builds an envelope around `inner` (borg: `encrypt_key_file`, but with a chosen iteration count). */
export function encryptKeyEnvelope(inner: Buffer, passphrase: string, iterations: number, salt: Buffer = randomBytes(32)): Buffer {
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError('iterations must be a positive integer');
  const kek = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, 32, 'sha256');
  return packb(
    sortedMap<Packable>({
      version: 1,
      salt,
      iterations,
      algorithm: 'sha256',
      hash: hmacSha256(kek, inner),
      data: aes256Ctr(kek, Buffer.alloc(16), inner),
    }),
  );
}

// ------------------------------------------------------------------------------------------------
// Inner key

function keyLengths(type: KeyType): number {
  return isBlake2(type) ? 128 : 32;
}

/** Parses the decrypted inner key map (§2.2 table) for a key of `type`. */
export function parseInnerKey(plain: Buffer, type: KeyType): BorgKey {
  if (type === 0x02) throw new BorgFormatError('a plaintext repository has no key', 'key-type');
  // borg reads the inner key with an unlimited unpackb; it is bounded by the 4000-byte envelope `data`.
  const m = asMap(unpackb(plain, LIMITS.key), 'key');
  assertKeys(m, ['chunk_seed', 'enc_hmac_key', 'enc_key', 'id_key', 'repository_id', 'tam_required', 'version'], 'key');
  if (getInt(m, 'version') !== 1) throw new BorgFormatError('key version is not 1', 'key-version');
  const n = keyLengths(type);
  return {
    type,
    idKey: getBytes(m, 'id_key', { len: n }),
    encKey: getBytes(m, 'enc_key', { len: 32 }),
    encHmacKey: getBytes(m, 'enc_hmac_key', { len: n }),
    chunkSeed: getInt(m, 'chunk_seed', { min: -0x80000000, max: 0x7fffffff }),
    repositoryId: getBytes(m, 'repository_id', { len: 32 }),
    // KeyfileKeyBase._load: key.get('tam_required', <security dir state>); 1.2 keys always carry it.
    tamRequired: m.has('tam_required') ? getBool(m, 'tam_required') : true,
  };
}

/** The inner key map as borg's `_save` packs it (sorted keys). */
export function packInnerKey(k: BorgKey): Buffer {
  return packb(
    sortedMap<Packable>({
      version: 1,
      repository_id: k.repositoryId,
      enc_key: k.encKey,
      enc_hmac_key: k.encHmacKey,
      id_key: k.idKey,
      chunk_seed: k.chunkSeed,
      tam_required: k.tamRequired,
    }),
  );
}

/** Loads key text with a passphrase, for a repository whose objects carry `type`. */
export function loadKey(text: string | Buffer, passphrase: string, type: KeyType, opts: EnvelopeOptions = {}): BorgKey {
  if (type === 0x02) return plaintextKey();
  const parsed = parseKeyText(text);
  return parseInnerKey(decryptKeyEnvelope(parsed.envelope, passphrase, opts), type);
}

/** Key-file text: `BORG_KEY <repo id hex>\n` + wrapped base64 + `\n` (KeyfileKey.save). */
export function renderKeyfile(k: BorgKey, passphrase: string, iterations: number): string {
  return `BORG_KEY ${k.repositoryId.toString('hex')}\n${wrapBase64(encryptKeyEnvelope(packInnerKey(k), passphrase, iterations))}\n`;
}

/** Repokey text exactly as `load_key` returns it: wrapped base64 with embedded \n, no trailing newline. */
export function renderRepokey(k: BorgKey, passphrase: string, iterations: number): string {
  return wrapBase64(encryptKeyEnvelope(packInnerKey(k), passphrase, iterations));
}

// ------------------------------------------------------------------------------------------------
// Job keys (§2.2 end, §6.6)

export interface JobKey {
  readonly key: BorgKey;
  /** Random printable passphrase for BORG_PASSPHRASE. */
  readonly passphrase: string;
}

/**
 * A key for one job: same id_key, chunk_seed and repository_id as `real` (so chunk ids are identical), fresh
 * enc_key and enc_hmac_key (so the client can decrypt nothing written with the real key). `type` must come
 * from the same id-hash family as the real key (HMAC: 0x00/0x03/0x07, BLAKE2: 0x04/0x05/0x06).
 */
export function createJobKey(real: BorgKey, type: KeyType = real.type): JobKey {
  if (real.type === 0x02 || type === 0x02) throw new BorgFormatError('plaintext repositories have no job key', 'key-type');
  if (isBlake2(type) !== isBlake2(real.type)) {
    throw new BorgFormatError('job key type must use the same id hash (HMAC-SHA256 or BLAKE2b) as the real key', 'key-type');
  }
  const encHmacKey = isBlake2(type)
    ? Buffer.concat([randomBytes(64), Buffer.alloc(64)]) // random_blake2b_256_key()
    : randomBytes(32);
  return {
    key: {
      type,
      idKey: Buffer.from(real.idKey),
      encKey: randomBytes(32),
      encHmacKey,
      chunkSeed: real.chunkSeed,
      repositoryId: Buffer.from(real.repositoryId),
      tamRequired: true,
    },
    passphrase: randomBytes(32).toString('base64url'),
  };
}
