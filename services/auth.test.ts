import { describe, expect, it } from 'vitest';
import { backoffMs, createMemoryLoginLimiter, defaultLoginLimits, limitAddress } from './auth.js';

describe('login limits', () => {
  it('counts an IPv6 address by its /64, IPv4 (also mapped) as is', () => {
    expect(limitAddress('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(limitAddress('2001:0db8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64');
    expect(limitAddress('2001:db8::5')).toBe('2001:db8:0:0::/64');
    expect(limitAddress('::1')).toBe('0:0:0:0::/64');
    expect(limitAddress('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(limitAddress('192.0.2.7')).toBe('192.0.2.7');
  });

  it('waits nothing within the free failures, then doubles from the base up to the cap', () => {
    const pair = defaultLoginLimits.pair;
    expect([1, 4, 5, 6, 7, 10, 11, 100].map((n) => backoffMs(pair, n) / 1000)).toEqual([0, 0, 30, 60, 120, 900, 900, 900]);
  });

  it('in memory: the same rules per (user, address) and per address, a right password resets the pair', async () => {
    const l = createMemoryLoginLimiter({ pair: { free: 2, baseSeconds: 30, maxSeconds: 60 }, address: { free: 3, baseSeconds: 60, maxSeconds: 60 }, forgetSeconds: 600 });
    expect(await l.attempt('192.0.2.1', 'admin')).toBe(0);
    expect(await l.attempt('192.0.2.1', 'admin')).toBe(0);
    expect(await l.attempt('192.0.2.1', 'admin')).toBe(30);
    expect(await l.attempt('192.0.2.2', 'admin')).toBe(0); // another address: its own budget
    expect(await l.attempt('192.0.2.1', 'Admin')).toBe(30); // names are counted case-insensitively
    expect(await l.attempt('192.0.2.1', 'someone')).toBe(0); // the address's third failure: allowed, then locked
    expect(await l.attempt('192.0.2.1', 'another')).toBe(60);
    await l.succeeded('192.0.2.1', 'admin');
    expect(await l.attempt('192.0.2.1', 'admin')).toBe(0); // pair reset, the address got one back
  });

  it('in memory: holds at most maxKeys keys', async () => {
    const l = createMemoryLoginLimiter(defaultLoginLimits, 10);
    for (let i = 0; i < 100; i++) await l.attempt(`10.0.0.${i}`, 'admin');
    expect(await l.attempt('10.0.0.99', 'admin')).toBe(0);
  });
});
