import { describe, expect, it } from 'vitest';
import { Mutex } from './mutex.js';

describe('Mutex', () => {
  it('serializes holders in arrival order', async () => {
    const m = new Mutex();
    const order: number[] = [];
    const work = (n: number, ms: number) => m.run(async () => {
      order.push(n);
      await new Promise((r) => setTimeout(r, ms));
      order.push(-n);
    });
    await Promise.all([work(1, 20), work(2, 1), work(3, 1)]);
    expect(order).toEqual([1, -1, 2, -2, 3, -3]);
  });

  it('releases on error and ignores double release', async () => {
    const m = new Mutex();
    await expect(m.run(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
    const r = await m.acquire();
    r();
    r();
    expect(m.locked).toBe(false);
    await m.run(() => Promise.resolve(undefined));
  });
});
