import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { shellCommand, shellQuote } from './shell-quote.js';

describe('shellQuote', () => {
  it('leaves plain words alone and quotes everything else', () => {
    expect(shellQuote('/srv/data-1')).toBe('/srv/data-1');
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('')).toBe("''");
  });

  it('round-trips hostile strings through a real sh', () => {
    const hostile = ["$(touch /tmp/pwned)", '`id`', 'a;b|c&d', "'\"\\", '\n*?[]{}~#!', 'ü €', '-rf'];
    const out = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${shellCommand(hostile)}`]);
    expect(out.toString('utf8').split('\0').slice(0, -1)).toEqual(hostile);
  });

  it('refuses NUL', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
  });
});
