import { describe, expect, it } from 'vitest';
import { S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, type ArchiveItem } from '../borg/item.js';
import { IdCollector } from './id-set.js';
import { normalizeRestorePath, RestoreSelector } from './restore-selection.js';

const id = (n: number) => Buffer.alloc(32, n);
const dir = (path: string): ArchiveItem => ({ path: Buffer.from(path), mode: S_IFDIR | 0o755, uid: 0, gid: 0, user: null, group: null, mtime: 0n, hardlinkMaster: false });
const file = (path: string, chunks: number[], over: Partial<ArchiveItem> = {}): ArchiveItem => ({
  ...dir(path),
  mode: S_IFREG | 0o644,
  size: chunks.length * 10,
  chunks: chunks.map((n) => ({ id: id(n), size: 10, csize: 12 })),
  ...over,
});
const slave = (path: string, source: string): ArchiveItem => ({ ...dir(path), mode: S_IFREG | 0o644, source: Buffer.from(source), hardlinkMaster: false });

/** A small archive in borg's stream order: a directory before its contents, hard-link masters first. */
const archive: ArchiveItem[] = [
  dir('home'),
  dir('home/a'),
  file('home/a/one', [1, 2]),
  file('home/a/link-master', [3], { hardlinkMaster: true }),
  file('home/a/empty', []),
  { ...dir('home/a/sym'), mode: S_IFLNK | 0o777, source: Buffer.from('one') },
  dir('home/ab'),
  file('home/ab/two', [4]),
  slave('home/ab/link-slave', 'home/a/link-master'),
  { ...dir('home/fifo'), mode: S_IFIFO | 0o600 },
  file('home/top', [5, 1]),
];

function select(paths: string[], strip = 0, items = archive) {
  const ids = new IdCollector();
  const s = new RestoreSelector(paths, strip, ids);
  for (const i of items) s.add(i);
  if (s.missingMasters.size) for (const i of items) s.addMissingMaster(i);
  const sorted = ids.sorted();
  const got: number[] = [];
  for (let o = 0; o < sorted.length; o += 32) got.push(sorted[o]!);
  return { counts: s.finish(), ids: got, unmatched: s.unmatchedPaths() };
}

describe('restore selection (borg 1.2.4 extract semantics)', () => {
  it('normalizes paths like PathPrefixPattern', () => {
    expect(normalizeRestorePath('home/a/')).toBe('home/a');
    expect(normalizeRestorePath('/home//a/./b/../c')).toBe('home/a/c');
    expect(normalizeRestorePath('/')).toBe('');
    expect(normalizeRestorePath('')).toBe('.');
    expect(normalizeRestorePath('../x')).toBe('../x');
  });

  it('no paths: every item, every data chunk; hard-link slaves read nothing of their own', () => {
    const r = select([]);
    // Bytes as borg's progress total counts them: file contents plus the symlink's target ("one").
    expect(r.counts).toEqual({ items: 11, files: 6, dirs: 3, nondirs: 8, bytes: 20 + 10 + 0 + 10 + 10 + 20 + 3 });
    expect(r.ids).toEqual([1, 2, 3, 4, 5]);
    expect(r.unmatched).toEqual([]);
  });

  it('counts each path once where an archive of overlapping paths holds items twice', () => {
    // borg create /home /home/a: the items below home/a come again after the first walk.
    const twice = [...archive, dir('home/a'), file('home/a/one', [1, 2])];
    expect(select([], 0, twice).counts).toMatchObject({ items: 13, dirs: 3, nondirs: 8 });
  });

  it('a path selects the item and what is below it, not a sibling sharing its prefix', () => {
    const r = select(['home/a']);
    expect(r.counts).toEqual({ items: 5, files: 3, dirs: 1, nondirs: 4, bytes: 30 + 3 });
    expect(r.ids).toEqual([1, 2, 3]);
    // "home/a" is not a prefix of "home/ab/…" as a path.
    expect(select(['home/a/']).ids).toEqual([1, 2, 3]);
  });

  it('one file', () => {
    expect(select(['home/top'])).toEqual({ counts: { items: 1, files: 1, dirs: 0, nondirs: 1, bytes: 20 }, ids: [1, 5], unmatched: [] });
    expect(select(['/home/top'])).toEqual({ counts: { items: 1, files: 1, dirs: 0, nondirs: 1, bytes: 20 }, ids: [1, 5], unmatched: [] });
  });

  it('a selected hard-link slave whose master is not selected reads the master\'s chunks', () => {
    const r = select(['home/ab']);
    expect(r.counts).toEqual({ items: 3, files: 2, dirs: 1, nondirs: 2, bytes: 20 });
    expect(r.ids).toEqual([3, 4]);
    // With its master selected too, nothing changes for the chunks.
    expect(select(['home/ab', 'home/a/link-master']).ids).toEqual([3, 4]);
  });

  it('an archive without hardlink_master flags: the master is found in a second pass', () => {
    const old = archive.map((i) => ({ ...i, hardlinkMaster: false }));
    const r = select(['home/ab/link-slave'], 0, old);
    expect(r.ids).toEqual([3]);
    expect(r.counts).toEqual({ items: 1, files: 1, dirs: 0, nondirs: 1, bytes: 10 });
  });

  it('--strip-components leaves out items with nothing left of their path', () => {
    const r = select(['home/a'], 2);
    // "home" is not selected anyway; "home/a" itself strips to nothing.
    expect(r.counts).toEqual({ items: 4, files: 3, dirs: 0, nondirs: 0, bytes: 30 + 3 });
    const all = select([], 1);
    expect(all.counts.items).toBe(10);
    // Nothing below "home" has more than three components.
    expect(select(['home'], 3).counts.items).toBe(0);
  });

  it('paths that match nothing are reported, each one', () => {
    const r = select(['home/a', 'home/nope', 'hom']);
    expect(r.unmatched).toEqual(['home/nope', 'hom']);
    expect(select(['home/a'], 0, []).unmatched).toEqual(['home/a']);
  });
});
