import { describe, expect, it } from 'vitest';
import { S_IFDIR, S_IFLNK, S_IFREG, type ArchiveItem } from '../borg/item.js';
import { RestorePathGuard, UnsafeArchivePath } from './restore-safety.js';

const item = (path: string | Buffer, mode = S_IFREG | 0o644, source?: string): ArchiveItem => ({
  path: Buffer.isBuffer(path) ? path : Buffer.from(path),
  mode,
  uid: 0,
  gid: 0,
  user: null,
  group: null,
  mtime: 0n,
  hardlinkMaster: false,
  source: source === undefined ? undefined : Buffer.from(source),
});

function run(items: ArchiveItem[]): void {
  const g = new RestorePathGuard();
  for (const i of items) g.check(i);
}

describe('restore path guard', () => {
  it('lets what borg create writes through, odd and non-UTF-8 names and symlinks to anywhere included', () => {
    expect(() =>
      run([item('home', S_IFDIR | 0o755), item('home/a..b'), item('home/.hidden'), item(Buffer.from([0x68, 0x2f, 0xff, 0xfe])), item('home/link', S_IFLNK | 0o777, '/etc'), item('home/linkish/x'), item('...'), item('home/..x/.y.'), item('.', S_IFDIR | 0o755)]),
    ).not.toThrow();
  });

  it.each(['a/../../etc/passwd', '../x', '/etc/passwd', 'a//b', 'a/./b', 'a/', '', '..', './a', 'a/..', 'a/.', 'a\u0000b'])('refuses the crafted path %j', (p) => {
    expect(() => run([item(p)])).toThrow(UnsafeArchivePath);
  });

  it('refuses an item below one of the archive’s own symlinks', () => {
    expect(() => run([item('a', S_IFLNK | 0o777, '/etc'), item('a/passwd')])).toThrow(/below its own symlink "a"/);
    expect(() => run([item('d', S_IFDIR | 0o755), item('d/l', S_IFLNK | 0o777, '/'), item('d/l/root/.ssh/authorized_keys')])).toThrow(UnsafeArchivePath);
  });
});
