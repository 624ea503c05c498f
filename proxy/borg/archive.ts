// Archive metadata objects (BORG_PROTOCOL.md §5.3; borg/archive.py `Archive.save` / `_load_meta`,
// item.pyx `ArchiveItem`, constants.py `ARCHIVE_KEYS` / `REQUIRED_ARCHIVE_KEYS`). The object id is
// id_hash(plaintext) and the plaintext includes the TAM, so re-TAMming yields a new id (§9.6).
import { BorgFormatError } from './errors.js';
import type { BorgKey } from './keys.js';
import { LIMITS, asArray, asBytes, asInt, type Value, type ValueMap } from './msgpack.js';
import { packWithTam, verifyTam, type TamVerifyOptions } from './tam.js';

/** ARCHIVE_KEYS of borg 1.2.4 plus `tam`; anything else is refused. */
export const ARCHIVE_KEYS: readonly string[] = [
  'version', 'name', 'items', 'cmdline', 'hostname', 'username', 'time', 'time_end', 'comment', 'chunker_params',
  'recreate_cmdline', 'recreate_source_id', 'recreate_args', 'recreate_partial_chunks',
  'size', 'csize', 'nfiles', 'size_parts', 'csize_parts', 'nfiles_parts', 'tam',
];
const REQUIRED = ['version', 'name', 'items', 'cmdline', 'time'] as const;

/** Statistics stored since 1.2 (absent in older archives, which makes clients fetch items for stats). */
export interface ArchiveStats {
  readonly size: number;
  readonly csize: number;
  readonly nfiles: number;
  readonly sizeParts: number;
  readonly csizeParts: number;
  readonly nfilesParts: number;
}

export interface ArchiveMeta {
  /** Binary string of the name bytes (may differ from the manifest key only after `borg check --repair`). */
  readonly name: string;
  /** Ids of the items-metadata chunks, in stream order. */
  readonly items: readonly Buffer[];
  readonly cmdline: readonly Buffer[];
  readonly time: string;
  readonly timeEnd?: string;
  readonly hostname?: Buffer;
  readonly username?: Buffer;
  readonly comment?: Buffer;
  /** e.g. ["buzhash", 19, 23, 21, 4095] or ["fixed", 4194304, 0]; older archives omit the name. */
  readonly chunkerParams?: readonly Value[];
  readonly stats?: ArchiveStats;
  readonly tamVerified: boolean;
  /** The decoded map without `tam` (for re-packing). */
  readonly value: ValueMap;
}

const uint = (v: Value | undefined, what: string): number => asInt(v, what, { min: 0 });

/** Parses and (by default, required) TAM-verifies a decrypted archive metadata plaintext. */
export function parseArchive(key: BorgKey, plaintext: Buffer, opts: TamVerifyOptions = {}): ArchiveMeta {
  // borg unpacks archive metadata with an unlimited unpackb; LIMITS.items bounds it sanely.
  const { value: m, verified } = verifyTam(key, plaintext, 'archive', LIMITS.items, opts);
  for (const k of m.keys()) if (!ARCHIVE_KEYS.includes(k)) throw new BorgFormatError(`archive: unexpected key ${JSON.stringify(k)}`, 'unexpected-key');
  for (const k of REQUIRED) if (!m.has(k)) throw new BorgFormatError(`archive: missing required key ${k}`, 'missing-key');
  if (asInt(m.get('version'), 'version') !== 1) throw new BorgFormatError('Unknown archive metadata version', 'archive-version');
  const text = (k: string): string => asBytes(m.get(k), k, { maxLen: 64 }).toString('latin1');
  const opt = (k: string): Buffer | undefined => (m.has(k) ? asBytes(m.get(k), k) : undefined);
  const hasStats = ['size', 'csize', 'nfiles', 'size_parts', 'csize_parts', 'nfiles_parts'].every((k) => m.has(k));
  const timeEnd = m.has('time_end') ? text('time_end') : undefined;
  const hostname = opt('hostname');
  const username = opt('username');
  const comment = opt('comment');
  return {
    name: asBytes(m.get('name'), 'name').toString('latin1'),
    items: asArray(m.get('items'), 'items').map((id) => asBytes(id, 'items[]', { len: 32 })),
    cmdline: asArray(m.get('cmdline'), 'cmdline').map((a) => asBytes(a, 'cmdline[]')),
    time: text('time'),
    ...(timeEnd === undefined ? {} : { timeEnd }),
    ...(hostname === undefined ? {} : { hostname }),
    ...(username === undefined ? {} : { username }),
    ...(comment === undefined ? {} : { comment }),
    ...(m.has('chunker_params') ? { chunkerParams: asArray(m.get('chunker_params'), 'chunker_params', { maxLen: 8 }) } : {}),
    ...(hasStats
      ? {
          stats: {
            size: uint(m.get('size'), 'size'),
            csize: uint(m.get('csize'), 'csize'),
            nfiles: uint(m.get('nfiles'), 'nfiles'),
            sizeParts: uint(m.get('size_parts'), 'size_parts'),
            csizeParts: uint(m.get('csize_parts'), 'csize_parts'),
            nfilesParts: uint(m.get('nfiles_parts'), 'nfiles_parts'),
          },
        }
      : {}),
    tamVerified: verified,
    value: m,
  };
}

/**
 * Re-TAMs an archive plaintext: verifies its TAM under `from` (required), then packs the same metadata with a
 * fresh TAM under `to`. Returns the new plaintext; the caller computes the new id (id_hash) and stores it.
 * Every other field re-encodes byte-identically (borg's packer and ours produce the same canonical bytes).
 */
export function retamArchive(plaintext: Buffer, from: BorgKey, to: BorgKey, salt?: Buffer): Buffer {
  const meta = parseArchive(from, plaintext);
  return packWithTam(to, meta.value, 'archive', salt);
}
