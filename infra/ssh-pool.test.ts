import { getEventListeners } from 'node:events';
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

  it('a connection opened ahead of need goes to the next claim, which waits for it', async () => {
    const pool = new SshPool(60_000);
    const c = fakeConn();
    let opened!: (conn: SshConnection | undefined) => void;
    let opens = 0;
    const open = () => {
      opens++;
      return new Promise<SshConnection | undefined>((resolve) => (opened = resolve));
    };
    pool.open('k', open);
    // One at a time per key: a second request while it is being opened opens nothing.
    pool.open('k', open);
    await Promise.resolve();
    expect(opens).toBe(1);
    const claimed = pool.claim('k');
    opened(c);
    expect(await claimed).toBe(c);
    // Claimed: not also kept idle.
    expect(pool.size).toBe(0);
    expect(await pool.claim('k')).toBeUndefined();
  });

  it('an unclaimed one goes idle; a failed one leaves the claim to connect itself; closeAll closes one still opening', async () => {
    const settle = async () => {
      for (let i = 0; i < 5; i++) await Promise.resolve();
    };
    const pool = new SshPool(60_000);
    const c = fakeConn();
    pool.open('k', () => Promise.resolve(c));
    await settle();
    expect(pool.size).toBe(1);
    // Idle already: nothing more is opened.
    let opens = 0;
    pool.open('k', () => {
      opens++;
      return Promise.resolve(fakeConn());
    });
    await settle();
    expect(opens).toBe(0);
    expect(await pool.claim('k')).toBe(c);

    // Failures, thrown or rejected, leave nothing to claim (and no unhandled rejection).
    pool.open('f', () => Promise.reject(new Error('refused')));
    expect(await pool.claim('f')).toBeUndefined();
    pool.open('g', () => {
      throw new Error('thrown');
    });
    expect(await pool.claim('g')).toBeUndefined();
    // One that closed before it was claimed is not handed out.
    const dead = fakeConn();
    dead.close();
    pool.open('d', () => Promise.resolve(dead));
    expect(await pool.claim('d')).toBeUndefined();

    const late = fakeConn();
    let opened!: (conn: SshConnection | undefined) => void;
    pool.open('l', () => new Promise((resolve) => (opened = resolve)));
    await settle();
    pool.closeAll();
    opened(late);
    await settle();
    expect(late.closes()).toBe(1);
    expect(pool.size).toBe(0);
    // Shut down: nothing is opened or kept any more.
    pool.open('n', () => {
      opens++;
      return Promise.resolve(fakeConn());
    });
    await settle();
    expect(opens).toBe(0);
    const after = fakeConn();
    pool.give('n', after);
    expect(after.closes()).toBe(1);
  });

  it('a claim stops waiting when its signal aborts; the connection, when it comes, goes idle', async () => {
    const pool = new SshPool(60_000);
    const c = fakeConn();
    let opened!: (conn: SshConnection | undefined) => void;
    pool.open('k', () => new Promise((resolve) => (opened = resolve)));
    await Promise.resolve();
    const cancel = new AbortController();
    const claimed = pool.claim('k', cancel.signal);
    cancel.abort();
    expect(await claimed).toBeUndefined();
    opened(c);
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(pool.size).toBe(1);
    expect(await pool.claim('k')).toBe(c);
  });

  it('a second claim does not wait for the connection the first took; a claim leaves no listener on its signal; idle but closed ones do not stop an opening', async () => {
    const pool = new SshPool(60_000);
    const c = fakeConn();
    let opened!: (conn: SshConnection | undefined) => void;
    pool.open('k', () => new Promise((resolve) => (opened = resolve)));
    await Promise.resolve();
    const cancel = new AbortController();
    const first = pool.claim('k', cancel.signal);
    expect(await pool.claim('k')).toBeUndefined();
    opened(c);
    expect(await first).toBe(c);
    expect(getEventListeners(cancel.signal, 'abort')).toHaveLength(0);

    const dead = fakeConn();
    pool.give('d', dead);
    dead.close();
    let opens = 0;
    pool.open('d', () => {
      opens++;
      return Promise.resolve(fakeConn());
    });
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(opens).toBe(1);
  });
});
