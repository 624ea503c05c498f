import { html } from 'hono/html';
import { describe, expect, it } from 'vitest';
import { bytes, duration, ratio, when } from './format.js';
import { stateBadge } from './layout.js';

describe('formatting', () => {
  it('formats sizes, durations, ratios and times', () => {
    expect(bytes(512)).toBe('512 B');
    expect(bytes(1536)).toBe('1.50 KiB');
    expect(bytes(200 * 1024 ** 3)).toBe('200.0 GiB');
    expect(bytes(null)).toBe('—');
    expect(duration(59)).toBe('59 s');
    expect(duration(3600 * 26)).toBe('1 d 2 h');
    expect(ratio(3.14159)).toBe('×3.14');
    expect(when(new Date('2024-01-02T03:04:05.678Z'))).toBe('2024-01-02 03:04:05 UTC');
  });

  it('escapes what it is given: markup from a client stays text', async () => {
    const out = String(await html`<td>${'<script>alert(1)</script>'}</td>${stateBadge('"><img src=x onerror=alert(1)>')}`);
    expect(out).not.toContain('<script>');
    expect(out).not.toContain('<img');
    expect(out).toContain('&lt;script&gt;');
    expect(out).toContain('state-other');
  });
});
