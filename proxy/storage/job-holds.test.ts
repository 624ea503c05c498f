import { afterEach, describe, expect, it, vi } from 'vitest';
import { JobHolds } from './job-holds.js';

describe('JobHolds', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keeps the latest live hold, forgets ended ones, and lets a hold lapse on its own', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const h = new JobHolds();
    expect(h.lastUntil()).toBe(0);
    h.hold('a', 60_000);
    h.hold('b', 10_000);
    expect(h.lastUntil()).toBe(1_060_000);
    expect(h.end('a')).toBe(true);
    expect(h.end('a')).toBe(false);
    expect(h.lastUntil()).toBe(1_010_000);
    // A job whose cleanup never came (a lost worker) does not keep borg serve open for ever.
    vi.advanceTimersByTime(10_000);
    expect(h.lastUntil()).toBe(0);
    expect(h.end('b')).toBe(false);
  });
});
