import { describe, expect, it } from 'vitest';
import { displayPath, pathArg } from './archive-browse.js';

describe('displayPath', () => {
  it('keeps UTF-8 and escapes the rest', () => {
    expect(displayPath(Buffer.from('home/zoë/ファイル.txt'))).toBe('home/zoë/ファイル.txt');
    expect(displayPath(Buffer.from([0x61, 0xff, 0x62]))).toBe('a\\xffb');
    expect(displayPath(Buffer.from('a\nb\tc\\d\x1b[31m'))).toBe('a\\nb\\tc\\\\d\\x1b[31m');
    expect(displayPath(Buffer.from([0xc3]))).toBe('\\xc3');
  });
});

describe('pathArg', () => {
  it('takes text or base64 and drops outer slashes', () => {
    expect(pathArg({ path: '/home/a/' }).toString()).toBe('home/a');
    expect(pathArg({ pathB64: Buffer.from([0x68, 0xff]).toString('base64') })).toEqual(Buffer.from([0x68, 0xff]));
    expect(pathArg({})).toEqual(Buffer.alloc(0));
    expect(() => pathArg({ pathB64: '***' })).toThrow(/not base64/);
  });
});
