import { describe, expect, it } from 'vitest';
import { ItemsCache } from './items-cache.js';

const entry = (n: number) => ({ exit: 'x', ids: Buffer.alloc(32 * n, n), items: n });

describe('ItemsCache', () => {
  it('finds an entry only under the same chunk and entry state', () => {
    const c = new ItemsCache(1 << 20);
    c.set('r/aa', 's1', entry(1));
    expect(c.get('r/aa', 's1')?.items).toBe(1);
    expect(c.get('r/aa', 's2')).toBeUndefined();
    expect(c.get('q/aa', 's1')).toBeUndefined();
    expect(c.hasChunk('r/aa')).toBe(true);
    expect(c.hasChunk('q/aa')).toBe(false);
  });

  it('keeps to its byte bound, dropping the oldest entries first', () => {
    const c = new ItemsCache(32 * 10 * 3 + 3 * 200);
    for (let i = 0; i < 10; i++) c.set(`r/${i}`, 's', entry(10));
    expect(c.size).toBeLessThanOrEqual(4);
    expect(c.get('r/9', 's')).toBeDefined();
    expect(c.get('r/0', 's')).toBeUndefined();
    expect(c.hasChunk('r/0')).toBe(false);
    // An entry larger than the whole bound is not kept (and evicts nothing).
    c.set('r/huge', 's', entry(1000));
    expect(c.get('r/huge', 's')).toBeUndefined();
    expect(c.get('r/9', 's')).toBeDefined();
  });

  it('counts entries per chunk, so a chunk stays known while any of its entries is kept', () => {
    const c = new ItemsCache(250); // two entries of 103 bytes (key, state, one id, 64)
    c.set('r/a', 's1', entry(1));
    c.set('r/a', 's2', entry(1));
    c.set('r/b', 's', entry(1)); // pushes out r/a's first entry
    expect(c.get('r/a', 's1')).toBeUndefined();
    expect(c.get('r/a', 's2')).toBeDefined();
    expect(c.hasChunk('r/a')).toBe(true);
  });
});
