import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BorgFormatError } from './errors.js';
import { ChunkIndex, HASH_SIZES, MAX_REFCOUNT, type ChunkIndexEntry } from './hashindex.js';
import { HAVE_BORG, TESTDATA, borgPython } from './test-fixtures.js';
import { tempDir } from '../../test/harness/temp-dir.js';

const vec = (name: string): Buffer => readFileSync(join(TESTDATA, 'vectors', name));
const sha = (s: string): Buffer => createHash('sha256').update(s).digest();

// The rule extract.py used with borg's own ChunkIndex (vectors/chunks.json).
function vectorOps(idx: { set(k: Buffer, e: ChunkIndexEntry): void; delete(k: Buffer): boolean }): Map<string, ChunkIndexEntry> {
  const want = new Map<string, ChunkIndexEntry>();
  for (let i = 0; i < 1200; i++) {
    const e = { refcount: (i % 7) + 1, size: 1000 + i, csize: 500 + i };
    idx.set(sha(`key ${i}`), e);
    want.set(sha(`key ${i}`).toString('hex'), e);
  }
  for (let i = 0; i < 1200; i += 6) {
    idx.delete(sha(`key ${i}`));
    want.delete(sha(`key ${i}`).toString('hex'));
  }
  idx.set(sha('max'), { refcount: MAX_REFCOUNT, size: 1, csize: 2 });
  want.set(sha('max').toString('hex'), { refcount: MAX_REFCOUNT, size: 1, csize: 2 });
  return want;
}

function entriesOf(idx: ChunkIndex): Map<string, ChunkIndexEntry> {
  return new Map([...idx].map(([k, e]) => [k.toString('hex'), e]));
}

function sortedBlobSha(m: Map<string, ChunkIndexEntry>): string {
  const h = createHash('sha256');
  for (const k of [...m.keys()].sort()) {
    const e = m.get(k);
    const v = Buffer.alloc(12);
    v.writeUInt32LE(e?.refcount ?? 0, 0);
    v.writeUInt32LE(e?.size ?? 0, 4);
    v.writeUInt32LE(e?.csize ?? 0, 8);
    h.update(Buffer.from(k, 'hex')).update(v);
  }
  return h.digest('hex');
}

describe('hashindex files written by borg 1.2.4', () => {
  const meta = z.object({ count: z.number(), sortedEntriesSha256: z.string() }).parse(JSON.parse(vec('chunks.json').toString()));

  it('reads borg\'s ChunkIndex (1200 inserts, a resize, 200 tombstones, a sticky max refcount)', () => {
    const idx = ChunkIndex.parse(vec('chunks.idx'));
    expect(idx.size).toBe(meta.count);
    expect(sortedBlobSha(entriesOf(idx))).toBe(meta.sortedEntriesSha256);
    expect(idx.get(sha('max'))).toEqual({ refcount: MAX_REFCOUNT, size: 1, csize: 2 });
    expect(idx.get(sha('key 0'))).toBeUndefined();
    expect(idx.get(sha('key 1'))).toEqual({ refcount: 2, size: 1001, csize: 501 });
  });

  it('building the same operations here gives the same file, byte for byte', () => {
    const idx = new ChunkIndex();
    const want = vectorOps(idx);
    expect(entriesOf(idx)).toEqual(want);
    expect(idx.numBuckets).toBe(2053);
    expect(idx.serialize().equals(vec('chunks.idx'))).toBe(true);
  });

  it('reads and writes the compact per-archive format', () => {
    expect(() => ChunkIndex.parse(vec('chunks-compact.idx'))).toThrow(BorgFormatError);
    const idx = ChunkIndex.parse(vec('chunks-compact.idx'), { permitCompact: true });
    expect(sortedBlobSha(entriesOf(idx))).toBe(meta.sortedEntriesSha256);
    const compact = idx.serializeCompact();
    expect(compact.length).toBe(vec('chunks-compact.idx').length);
    expect(sortedBlobSha(entriesOf(ChunkIndex.parse(compact, { permitCompact: true })))).toBe(meta.sortedEntriesSha256);
  });

  it('an empty index is byte-identical to ChunkIndex().write()', () => {
    expect(new ChunkIndex().serialize().equals(vec('empty.idx'))).toBe(true);
  });
});

describe('ChunkIndex', () => {
  it('add sums refcounts (saturating) and replaces sizes; merge adds every entry', () => {
    const a = new ChunkIndex();
    const k = Buffer.alloc(32, 1);
    a.add(k, 1, 10, 5);
    a.add(k, 2, 11, 6);
    expect(a.get(k)).toEqual({ refcount: 3, size: 11, csize: 6 });
    a.add(k, MAX_REFCOUNT, 11, 6);
    expect(a.get(k)?.refcount).toBe(MAX_REFCOUNT);
    const b = new ChunkIndex();
    b.add(k, 1, 12, 7);
    b.add(Buffer.alloc(32, 2), 4, 1, 1);
    const c = new ChunkIndex();
    c.merge(b);
    c.merge(b);
    expect(c.get(k)).toEqual({ refcount: 2, size: 12, csize: 7 });
    expect(c.get(Buffer.alloc(32, 2))?.refcount).toBe(8);
  });
  it('keeps load at borg\'s limit (0.75, +1 entry) using borg\'s table sizes, and survives heavy delete/insert churn', () => {
    const idx = new ChunkIndex();
    const live = new Set<string>();
    for (let i = 0; i < 20000; i++) {
      const k = sha(`k${i}`);
      idx.set(k, { refcount: 1, size: i, csize: i });
      live.add(k.toString('hex'));
      if (i % 3 === 0) {
        const d = sha(`k${i - 1}`);
        if (idx.delete(d)) live.delete(d.toString('hex'));
      }
      // borg grows before an insert once num_entries > upper_limit, so upper_limit + 1 is the real maximum
      expect(idx.size).toBeLessThanOrEqual(Math.trunc(idx.numBuckets * 0.75) + 1);
    }
    expect(HASH_SIZES).toContain(idx.numBuckets);
    expect(idx.size).toBe(live.size);
    for (const k of live) expect(idx.has(Buffer.from(k, 'hex'))).toBe(true);
    const again = ChunkIndex.parse(idx.serialize());
    expect(entriesOf(again)).toEqual(entriesOf(idx));
    // lookups while iterating do not move entries (borg's lookup-time tombstone move happens only on writes)
    let seen = 0;
    for (const [k] of idx) {
      expect(idx.get(k)).toBeDefined();
      seen++;
    }
    expect(seen).toBe(live.size);
  });
  it('grows and shrinks at the same points as borg 1.2.4 (observed: 774 entries stay in 1031 buckets, 775 grow;\n    2000 entries take 4099 buckets and deleting down to 900 shrinks to 2053)', () => {
    const ks = Array.from({ length: 2000 }, (_, i) => createHash('sha256').update(String(i)).digest());
    const idx = new ChunkIndex();
    ks.slice(0, 774).forEach((k) => idx.set(k, { refcount: 1, size: 2, csize: 3 }));
    expect(idx.numBuckets).toBe(1031);
    idx.set(ks[774] ?? Buffer.alloc(32), { refcount: 1, size: 2, csize: 3 });
    expect(idx.numBuckets).toBe(2053);
    ks.slice(775).forEach((k) => idx.set(k, { refcount: 1, size: 2, csize: 3 }));
    expect(idx.numBuckets).toBe(4099);
    ks.slice(0, 1100).forEach((k) => idx.delete(k));
    expect([idx.numBuckets, idx.size]).toEqual([2053, 900]);
  });
  it('refuses malformed files', () => {
    const good = new ChunkIndex();
    good.set(Buffer.alloc(32, 5), { refcount: 1, size: 2, csize: 3 });
    const file = good.serialize();
    expect(() => ChunkIndex.parse(file.subarray(0, file.length - 1))).toThrow(/length/);
    const wrongCount = Buffer.from(file);
    wrongCount.writeInt32LE(2, 8);
    expect(() => ChunkIndex.parse(wrongCount)).toThrow(/holds 1/);
    const badMagic = Buffer.from(file);
    badMagic[0] = 0x41;
    expect(() => ChunkIndex.parse(badMagic)).toThrow(/magic/);
    const badValue = Buffer.from(file);
    const at = [...good].length && file.indexOf(Buffer.alloc(32, 5));
    badValue.writeUInt32LE(0xfffffc00, at + 32);
    expect(() => ChunkIndex.parse(badValue)).toThrow(/reference count/);
    expect(() => good.set(Buffer.alloc(31), { refcount: 1, size: 1, csize: 1 })).toThrow(RangeError);
  });
  it.runIf(HAVE_BORG)('borg 1.2.4 reads files written here (normal and compact) with the same entries', () => {
    const idx = new ChunkIndex();
    const want = vectorOps(idx);
    for (let i = 0; i < 3000; i++) idx.add(sha(`more ${i}`), 1, i, i);
    const dir = tempDir('hashindex');
    writeFileSync(join(dir, 'chunks'), idx.serialize());
    writeFileSync(join(dir, 'compact'), idx.serializeCompact());
    const schema = z.object({ len: z.number(), entries: z.array(z.tuple([z.string(), z.number(), z.number(), z.number()])) });
    const expected = [...entriesOf(idx)].map(([k, e]) => [k, e.refcount, e.size, e.csize]).sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    for (const [file, compact] of [['chunks', false], ['compact', true]] as const) {
      const r = schema.parse(borgPython(compact ? ['readindex', join(dir, file), 'compact'] : ['readindex', join(dir, file)]));
      expect(r.len).toBe(want.size + 3000);
      expect(r.entries).toEqual(expected);
    }
  });
});
