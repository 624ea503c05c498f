// Against a real borg 1.2.4 repository: what the segment reader returns is byte for byte what
// `borg serve`'s get returns, and whatever it cannot be sure of — an id the index lacks, an object
// a compaction moved, a repository without a readable index — it leaves to borg serve (undefined).
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../infra/logger.js';
import { runChecked } from '../../infra/subprocess.js';
import { tempDir } from '../../test/harness/temp-dir.js';
import { asBytes } from '../borg/msgpack.js';
import { SegmentReader } from './segment-reader.js';
import { Upstream } from './upstream.js';

const log = createLogger({ name: 'test', level: 'warn' });
const commitArgs = (compact: boolean) => ({ save_space: false, compact, threshold: 0.1, cleanup_commits: false });

describe('reading objects from the segment files', () => {
  const open: Array<{ close(): unknown }> = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  async function repository(): Promise<{ path: string; up: Upstream }> {
    const path = join(tempDir('segments'), 'repo');
    await runChecked('borg', ['init', '--encryption', 'none', path]);
    // Small segments, so that the objects spread over several files and a compaction moves some.
    const config = join(path, 'config');
    writeFileSync(config, readFileSync(config, 'utf8').replace(/max_segment_size = \d+/, 'max_segment_size = 1000000'));
    const up = await Upstream.start({ borgPath: 'borg', repoPath: path, lockWait: 5, log });
    open.push(up);
    await up.openRepository();
    return { path, up };
  }

  it('returns what borg serve returns, for small and large objects; nothing for an unknown id', async () => {
    const { path, up } = await repository();
    const sizes = [0, 1, 100, 16 * 1024 - 42, 16 * 1024 - 41, 16 * 1024, 200_000, 3 * 1024 * 1024];
    const objects = sizes.concat(Array.from({ length: 300 }, (_, i) => 50 + i * 37)).map((n) => ({ id: randomBytes(32), data: randomBytes(n) }));
    await Promise.all(objects.map((o) => up.call('put', o)));
    await up.commit(commitArgs(false));

    const reader = SegmentReader.open(path, log)!;
    open.push(reader);
    expect(reader).toBeDefined();
    const got = objects.map((o) => reader.read(o.id));
    for (const [i, o] of objects.entries()) {
      expect(got[i]?.object.equals(asBytes(await up.call('get', { id: o.id }), 'object'))).toBe(true);
      expect(got[i]?.object.equals(o.data)).toBe(true);
      // Large objects come in an allocation of their own (moved to a crypto thread, not copied).
      expect(got[i]?.owned).toBe(o.data.length > 16 * 1024 - 41);
      if (got[i]?.owned) expect(got[i]?.object.buffer.byteLength).toBe(o.data.length);
    }
    expect(new Set(readdirSync(join(path, 'data', '0'))).size).toBeGreaterThan(3);
    expect(reader.read(randomBytes(32))).toBeUndefined();
    reader.close();
    expect(reader.read(objects[0]!.id)).toBeUndefined();
  });

  it('after a compaction moved objects, it returns either the same bytes or nothing', async () => {
    const { path, up } = await repository();
    const objects = Array.from({ length: 60 }, () => ({ id: randomBytes(32), data: randomBytes(100_000) }));
    for (const o of objects) await up.call('put', o);
    await up.commit(commitArgs(false));
    const reader = SegmentReader.open(path, log)!;
    open.push(reader);
    // The reader has the first object's segment open; the others it has not touched yet.
    expect(reader.read(objects[0]!.id)?.object.equals(objects[0]!.data)).toBe(true);

    // Every other object deleted, then a commit that compacts: the sparse segments are rewritten
    // into new ones and removed.
    for (const o of objects.filter((_, i) => i % 2 === 1)) await up.call('delete', { id: o.id });
    await up.call('commit', commitArgs(true));
    let found = 0;
    for (const o of objects.filter((_, i) => i % 2 === 0)) {
      const r = reader.read(o.id);
      if (r) {
        expect(r.object.equals(o.data)).toBe(true);
        found++;
      }
    }
    expect(found).toBeGreaterThan(0);
    expect(found).toBeLessThan(30);
  });

  it('a repository without a readable index leaves everything to borg serve', async () => {
    const { path, up } = await repository();
    await up.call('put', { id: randomBytes(32), data: randomBytes(10) });
    await up.commit(commitArgs(false));
    const index = readdirSync(path).find((n) => n.startsWith('index.'))!;
    writeFileSync(join(path, 'index.999'), 'BORG_IDX but not one');
    expect(SegmentReader.open(path, log)).toBeUndefined();
    renameSync(join(path, 'index.999'), join(path, 'moved-away'));
    renameSync(join(path, index), join(path, 'moved-away-too'));
    expect(SegmentReader.open(path, log)).toBeUndefined();
  });
});
