// Which items of an archive `borg extract ARCHIVE [PATH…]` restores, and which data chunks it
// reads for them — borg 1.2.4's semantics, so that the objects a restore session may serve are
// exactly those the client's borg asks for:
//  * archiver.py build_matcher: each PATH is a PathPrefixPattern (patterns.py): normpath, no
//    leading or trailing slash; an item is selected when its path (leading slashes stripped)
//    equals it or starts with it + '/'. No PATH: every item.
//  * archiver.py build_filter: with --strip-components N, an item whose path has no more than N
//    components is not extracted (its stripped path is empty).
//  * archiver.py do_extract / archive.py unpack_many (partial extract): a selected hard-link slave
//    (hardlinkable mode, `source`, no chunks) whose master was not selected is written from the
//    master's chunks, which borg remembered while filtering (peek_and_store_hardlink_masters).
import type { ArchiveItem, ChunkRef } from '../borg/item.js';
import { itemSize, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../borg/item.js';
import { createHash } from 'node:crypto';
import { IdCollector } from './id-set.js';

const SLASH = 0x2f;

/** posixpath.normpath of a restore path, then without leading and trailing slashes (PathPrefixPattern). */
export function normalizeRestorePath(path: string): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..' && out.length && out[out.length - 1] !== '..') out.pop();
    else if (part === '..' && path.startsWith('/')) continue;
    else out.push(part);
  }
  // normpath('') is '.', and the pattern './' matches no item borg writes.
  return out.length ? out.join('/') : path.startsWith('/') ? '' : '.';
}

const hardlinkable = (mode: number) => [S_IFREG, S_IFBLK, S_IFCHR, S_IFIFO].includes(mode & S_IFMT);
/** Map keys for raw path bytes (any bytes round-trip through latin1). */
const keyOf = (b: Buffer) => b.toString('latin1');

function stripLeadingSlashes(p: Buffer): Buffer {
  let i = 0;
  while (i < p.length && p[i] === SLASH) i++;
  return i ? p.subarray(i) : p;
}

/** Whether a path keeps something after dropping its first `n` components (build_filter). */
function survivesStrip(path: Buffer, n: number): boolean {
  let at = 0;
  for (let k = 0; k < n; k++) {
    const next = path.indexOf(SLASH, at);
    if (next < 0) return false;
    at = next + 1;
  }
  return at < path.length;
}

export interface SelectionCounts {
  /** Items borg extract restores. */
  items: number;
  /** Regular files among them (hard links included). */
  files: number;
  /**
   * Distinct paths of the directories among them, and of everything else (an archive of
   * overlapping paths, e.g. /srv and /srv/x, holds some items twice). Not counted with
   * --strip-components (0 then), which can map two paths to one.
   */
  dirs: number;
  nondirs: number;
  /**
   * Bytes as borg extract's progress total counts them (Item.get_size): file contents, and the
   * length of each symlink's target.
   */
  bytes: number;
}

/**
 * Fed an archive's items in stream order; adds the data chunk ids the selected items read to
 * `ids`. Memory: the chunk lists of unselected hard-link masters and the sizes of hard-link
 * masters, i.e. bounded by the archive's hard-linked files, not by its size.
 */
export class RestoreSelector {
  readonly counts: SelectionCounts = { items: 0, files: 0, dirs: 0, nondirs: 0, bytes: 0 };
  /** Hashes of the selected paths, directories apart (for the distinct counts). */
  private readonly dirPaths = new IdCollector();
  private readonly otherPaths = new IdCollector();
  private readonly patterns: Array<{ text: string; prefix: Buffer; matched: boolean }>;
  private readonly partial: boolean;
  /** Unselected hard-link masters' chunks, by path (hardlink_masters in do_extract). */
  private readonly unselectedMasters = new Map<string, ChunkRef[] | undefined>();
  private readonly masterSizes = new Map<string, number>();
  /** Masters whose chunks were added already (masters_preloaded in unpack_many). */
  private readonly mastersRead = new Set<string>();
  /** Selected slaves whose master is neither selected nor remembered: path → slaves without a size. */
  private readonly missing = new Map<string, number>();

  constructor(
    paths: readonly string[],
    private readonly stripComponents: number,
    private readonly ids: IdCollector,
  ) {
    this.patterns = paths.map((text) => ({ text, prefix: Buffer.from(`${normalizeRestorePath(text)}/`.replace(/^\/+/, ''), 'utf8'), matched: false }));
    this.partial = this.patterns.length > 0 || stripComponents > 0;
  }

  private matches(path: Buffer): boolean {
    if (!this.patterns.length) return true;
    const p = Buffer.concat([stripLeadingSlashes(path), Buffer.from('/')]);
    let any = false;
    for (const pat of this.patterns) {
      if (p.length >= pat.prefix.length && p.subarray(0, pat.prefix.length).equals(pat.prefix)) {
        pat.matched = true;
        any = true;
      }
    }
    return any;
  }

  add(item: ArchiveItem): void {
    const matched = this.matches(item.path) && (this.stripComponents === 0 || survivesStrip(item.path, this.stripComponents));
    const linkable = hardlinkable(item.mode);
    // A hard-link master's path, as a map key (made only for masters: this runs for every item).
    const key = linkable && item.source === undefined && item.hardlinkMaster ? keyOf(item.path) : undefined;
    if (key !== undefined) {
      this.masterSizes.set(key, itemSize(item));
      if (this.partial && !matched) this.unselectedMasters.set(key, item.chunks);
    }
    if (!matched) return;
    this.counts.items++;
    const type = item.mode & S_IFMT;
    const regular = type === S_IFREG;
    if (regular) this.counts.files++;
    // Distinct paths only without --strip-components: with it the restore is checked by borg's list.
    if (this.stripComponents === 0) {
      const pathHash = createHash('sha256').update(stripLeadingSlashes(item.path)).digest();
      (type === S_IFDIR ? this.dirPaths : this.otherPaths).add(pathHash);
    }
    if (item.chunks) {
      for (const c of item.chunks) this.ids.add(c.id);
      if (regular) this.counts.bytes += itemSize(item);
      if (item.hardlinkMaster) this.mastersRead.add(key ?? keyOf(item.path));
      return;
    }
    if (type === S_IFLNK) this.counts.bytes += item.source?.length ?? 0;
    if (!linkable || item.source === undefined) return;
    // A hard-link slave: its content is its master's.
    const source = keyOf(item.source);
    const size = item.size ?? this.masterSizes.get(source);
    if (regular && size !== undefined) this.counts.bytes += size;
    if (!this.partial || this.mastersRead.has(source)) return;
    if (this.unselectedMasters.has(source)) {
      for (const c of this.unselectedMasters.get(source) ?? []) this.ids.add(c.id);
      this.mastersRead.add(source);
      return;
    }
    // An archive from a borg that did not mark masters (hardlink_master absent means true there).
    this.missing.set(source, (this.missing.get(source) ?? 0) + (regular && size === undefined ? 1 : 0));
  }

  /** Paths of masters to look up in a second pass (see addMissingMaster), if any. */
  get missingMasters(): ReadonlySet<string> {
    return new Set(this.missing.keys());
  }

  /** Second pass: an item that may be a missing master. */
  addMissingMaster(item: ArchiveItem): void {
    const key = keyOf(item.path);
    if (!this.missing.has(key) || item.source !== undefined || !hardlinkable(item.mode)) return;
    for (const c of item.chunks ?? []) this.ids.add(c.id);
    this.counts.bytes += itemSize(item) * this.missing.get(key)!;
    this.missing.delete(key);
  }

  /** Fills in the distinct path counts once every item was added. */
  finish(): SelectionCounts {
    this.counts.dirs = this.dirPaths.sorted().length / 32;
    this.counts.nondirs = this.otherPaths.sorted().length / 32;
    return this.counts;
  }

  /** The given paths that matched no item (borg: "Include pattern '…' never matched."). */
  unmatchedPaths(): string[] {
    return this.patterns.filter((p) => !p.matched).map((p) => p.text);
  }
}
