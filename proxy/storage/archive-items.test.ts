import { describe, expect, it } from 'vitest';
import { itemType, type ArchiveItem } from '../borg/item.js';
import { asKeyType, loadKey } from '../borg/keys.js';
import { decryptUnchecked } from '../borg/objects.js';
import { keyText, liveObjects, loadExpect, repoDir } from '../borg/test-fixtures.js';
import { openArchive } from './archive-items.js';

describe('openArchive over a repository borg 1.2.4 wrote', () => {
  const e = loadExpect('repokey');
  const key = loadKey(keyText('repokey') ?? '', 'test', asKeyType(e.keyType));
  const objects = liveObjects(repoDir('repokey'));
  const read = async (id: Buffer) => {
    const obj = objects.get(id.toString('hex'));
    if (!obj) throw new Error(`no object ${id.toString('hex')}`);
    return { plaintext: (await decryptUnchecked(key, obj)).data, csize: obj.length };
  };

  it.each(Object.entries(e.archives))('%s: every item decodes, and the chunks its files list are the archive refs', async (name, a) => {
    const archive = await openArchive(read, key, Buffer.from(a.id, 'hex'));
    expect(archive.meta.name).toBe(name);
    const items: ArchiveItem[] = [];
    for await (const item of archive.items()) items.push(item);
    expect(items.length).toBe(a.nitems);
    const refs = new Set(items.flatMap((i) => (i.chunks ?? []).map((c) => c.id.toString('hex'))));
    expect([...refs].sort()).toEqual([...new Set(a.refs)].sort());
    for (const i of items) {
      expect(i.path.length).toBeGreaterThan(0);
      expect(i.path[0]).not.toBe(0x2f);
      if (itemType(i) === 'file') expect((i.chunks ?? []).reduce((n, c) => n + c.size, 0)).toBe(i.size ?? 0);
    }
  });

  it('lets the event loop turn while it walks, even when every read settles without I/O', async () => {
    const [, a] = Object.entries(e.archives)[0]!;
    const archive = await openArchive(read, key, Buffer.from(a.id, 'hex'));
    let turned = false;
    setImmediate(() => (turned = true));
    let n = 0;
    for await (const _ of archive.items()) n++;
    expect(n).toBe(a.nitems);
    expect(turned).toBe(true);
  });
});
