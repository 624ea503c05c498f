import { describe, expect, it } from 'vitest';
import { lines, safeNext } from './form.js';

describe('safeNext', () => {
  it('keeps local paths and refuses everything that could leave the console', () => {
    expect(safeNext('/jobs?state=failed')).toBe('/jobs?state=failed');
    for (const bad of ['//evil.example/', '/\\evil.example', 'https://evil.example/', 'javascript:alert(1)', '', undefined, '/a b']) expect(safeNext(bad)).toBe('/');
  });
});

describe('lines', () => {
  it('splits a textarea into trimmed, non-empty lines', () => {
    expect(lines(' /etc \r\n\n/home\n  ')).toEqual(['/etc', '/home']);
    expect(lines(undefined)).toEqual([]);
  });
});
