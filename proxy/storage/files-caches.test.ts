import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../infra/logger.js';
import { writeFilesCache, type FilesCacheEntry } from '../borg/files-cache.js';
import { tempDir } from '../../test/harness/temp-dir.js';
import { FilesCaches } from './files-caches.js';

const tmp = () => tempDir('files-caches');

const entry = (n: number): FilesCacheEntry => ({ pathHash: Buffer.alloc(32, n), age: 0, inode: BigInt(n), size: 10n, cmtimeNs: 1_700_000_000_000_000_000n, chunkIds: [Buffer.alloc(32, n + 1)] });
const caches = () => new FilesCaches(createLogger({ name: 'test', level: 'silent' }));

describe('FilesCaches', () => {
  it('hands out an adopted files cache with its entries, checked once when adopted', async () => {
    const dir = tmp();
    const data = writeFilesCache([entry(1), entry(2), entry(3)]);
    writeFileSync(join(dir, 'pulled'), data);
    const c = caches();
    c.adopt(join(dir, 'pulled'), join(dir, 'client', 'repo.files'));
    const got = await c.copy(join(dir, 'client', 'repo.files'), join(dir, 'handed'));
    expect(got.entries).toBe(3);
    expect(readFileSync(join(dir, 'handed')).equals(data)).toBe(true);
  });

  it('hands out nothing for a malformed or missing file, and checks a file replaced behind its back', async () => {
    const dir = tmp();
    const dest = join(dir, 'repo.files');
    writeFileSync(join(dir, 'pulled'), Buffer.from('not msgpack at all \xc1'));
    const c = caches();
    c.adopt(join(dir, 'pulled'), dest);
    expect(await c.copy(dest, join(dir, 'handed-1'))).toEqual({ entries: 0 });
    expect(await c.copy(join(dir, 'missing'), join(dir, 'handed-2'))).toEqual({ entries: 0 });
    expect(existsSync(join(dir, 'handed-1')) || existsSync(join(dir, 'handed-2'))).toBe(false);

    // Another file in its place (a new inode): checked again when read, not taken as the bad one.
    const good = writeFilesCache([entry(7)]);
    writeFileSync(join(dir, 'other'), good);
    renameSync(join(dir, 'other'), dest);
    const got = await c.copy(dest, join(dir, 'handed-3'));
    expect(got.entries).toBe(1);
    expect(readFileSync(join(dir, 'handed-3')).equals(good)).toBe(true);
  });

  it('checks and copies a files cache larger than its read chunk, entries across chunk borders', async () => {
    const dir = tmp();
    const many = Array.from({ length: 40_000 }, (_, i) => entry(i % 250));
    const data = writeFilesCache(many);
    expect(data.length).toBeGreaterThan(3 * 1024 * 1024);
    writeFileSync(join(dir, 'pulled'), data);
    const c = caches();
    c.adopt(join(dir, 'pulled'), join(dir, 'repo.files'));
    expect(await c.copy(join(dir, 'repo.files'), join(dir, 'handed'))).toEqual({ entries: 40_000 });
    expect(readFileSync(join(dir, 'handed')).equals(data)).toBe(true);
  });
});
