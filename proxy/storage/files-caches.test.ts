import { renameSync, writeFileSync } from 'node:fs';
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
    const got = await c.read(join(dir, 'client', 'repo.files'));
    expect(got.entries).toBe(3);
    expect(got.data?.equals(data)).toBe(true);
  });

  it('hands out nothing for a malformed or missing file, and checks a file replaced behind its back', async () => {
    const dir = tmp();
    const dest = join(dir, 'repo.files');
    writeFileSync(join(dir, 'pulled'), Buffer.from('not msgpack at all \xc1'));
    const c = caches();
    c.adopt(join(dir, 'pulled'), dest);
    expect(await c.read(dest)).toEqual({ entries: 0 });
    expect(await c.read(join(dir, 'missing'))).toEqual({ entries: 0 });

    // Another file in its place (a new inode): checked again when read, not taken as the bad one.
    const good = writeFilesCache([entry(7)]);
    writeFileSync(join(dir, 'other'), good);
    renameSync(join(dir, 'other'), dest);
    const got = await c.read(dest);
    expect(got.entries).toBe(1);
    expect(got.data?.equals(good)).toBe(true);
  });
});
