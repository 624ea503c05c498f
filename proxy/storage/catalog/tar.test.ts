import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { END_OF_ARCHIVE, entryBytes, entryHeader, padding, type TarEntry } from './tar.js';

const dir = mkdtempSync(join(tmpdir(), 'tar-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T = 1_700_000_000_123_456_789n;
const base = { mode: 0o644, uid: 1000, gid: 1000, uname: Buffer.from('alice'), gname: Buffer.from('staff'), mtime: T, size: 0 };
const longName = Buffer.from(`deep/${'d'.repeat(120)}/${'f'.repeat(130)}.txt`);
const binName = Buffer.concat([Buffer.from('dir/bin-'), Buffer.from([0xff, 0xfe, 0x01]), Buffer.from('.dat')]);

function archive(entries: Array<[TarEntry, Buffer?]>): Buffer {
  const parts: Buffer[] = [];
  for (const [e, data] of entries) {
    parts.push(entryHeader(e));
    if (data) parts.push(data, Buffer.alloc(padding(data.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

const content = Buffer.from('hello tar\n'.repeat(100));
const entries: Array<[TarEntry, Buffer?]> = [
  [{ ...base, path: Buffer.from('dir'), type: 'dir', mode: 0o750 }],
  [{ ...base, path: Buffer.from('dir/file.txt'), type: 'file', size: content.length, xattrs: new Map([['user.note', Buffer.from('a note')]]) }, content],
  [{ ...base, path: Buffer.from('dir/empty'), type: 'file', size: 0, mode: 0o4755 }, Buffer.alloc(0)],
  [{ ...base, path: Buffer.from('dir/link'), type: 'symlink', mode: 0o777, linkname: Buffer.from('file.txt') }],
  [{ ...base, path: Buffer.from('dir/hard'), type: 'hardlink', linkname: Buffer.from('dir/file.txt') }],
  [{ ...base, path: Buffer.from('dir/fifo'), type: 'fifo', mode: 0o600 }],
  [{ ...base, path: Buffer.from('dir/null'), type: 'chardev', rdev: (1 << 8) | 3 }],
  [{ ...base, path: Buffer.from('dir/loop'), type: 'blockdev', rdev: (7 << 8) | 1 }],
  [{ ...base, path: longName, type: 'file', size: 3, uid: 5_000_000, gid: 3_000_000, uname: Buffer.from('ünïcode-user-with-a-very-long-name-indeed'), mtime: -1_500_000_000n }, Buffer.from('abc')],
  [{ ...base, path: binName, type: 'file', size: 1, uname: null, gname: null, mtime: 1_600_000_000_000_000_000n }, Buffer.from('x')],
  [{ ...base, path: Buffer.from('dir/longlink'), type: 'symlink', mode: 0o777, linkname: Buffer.from('t'.repeat(200)) }],
];

describe('the pax tar writer, read back by GNU tar', () => {
  const file = join(dir, 'a.tar');
  const bytes = archive(entries);
  writeFileSync(file, bytes);

  it('entryBytes is the exact size of each entry', () => {
    const total = entries.reduce((n, [e]) => n + entryBytes(e), 0) + END_OF_ARCHIVE.length;
    expect(total).toBe(bytes.length);
    expect(bytes.length % 512).toBe(0);
  });

  it('lists every entry with its type, mode, owner and size', () => {
    const r = spawnSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'latin1' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(entries.length);
    expect(lines[0]).toMatch(/^drwxr-x--- 1000\/1000\s+0 2023-11-14 \d\d:13 dir\/$/);
    expect(lines[1]).toMatch(/^-rw-r--r-- 1000\/1000\s+1000 .* dir\/file\.txt$/);
    expect(lines[2]).toMatch(/^-rwsr-xr-x .* dir\/empty$/);
    expect(lines[3]).toMatch(/^lrwxrwxrwx .* dir\/link -> file\.txt$/);
    expect(lines[4]).toMatch(/^hrw-r--r-- .* dir\/hard link to dir\/file\.txt$/);
    expect(lines[5]).toMatch(/^prw------- .* dir\/fifo$/);
    expect(lines[6]).toMatch(/^crw-r--r-- 1000\/1000\s+1,3 .* dir\/null$/);
    expect(lines[7]).toMatch(/^brw-r--r-- 1000\/1000\s+7,1 .* dir\/loop$/);
    expect(lines[8]).toContain(`5000000/3000000`);
    expect(lines[8]).toContain(longName.toString());
    expect(lines[10]).toContain(`-> ${'t'.repeat(200)}`);
  });

  it('extracts to the same bytes, modes, times, links and xattrs', () => {
    const out = join(dir, 'x');
    spawnSync('mkdir', [out]);
    const r = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', file, '-C', out], { encoding: 'latin1' });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(out, 'dir/file.txt'))).toEqual(content);
    const st = lstatSync(join(out, 'dir/file.txt'), { bigint: true });
    expect(st.mtimeNs).toBe(T);
    expect(st.uid).toBe(1000n);
    expect(lstatSync(join(out, 'dir/hard')).ino).toBe(lstatSync(join(out, 'dir/file.txt')).ino);
    expect(readlinkSync(join(out, 'dir/link'))).toBe('file.txt');
    expect(lstatSync(join(out, 'dir/fifo')).isFIFO()).toBe(true);
    expect(lstatSync(join(out, 'dir/empty')).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(out, 'dir')).mode & 0o7777).toBe(0o750);
    expect(readFileSync(join(out, longName.toString())).toString()).toBe('abc');
    expect(lstatSync(join(out, longName.toString()), { bigint: true }).mtimeNs).toBe(-1_500_000_000n);
    expect(lstatSync(join(out, longName.toString())).uid).toBe(5_000_000);
    const bin = Buffer.concat([Buffer.from(out), Buffer.from('/'), binName]);
    expect(readFileSync(bin).toString()).toBe('x');
    expect(readlinkSync(join(out, 'dir/longlink'))).toBe('t'.repeat(200));
    const x = spawnSync('getfattr', ['--only-values', '-n', 'user.note', join(out, 'dir/file.txt')], { encoding: 'utf8' });
    expect(x.status, x.stderr).toBe(0);
    expect(x.stdout).toBe('a note');
  });

  it('sizes beyond the ustar field go into a pax size record', () => {
    const h = entryHeader({ ...base, path: Buffer.from('big'), type: 'file', size: 10 * 1024 ** 3 });
    expect(h.toString('latin1')).toContain(` size=${10 * 1024 ** 3}\n`);
  });
});
