import { describe, expect, it } from 'vitest';
import { UpstreamClosedError, UpstreamError, upstreamErrorText } from '../upstream.js';
import { diskFullDetail, replyErrorOf } from './errors.js';

describe('disk full, as borg serve and the kernel say it', () => {
  it('recognizes ENOSPC from borg serve, its free-space check and the service itself', () => {
    // borg 1.2.4 passes an OSError on with exception_short "OSError: [Errno 28] No space left on device".
    expect(diskFullDetail(new UpstreamError('OSError', 'put: OSError: [Errno 28] No space left on device'))).toBe('No space left on device');
    expect(diskFullDetail(new UpstreamError('InsufficientFreeSpaceError', 'commit: Insufficient free space to complete transaction (required: 1.05 MB, available: 4.10 kB).'))).toBe(
      'Insufficient free space to complete transaction (required: 1.05 MB, available: 4.10 kB)',
    );
    expect(diskFullDetail(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }))).toBe('No space left on device');
  });

  it('leaves every other failure alone', () => {
    expect(diskFullDetail(new UpstreamError('PermissionError', "put: PermissionError: [Errno 13] Permission denied: '/srv/r/data/0/2'"))).toBeUndefined();
    expect(diskFullDetail(new UpstreamClosedError('borg serve for /srv/r exited (SIGKILL)'))).toBeUndefined();
    expect(diskFullDetail(Object.assign(new Error('EIO'), { code: 'EIO' }))).toBeUndefined();
    expect(diskFullDetail(new Error('No space left on device'))).toBeUndefined();
  });

  it('the client is still told only that the repository is unavailable', () => {
    const e = replyErrorOf(new UpstreamError('OSError', 'put: OSError: [Errno 28] No space left on device'), 'abcd0123');
    expect(e.message).toBe('BorgCube: the repository is unavailable; try again later (ref abcd0123)');
  });
});

describe("borg serve's InsufficientFreeSpaceError as the job's line", () => {
  it('keeps what borg says, not only the required figure that comes first in its arguments', () => {
    // borg 1.2.4's reply carries exception_args [required, available], already formatted.
    const text = upstreamErrorText('InsufficientFreeSpaceError', [Buffer.from('545.43 MB'), Buffer.from('4.10 kB')], []);
    expect(text).toBe('Insufficient free space to complete transaction (required: 545.43 MB, available: 4.10 kB).');
    expect(diskFullDetail(new UpstreamError('InsufficientFreeSpaceError', `commit: ${text}`))).toBe('Insufficient free space to complete transaction (required: 545.43 MB, available: 4.10 kB)');
    // Other errors: the first argument as before.
    expect(upstreamErrorText('ObjectNotFound', [Buffer.from('0123 not found'), Buffer.from('x')], [])).toBe('0123 not found');
    expect(upstreamErrorText('LockTimeout', ['x'], [Buffer.from('Failed to create/acquire the lock')])).toBe('Failed to create/acquire the lock');
  });
});
