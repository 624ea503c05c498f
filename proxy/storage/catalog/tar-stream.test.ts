import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, type ArchiveItem, type ChunkRef } from '../../borg/item.js';
import type { ArchiveReader } from '../archive-items.js';
import { buildIndex } from './index-build.js';
import { CatalogIndex } from './index-file.js';
import { selectionOf } from './tar-select.js';
import { tarSize, writeTar } from './tar-stream.js';

const dir = mkdtempSync(join(tmpdir(), 'tar-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const objects = new Map<string, Buffer>();
function chunks(...parts: string[]): ChunkRef[] {
  return parts.map((p) => {
    const data = Buffer.from(p);
    const id = createHash('sha256').update(data).digest();
    objects.set(id.toString('hex'), data);
    return { id, size: data.length, csize: data.length };
  });
}
const read = (id: Buffer) => Promise.resolve({ plaintext: objects.get(id.toString('hex'))!, csize: 0 });
const item = (path: string, mode: number, extra: Partial<ArchiveItem> = {}): ArchiveItem => ({ path: Buffer.from(path), mode, uid: 0, gid: 0, user: Buffer.from('root'), group: Buffer.from('root'), mtime: 1_650_000_000_500_000_000n, hardlinkMaster: false, ...extra });

const big = 'x'.repeat(3000);
const items: ArchiveItem[] = [
  item('srv', S_IFDIR | 0o755),
  item('srv/a.txt', S_IFREG | 0o640, { size: big.length + 5, chunks: chunks(big, 'tail\n'), hardlinkMaster: true }),
  item('srv/sub', S_IFDIR | 0o700),
  item('srv/sub/b.txt', S_IFREG | 0o644, { size: 4, chunks: chunks('bbb\n') }),
  item('srv/sub/a-link', S_IFREG | 0o640, { source: Buffer.from('srv/a.txt') }),
  item('srv/sub/a-link2', S_IFREG | 0o640, { source: Buffer.from('srv/a.txt') }),
  item('srv/sub/sym', S_IFLNK | 0o777, { source: Buffer.from('../a.txt') }),
  item('srv/sub/fifo', S_IFIFO | 0o600),
  item('srv/sub/sock', S_IFSOCK | 0o600),
  item('srv/sub/empty', S_IFREG | 0o600, { size: 0, chunks: [] }),
  item('srv/sub/deeper', S_IFDIR | 0o755),
  item('srv/sub/deeper/c.txt', S_IFREG | 0o644, { size: 2, chunks: chunks('c\n'), xattrs: new Map([['user.k', Buffer.from('v')]]) }),
  // Sorts between "srv/sub" and "srv/sub/…" in the index: not part of srv/sub's subtree.
  item('srv/sub!x', S_IFREG | 0o644, { size: 1, chunks: chunks('!') }),
];
const archive: ArchiveReader = {
  meta: {} as ArchiveReader['meta'],
  async *items() {
    for (const i of items) yield await Promise.resolve({ ...i });
  },
};

async function tarOf(paths: string[]): Promise<{ file: string; size: number; expected: number }> {
  const sel = selectionOf(paths.map((p) => Buffer.from(p)));
  const parts: Buffer[] = [];
  await writeTar(archive, sel, read, (b) => {
    parts.push(Buffer.from(b));
    return Promise.resolve();
  });
  const bytes = Buffer.concat(parts);
  const file = join(dir, `${paths.join('+').replace(/\//g, '_') || 'all'}.tar`);
  writeFileSync(file, bytes);
  return { file, size: bytes.length, expected: await tarSize(archive, sel) };
}

function extract(file: string): string {
  const out = join(dir, `x-${Math.random().toString(36).slice(2)}`);
  mkdirSync(out);
  const r = spawnSync('tar', ['-xpf', file, '-C', out], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return out;
}

describe('a download of archive items as tar', () => {
  it('holds the whole archive, GNU tar restores it, and tarSize predicted its length', async () => {
    const t = await tarOf([]);
    expect(t.size).toBe(t.expected);
    const out = extract(t.file);
    expect(readFileSync(join(out, 'srv/a.txt'), 'utf8')).toBe(`${big}tail\n`);
    expect(lstatSync(join(out, 'srv/sub/a-link')).ino).toBe(lstatSync(join(out, 'srv/a.txt')).ino);
    expect(readlinkSync(join(out, 'srv/sub/sym'))).toBe('../a.txt');
    expect(lstatSync(join(out, 'srv/sub/fifo')).isFIFO()).toBe(true);
    expect(() => lstatSync(join(out, 'srv/sub/sock'))).toThrow();
    expect(lstatSync(join(out, 'srv/sub'), { bigint: true }).mtimeNs).toBe(1_650_000_000_500_000_000n);
    expect(lstatSync(join(out, 'srv/a.txt')).mode & 0o7777).toBe(0o640);
  });

  it('a folder whose hard links point outside it carries the data in its first link', async () => {
    const t = await tarOf(['srv/sub']);
    expect(t.size).toBe(t.expected);
    const out = extract(t.file);
    expect(() => lstatSync(join(out, 'srv/a.txt'))).toThrow();
    expect(readFileSync(join(out, 'srv/sub/a-link'), 'utf8')).toBe(`${big}tail\n`);
    expect(lstatSync(join(out, 'srv/sub/a-link2')).ino).toBe(lstatSync(join(out, 'srv/sub/a-link')).ino);
    expect(readFileSync(join(out, 'srv/sub/b.txt'), 'utf8')).toBe('bbb\n');
    expect(readFileSync(join(out, 'srv/sub/empty'), 'utf8')).toBe('');
  });

  it('several single paths', async () => {
    const t = await tarOf(['srv/sub/b.txt', 'srv/sub/sym']);
    const r = spawnSync('tar', ['-tf', t.file], { encoding: 'utf8' });
    expect(r.stdout.trim().split('\n')).toEqual(['srv/sub/b.txt', 'srv/sub/sym']);
  });

  it('the index predicts the exact tar length, or says it cannot (a link whose master is left out)', async () => {
    const idxPath = join(dir, 'archive.idx');
    await buildIndex(archive.items(), idxPath);
    const idx = CatalogIndex.open(idxPath);
    for (const sel of [[], ['srv'], ['srv/sub/deeper'], ['srv', 'srv/sub'], ['srv/sub/b.txt', 'srv/sub/sym'], ['srv/sub!x'], ['srv/a.txt', 'srv/sub/a-link'], ['srv/a.txt', 'srv/sub']]) {
      const t = await tarOf(sel);
      const predicted = await idx.tarSize(sel.map((p) => Buffer.from(p)), selectionOf(sel.map((p) => Buffer.from(p))));
      expect([sel, predicted]).toEqual([sel, t.size]);
    }
    expect(await idx.tarSize([Buffer.from('srv/sub')], selectionOf([Buffer.from('srv/sub')]))).toBeNull();
    expect(await idx.tarSize([Buffer.from('srv/sub/a-link')], selectionOf([Buffer.from('srv/sub/a-link')]))).toBeNull();
    idx.close();
  });

  it('a file whose chunks do not add up to its size stops the download', async () => {
    items.push(item('srv/bad', S_IFREG | 0o644, { size: 10, chunks: chunks('short') }));
    await expect(tarOf(['srv/bad'])).rejects.toThrow(/its chunks hold 5 bytes, its item says 10/);
    items.pop();
  });
});
