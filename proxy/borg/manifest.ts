// The manifest (BORG_PROTOCOL.md §5.1; borg/helpers/manifest.py `Manifest.load` / `write`, `Archives`;
// item.pyx `ManifestItem`). Stored under MANIFEST_ID (32 zero bytes), never id-checked, authenticated by its
// TAM. Its *manifest id* (the cache's sync trigger, §6.2) is id_hash(plaintext).
import { BorgFormatError } from './errors.js';
import type { BorgKey } from './keys.js';
import {
  LIMITS,
  asArray,
  asBytes,
  asInt,
  asMap,
  assertKeys,
  keyOf,
  sortedMap,
  type Packable,
  type Value,
  type ValueMap,
} from './msgpack.js';
import { idHash } from './objects.js';
import { packWithTam, verifyTam, type TamVerifyOptions } from './tam.js';

/** One archive entry of the manifest. */
export interface ManifestArchive {
  /** Id of the archive metadata object. */
  readonly id: Buffer;
  /** Start time, UTC, `YYYY-mm-ddTHH:MM:SS.ffffff`. */
  readonly time: string;
}

/** A parsed manifest. Archive names are binary strings (latin1 of the name bytes) so any name round-trips. */
export interface Manifest {
  readonly version: 1 | 2;
  readonly timestamp: string;
  readonly archives: ReadonlyMap<string, ManifestArchive>;
  readonly config: ValueMap;
  readonly itemKeys: readonly string[];
  /** Whether a TAM was present and verified. */
  readonly tamVerified: boolean;
}

/** What `packManifest` needs; config and item_keys default to what borg 1.2.4 writes. */
export interface ManifestInput {
  readonly archives: ReadonlyMap<string, ManifestArchive>;
  readonly timestamp: string;
  readonly config?: ReadonlyMap<string, Packable>;
  readonly itemKeys?: readonly string[];
  readonly version?: 1;
}

/** borg 1.2.4's ITEM_KEYS, sorted, as `Manifest.write` stores them (constants.py). */
export const ITEM_KEYS: readonly string[] = [
  'acl_access', 'acl_default', 'acl_extended', 'acl_nfs4', 'atime', 'birthtime', 'bsdflags', 'chunks',
  'chunks_healthy', 'ctime', 'gid', 'group', 'hardlink_master', 'mode', 'mtime', 'part', 'path', 'rdev', 'size',
  'source', 'uid', 'user', 'xattrs',
];

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$/;

function asTimestamp(v: Value | undefined, what: string): string {
  const s = asBytes(v, what, { maxLen: 64 }).toString('latin1');
  if (!TIMESTAMP.test(s)) throw new BorgFormatError(`${what}: not an ISO timestamp`, 'timestamp');
  return s;
}

/**
 * Parses and TAM-verifies a decrypted manifest plaintext with the `manifest` unpacker limits (§1.2).
 * `required` defaults to true: BorgCube never accepts an unauthenticated manifest.
 */
export function parseManifest(key: BorgKey, plaintext: Buffer, opts: TamVerifyOptions = {}): Manifest {
  const { value: m, verified } = verifyTam(key, plaintext, 'manifest', LIMITS.manifest, opts);
  // ManifestItem's keys; anything else did not come from a borg 1.2 client.
  assertKeys(m, ['version', 'archives', 'timestamp', 'config', 'item_keys'], 'manifest');
  const version = asInt(m.get('version'), 'version');
  if (version !== 1 && version !== 2) throw new BorgFormatError('Invalid manifest version', 'manifest-version');
  const archives = new Map<string, ManifestArchive>();
  // Archives.set_raw_dict: every value a dict with id and time.
  for (const [name, v] of asMap(m.get('archives'), 'archives')) {
    const entry = asMap(v, `archives[${JSON.stringify(name)}]`);
    assertKeys(entry, ['id', 'time'], 'manifest archive entry');
    archives.set(name, { id: asBytes(entry.get('id'), 'archive id', { len: 32 }), time: asTimestamp(entry.get('time'), 'archive time') });
  }
  const itemKeys = m.has('item_keys') ? asArray(m.get('item_keys'), 'item_keys').map((k) => asBytes(k, 'item key', { maxLen: 255 }).toString('latin1')) : [];
  return {
    version,
    timestamp: asTimestamp(m.get('timestamp'), 'timestamp'),
    archives,
    config: m.has('config') ? asMap(m.get('config'), 'config') : new Map<string, Value>(),
    itemKeys,
    tamVerified: verified,
  };
}

/** Operations for which the manifest lists mandatory features (borg 1.2.4 supports none, so any is fatal). */
export function mandatoryFeatures(m: Manifest): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const flags = m.config.get('feature_flags');
  if (flags === undefined) return out;
  for (const [op, v] of asMap(flags, 'feature_flags')) {
    const mandatory = asMap(v, `feature_flags.${op}`).get('mandatory');
    if (mandatory === undefined) continue;
    const list = asArray(mandatory, 'mandatory').map((f) => asBytes(f, 'feature').toString('latin1'));
    if (list.length > 0) out.set(op, list);
  }
  return out;
}

/**
 * Packs a manifest plaintext like `Manifest.write` (StableDict keys, TAM under `key`); encrypt it yourself
 * and PUT it under MANIFEST_ID. Archives are sorted by name bytes.
 */
export function packManifest(key: BorgKey, input: ManifestInput, salt?: Buffer): Buffer {
  if (!TIMESTAMP.test(input.timestamp)) throw new BorgFormatError('timestamp is not ISO', 'timestamp');
  if (input.archives.size > 400000) throw new BorgFormatError('more than MAX_ARCHIVES archives', 'manifest-size');
  const archives = new Map<string, Packable>();
  for (const [name, a] of [...input.archives].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))) {
    if (name.length > 255) throw new BorgFormatError('archive name longer than 255 bytes', 'manifest-size');
    if (a.id.length !== 32) throw new BorgFormatError('archive id must be 32 bytes', 'manifest-size');
    archives.set(name, sortedMap<Packable>({ id: a.id, time: Buffer.from(a.time, 'latin1') }));
  }
  const config = input.config ?? new Map<string, Packable>([['tam_required', true]]);
  const m = new Map<string, Packable>([
    ['version', input.version ?? 1],
    ['archives', archives],
    ['timestamp', Buffer.from(input.timestamp, 'latin1')],
    ['config', config instanceof Map ? sortedMap(config) : config],
    ['item_keys', (input.itemKeys ?? ITEM_KEYS).map((k) => Buffer.from(k, 'latin1'))],
  ]);
  return packWithTam(key, m, 'manifest', salt);
}

/** The manifest id the client cache stores in `[cache] manifest`: id_hash(plaintext). */
export function manifestId(key: BorgKey, plaintext: Uint8Array): Buffer {
  return idHash(key, plaintext);
}

/** Binary-string archive name from UTF-8 text (the form manifest maps are keyed by). */
export function archiveName(text: string): string {
  return keyOf(Buffer.from(text, 'utf8'));
}

/** UTF-8 text of a binary-string archive name (borg's safe_decode replaces invalid bytes too). */
export function archiveNameText(name: string): string {
  return Buffer.from(name, 'latin1').toString('utf8');
}
