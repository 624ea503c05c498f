import { describe, expect, it } from 'vitest';
import { LineSplitter, MAX_LINE, parseBorgLine } from './borg-output.js';

describe('LineSplitter', () => {
  it('splits across chunks', () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from('ab'))).toEqual([]);
    expect(s.push(Buffer.from('c\nd\ne'))).toEqual([
      { line: 'abc', truncated: false },
      { line: 'd', truncated: false },
    ]);
    expect(s.flush()).toEqual([{ line: 'e', truncated: false }]);
  });

  it('keeps memory bounded on a flood without newlines', () => {
    const s = new LineSplitter(100);
    for (let i = 0; i < 1000; i++) expect(s.push(Buffer.alloc(10_000, 0x41))).toEqual([]);
    const [l] = s.push(Buffer.from('\n'));
    expect(l!.line.length).toBe(100);
    expect(l!.truncated).toBe(true);
    expect(MAX_LINE).toBeGreaterThan(1000);
  });
});

describe('parseBorgLine', () => {
  it('reads archive_progress lines (BORG_PROTOCOL.md §8.1)', () => {
    const l = parseBorgLine('{"original_size": 10, "compressed_size": 5, "deduplicated_size": 3, "nfiles": 2, "path": "data/x", "time": 1795664142.16, "type": "archive_progress", "finished": false}');
    expect(l).toEqual({ kind: 'progress', originalSize: 10, compressedSize: 5, deduplicatedSize: 3, nfiles: 2, path: 'data/x', time: 1795664142.16 });
    expect(parseBorgLine('{"time": 1795664142.25, "type": "archive_progress", "finished": true}')).toEqual({ kind: 'progress-finished', time: 1795664142.25 });
  });

  it('reads log messages and keeps client text as data', () => {
    const l = parseBorgLine('{"type": "log_message", "time": 1.5, "message": "<script>alert(1)</script>", "levelname": "WARNING", "name": "borg.archiver", "msgid": "x"}');
    expect(l).toEqual({ kind: 'log', level: 'WARNING', type: 'log_message', msgid: 'x', message: '<script>alert(1)</script>', time: 1.5 });
  });

  it('turns anything else into a plain line and never throws', () => {
    expect(parseBorgLine('{not json')).toMatchObject({ kind: 'log', type: 'output', message: '{not json' });
    expect(parseBorgLine('{"type": "archive_progress", "time": "x"}')).toMatchObject({ kind: 'log', type: 'output' });
    expect(parseBorgLine('   ')).toBeNull();
    expect(parseBorgLine('x'.repeat(10_000))!).toMatchObject({ kind: 'log' });
    expect((parseBorgLine('x'.repeat(10_000)) as { message: string }).message.length).toBeLessThan(4200);
  });
});
