import { describe, expect, it } from 'vitest';
import { formatBorgTime, nextTimestamp, parseBorgTime } from './timestamps.js';

describe('borg timestamps', () => {
  it('round-trips ISO_FORMAT', () => {
    const s = '2026-11-26T03:36:18.670482';
    expect(formatBorgTime(parseBorgTime(s))).toBe(s);
    expect(parseBorgTime('2026-11-26T03:36:18')).toBe(Date.parse('2026-11-26T03:36:18Z') * 1000);
  });

  it('is strictly increasing even when the clock is behind', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(nextTimestamp('2027-01-01T00:00:00.999999', now)).toBe('2027-01-01T00:00:01.000000');
    expect(nextTimestamp('2025-01-01T00:00:00.000000', now)).toBe('2026-01-01T00:00:00.000000');
  });
});
