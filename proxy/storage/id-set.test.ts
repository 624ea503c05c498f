import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IdCollector, IdFile, sortedHas } from './id-set.js';

describe('sorted id files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'borgcube-idset-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('holds each id once, sorted, and finds exactly the ids added', () => {
    const ids = Array.from({ length: 5000 }, () => randomBytes(32));
    const c = new IdCollector();
    // Every id twice, in two orders: repeats are kept once.
    for (const id of ids) c.add(id);
    for (const id of [...ids].reverse()) c.add(id);
    expect(c.size).toBe(10000);
    const path = join(dir, 'allowed.ids');
    expect(c.writeSorted(path)).toBe(5000);
    expect(statSync(path).size).toBe(5000 * 32);
    const sorted = c.sorted();
    for (let i = 1; i < 5000; i++) expect(Buffer.compare(sorted.subarray((i - 1) * 32, i * 32), sorted.subarray(i * 32, (i + 1) * 32))).toBe(-1);

    const f = new IdFile(path);
    try {
      for (const id of ids) {
        expect(f.has(id)).toBe(true);
        expect(sortedHas(sorted, id)).toBe(true);
      }
      for (let i = 0; i < 2000; i++) expect(f.has(randomBytes(32))).toBe(false);
      // Neighbours of a present id (one bit off either end) and ids of the wrong length are absent.
      const near = Buffer.from(ids[0]!);
      near[31]! ^= 1;
      expect(f.has(near)).toBe(ids.some((x) => x.equals(near)));
      expect(f.has(ids[0]!.subarray(0, 31))).toBe(false);
      expect(f.has(Buffer.alloc(32))).toBe(false);
      expect(f.has(Buffer.alloc(32, 0xff))).toBe(false);
    } finally {
      f.close();
    }
  });

  it('an empty set finds nothing; a file of the wrong size is refused', () => {
    const path = join(dir, 'empty.ids');
    expect(new IdCollector().writeSorted(path)).toBe(0);
    const f = new IdFile(path);
    expect(f.has(randomBytes(32))).toBe(false);
    f.close();
    const bad = join(dir, 'bad.ids');
    const c = new IdCollector();
    c.add(randomBytes(32));
    c.writeSorted(bad);
    rmSync(bad);
    expect(() => new IdFile(bad)).toThrow();
    expect(() => new IdCollector().add(Buffer.alloc(31))).toThrow(/32 bytes/);
  });

  it('sorts and de-duplicates ids that share their first bytes (the sort compares four first)', () => {
    // 2,000 ids over 8 heads, differing from byte 4 or only in their last byte; each added twice.
    const ids = Array.from({ length: 2000 }, (_, i) => {
      const id = i % 2 ? randomBytes(32) : Buffer.alloc(32, 0x5a);
      id.writeUInt32BE(i % 8, 0);
      if (i % 2 === 0) id.writeUInt16BE(i, 30);
      return id;
    });
    const c = new IdCollector();
    for (const id of [...ids, ...[...ids].reverse()]) c.add(id);
    const expected = Buffer.concat([...new Map(ids.map((id) => [id.toString('hex'), id])).values()].sort((a, b) => Buffer.compare(a, b)));
    expect(c.sorted().equals(expected)).toBe(true);
  });

  it('finds every id and no neighbour at the edges of its index blocks (256 ids each)', () => {
    for (const n of [1, 255, 256, 257, 513]) {
      const c = new IdCollector();
      for (let i = 0; i < n; i++) c.add(randomBytes(32));
      const path = join(dir, `edge-${n}.ids`);
      c.writeSorted(path);
      const sorted = c.sorted();
      const f = new IdFile(path);
      try {
        for (let i = 0; i < n; i++) {
          const id = sorted.subarray(i * 32, i * 32 + 32);
          expect(f.has(id)).toBe(true);
          const below = Buffer.from(id);
          below[31] = below[31]! - 1;
          if (id[31]! > 0 && !(i > 0 && sorted.subarray(i * 32 - 32, i * 32).equals(below))) expect(f.has(below)).toBe(false);
        }
      } finally {
        f.close();
      }
    }
  });
});
