import { describe, expect, it } from 'vitest';
import { diskFullMessage } from '../proxy/storage/api.js';
import { diskFullInLine, LineSplitter, MAX_LINE, parseBorgLine } from './borg-output.js';

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

describe('diskFullInLine (a borg run on the server into a full repository disk)', () => {
  // As borg 1.2.4 printed them on a full tmpfs (prune, compact, check --verify-data).
  const insufficient =
    '{"type": "log_message", "time": 1796607424.37, "message": "Insufficient free space to complete transaction (required: 545.43 MB, available: 4.10 kB).", "levelname": "ERROR", "name": "borg.archiver", "msgid": "Repository.InsufficientFreeSpaceError"}';
  const enospc = JSON.stringify({
    type: 'log_message',
    time: 1796607418.56,
    message: 'OSError: [Errno 28] No space left on device\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File "/usr/lib/python3/dist-packages/borg/locking.py", line 291, in save\n    with open(self.path, "w") as f:\nOSError: [Errno 28] No space left on device\n',
    levelname: 'ERROR',
    name: 'borg.archiver',
  });

  it("reads borg's pre-commit free-space check and a write's ENOSPC", () => {
    expect(diskFullInLine(parseBorgLine(insufficient)!)).toBe('Insufficient free space to complete transaction (required: 545.43 MB, available: 4.10 kB)');
    expect(diskFullInLine(parseBorgLine(enospc)!)).toBe('No space left on device');
    expect(diskFullMessage('storage-1', diskFullInLine(parseBorgLine(enospc)!)!)).toBe("the repository's disk on storage host storage-1 is full: No space left on device; free space and run the job again");
  });

  it('ignores other errors, and the words at a level below ERROR or in progress lines', () => {
    expect(diskFullInLine(parseBorgLine('{"type": "log_message", "message": "Local Exception", "levelname": "ERROR", "msgid": "Exception"}')!)).toBeUndefined();
    expect(diskFullInLine(parseBorgLine('{"type": "log_message", "message": "Killed stale lock vm@1.2-0.", "levelname": "WARNING", "name": "borg.locking"}')!)).toBeUndefined();
    expect(diskFullInLine(parseBorgLine('{"type": "log_message", "message": "No space left on device", "levelname": "INFO"}')!)).toBeUndefined();
    expect(diskFullInLine(parseBorgLine('{"type": "progress_message", "message": "No space left on device", "msgid": "x"}')!)).toBeUndefined();
    expect(diskFullInLine(parseBorgLine('OSError: [Errno 28] No space left on device')!)).toBeUndefined();
    expect(diskFullInLine({ kind: 'progress-finished', time: 1 })).toBeUndefined();
  });
});
