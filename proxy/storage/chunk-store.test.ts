import { describe, expect, it } from 'vitest';
import { createLogger } from '../../infra/logger.js';
import { MAX_REFCOUNT } from '../borg/hashindex.js';
import { tempDir } from '../../test/harness/temp-dir.js';
import { ChunkStore, decodeRefs, encodeIndexRefs, type RefMap } from './chunk-store.js';

const hex = (n: number) => n.toString(16).padStart(64, '0');
function store(): ChunkStore {
  return new ChunkStore(tempDir('chunk-store'), createLogger({ name: 'test', level: 'warn' }));
}

describe('ChunkStore.handedIndex', () => {
  it('sums the archives, keeps a known size over an unknown one, and leaves out unsized objects', () => {
    const s = store();
    const a: RefMap = new Map([
      [hex(1), { refcount: 2, size: 100, csize: 60 }],
      [hex(2), { refcount: 1, size: 0, csize: 0 }], // foreign archive: size unknown here…
      [hex(3), { refcount: 1, size: 0, csize: 0 }], // …and nowhere else
      [hex(4), { refcount: MAX_REFCOUNT, size: 7, csize: 7 }],
    ]);
    const b: RefMap = new Map([
      [hex(1), { refcount: 3, size: 100, csize: 60 }],
      [hex(2), { refcount: 1, size: 50, csize: 30 }], // …but known from this one
      [hex(4), { refcount: 5, size: 7, csize: 7 }],
      [hex(5), { refcount: 1, size: 9, csize: 11 }],
    ]);
    s.writeArchiveIndex(hex(0xa), a);
    s.writeArchiveIndex(hex(0xb), b);

    const index = s.handedIndex([hex(0xa), hex(0xb), hex(0xc) /* no index: skipped */]);
    const got = Object.fromEntries([...decodeRefs(encodeIndexRefs(index))].map(([k, e]) => [k, e]));
    expect(got).toEqual({
      [hex(1)]: { refcount: 5, size: 100, csize: 60 },
      [hex(2)]: { refcount: 2, size: 50, csize: 30 },
      [hex(4)]: { refcount: MAX_REFCOUNT, size: 7, csize: 7 },
      [hex(5)]: { refcount: 1, size: 9, csize: 11 },
    });
    expect(index.size).toBe(4);
  });

  it('is empty for a client without archives', () => {
    const index = store().handedIndex([]);
    expect(index.size).toBe(0);
    expect(encodeIndexRefs(index).length).toBe(0);
  });
});

describe('ChunkStore.handedFiles', () => {
  it('gives handedIndex serialized, keeps it for the same archives in any order, and forgets it when an archive index is rewritten or removed', () => {
    const s = store();
    s.writeArchiveIndex(hex(0xa), new Map([[hex(1), { refcount: 1, size: 10, csize: 5 }]]));
    s.writeArchiveIndex(hex(0xb), new Map([[hex(2), { refcount: 2, size: 20, csize: 9 }]]));

    const files = s.handedFiles([hex(0xa), hex(0xb)]);
    const index = s.handedIndex([hex(0xa), hex(0xb)]);
    expect(files.entries).toBe(2);
    expect(files.chunksFile.equals(index.serialize())).toBe(true);
    expect(files.refsFile.equals(encodeIndexRefs(index))).toBe(true);
    expect(s.handedFiles([hex(0xb), hex(0xa), hex(0xa)])).toBe(files);
    expect(s.handedFiles([hex(0xa)])).not.toBe(files);

    s.writeArchiveIndex(hex(0xb), new Map([[hex(3), { refcount: 1, size: 30, csize: 12 }]]));
    const again = s.handedFiles([hex(0xa), hex(0xb)]);
    expect(again).not.toBe(files);
    expect([...decodeRefs(again.refsFile).keys()].sort()).toEqual([hex(1), hex(3)]);

    s.removeArchive(hex(0xa));
    const without = s.handedFiles([hex(0xa), hex(0xb)]);
    expect(without).not.toBe(again);
    expect([...decodeRefs(without.refsFile).keys()]).toEqual([hex(3)]);
  });
});
