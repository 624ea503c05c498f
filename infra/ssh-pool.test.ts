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

/** Lets the pool's promise chains run: open calls its callback a microtask later, and keeps what it opened after a then. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** An `open` callback that counts its calls; each opens at once (`now`) or when `finish` is called. */
function opener(now = false) {
  let opens = 0;
  let finish: (conn: SshConnection | undefined) => void = () => {};
  return {
    open: (): Promise<SshConnection | undefined> => {
      opens++;
      return now ? Promise.resolve(fakeConn()) : new Promise((resolve) => (finish = resolve));
    },
    opens: () => opens,
    finish: (conn: SshConnection | undefined) => finish(conn),
  };
}

/** A pool opening key `k`, and a claim of it (with a signal of its own) made while it opens. */
async function claimWhileOpening() {
  const pool = new SshPool(60_000);
  const c = fakeConn();
  const o = opener();
  pool.open('k', o.open);
  await Promise.resolve();
  const cancel = new AbortController();
  const claimed = pool.claim('k', cancel.signal);
  return { pool, c, o, cancel, claimed };
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
    const o = opener();
    pool.open('k', o.open);
    // One at a time per key: a second request while it is being opened opens nothing.
    pool.open('k', o.open);
    await Promise.resolve();
    expect(o.opens()).toBe(1);
    const claimed = pool.claim('k');
    o.finish(c);
    expect(await claimed).toBe(c);
    // Claimed: not also kept idle.
    expect(pool.size).toBe(0);
    expect(await pool.claim('k')).toBeUndefined();
  });

  it('an unclaimed one goes idle; a failed one leaves the claim to connect itself; closeAll closes one still opening', async () => {
    const pool = new SshPool(60_000);
    const c = fakeConn();
    pool.open('k', () => Promise.resolve(c));
    await settle();
    expect(pool.size).toBe(1);
    // Idle already: nothing more is opened.
    const more = opener(true);
    pool.open('k', more.open);
    await settle();
    expect(more.opens()).toBe(0);
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
    const slow = opener();
    pool.open('l', slow.open);
    await settle();
    pool.closeAll();
    slow.finish(late);
    await settle();
    expect(late.closes()).toBe(1);
    expect(pool.size).toBe(0);
    // Shut down: nothing is opened or kept any more.
    pool.open('n', more.open);
    await settle();
    expect(more.opens()).toBe(0);
    const after = fakeConn();
    pool.give('n', after);
    expect(after.closes()).toBe(1);
  });

  it('a claim stops waiting when its signal aborts; the connection, when it comes, goes idle', async () => {
    const { pool, c, o, cancel, claimed } = await claimWhileOpening();
    cancel.abort();
    expect(await claimed).toBeUndefined();
    o.finish(c);
    await settle();
    expect(pool.size).toBe(1);
    expect(await pool.claim('k')).toBe(c);
  });

  it('a second claim does not wait for the connection the first took; a claim leaves no listener on its signal; idle but closed ones do not stop an opening', async () => {
    const { pool, c, o, cancel, claimed: first } = await claimWhileOpening();
    expect(await pool.claim('k')).toBeUndefined();
    o.finish(c);
    expect(await first).toBe(c);
    expect(getEventListeners(cancel.signal, 'abort')).toHaveLength(0);

    const dead = fakeConn();
    pool.give('d', dead);
    dead.close();
    const again = opener(true);
    pool.open('d', again.open);
    await settle();
    expect(again.opens()).toBe(1);
  });
});
