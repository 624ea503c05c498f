import { describe, expect, it } from 'vitest';
import { escapeControlChars, escapeNul } from './control-chars.js';

describe('escapeControlChars', () => {
  it('makes NUL, ESC, CR, DEL and C1 controls visible and keeps tab, newline and other text', () => {
    expect(escapeControlChars('a\u0000b\u001b[2Jc\rd\u007fe\u009bf')).toBe('a\\x00b\\x1b[2Jc\\x0dd\\x7fe\\x9bf');
    expect(escapeControlChars('tab\there\nnext, ünïcödé ✓')).toBe('tab\there\nnext, ünïcödé ✓');
  });
  it('escapeNul touches only NUL', () => {
    expect(escapeNul('x\u0000y\u001b')).toBe('x\\x00y\u001b');
  });
});
