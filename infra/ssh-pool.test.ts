import { describe, expect, it, vi } from 'vitest';
import type { SshConnection } from './ssh.js';
import { SshPool } from './ssh-pool.js';

/** A stand-in connection and the spy on its close(). */
function fakeConn(): SshConnection & { closes: () => number } {
  let closes = 0;
  const c = {
    isClosed: false,
    close: () => {
      closes++;
      c.isClosed = true;
    },
    closes: () => closes,
  };
  return c as unknown as SshConnection & { closes: () => number };
}

describe('SshPool', () => {
  it('hands a kept connection back once, for the same key only', () => {
    const pool = new SshPool(60_000);
    const c = fakeConn();
    pool.give('a', c);
    expect(pool.take('b')).toBeUndefined();
    expect(pool.take('a')).toBe(c);
    expect(pool.take('a')).toBeUndefined();
    expect(c.closes()).toBe(0);
  });

  it('never hands out a connection that closed while idle', () => {
    const pool = new SshPool(60_000);
    const c = fakeConn();
    pool.give('a', c);
    (c as { isClosed: boolean }).isClosed = true;
    expect(pool.take('a')).toBeUndefined();
    expect(pool.size).toBe(0);
  });

  it('closes idle connections after the idle time and beyond the per-key limit', () => {
    vi.useFakeTimers();
    try {
      const pool = new SshPool(1000, 1);
      const a = fakeConn();
      const b = fakeConn();
      pool.give('k', a);
      pool.give('k', b);
      expect(b.closes()).toBe(1);
      vi.advanceTimersByTime(1001);
      expect(a.closes()).toBe(1);
      expect(pool.take('k')).toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });

  it('closeAll closes what it keeps', () => {
    const pool = new SshPool(60_000);
    const a = fakeConn();
    pool.give('k', a);
    pool.closeAll();
    expect(a.closes()).toBe(1);
    expect(pool.size).toBe(0);
  });
});
