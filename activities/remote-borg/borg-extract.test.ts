import { describe, expect, it } from 'vitest';
import type { Job, RestoreSpec } from '../../db/schema.js';
import { diskFullInLine } from '../borg-output.js';
import { checkCounted, checkRestored } from './restore-target.js';
import { jobRepositoryUrl } from '../../infra/storage-layout.js';
import { borgExtract, borgExtractArgv, parseExtractLine, restoreTargetFullMessage } from './borg-extract.js';

const config = { accounts: { proxy: 'borgcube' }, ssh: { host: 'backup.example.org', port: 2222 } };
const spec: RestoreSpec = { archiveId: 'x', archiveBorgId: 'f'.repeat(64), archiveName: 'web-1-2026-12-06T10-00-00', sourceClientId: null, paths: [], target: '/var/tmp/r', inPlace: false, stripComponents: 0 };

describe('borg extract', () => {
  it('passes every path as a literal path prefix, never as an option or another pattern style', () => {
    expect(borgExtractArgv(jobRepositoryUrl(config, 'job-1'), { ...spec, paths: ['re:.*', '-rf', 'etc/hosts'], stripComponents: 2 }, spec.archiveName, 'borg')).toEqual([
      'borg', 'extract', '--log-json', '--progress', '--list', '--sparse', '--strip-components', '2',
      'ssh://borgcube@backup.example.org:2222/job-1::web-1-2026-12-06T10-00-00', 'pp:re:.*', 'pp:-rf', 'pp:etc/hosts',
    ]);
    expect(borgExtractArgv(jobRepositoryUrl(config, 'job-1'), spec, 'a', '/home/u/.borgcube/jobs/job-1/borg').slice(-1)).toEqual(['ssh://borgcube@backup.example.org:2222/job-1::a']);
  });

  it('lists each restored path only where the restore is checked by that list', () => {
    const url = jobRepositoryUrl(config, 'job-1');
    expect(borgExtractArgv(url, spec, 'a', 'borg', 'count')).toEqual(['borg', 'extract', '--log-json', '--progress', '--sparse', 'ssh://borgcube@backup.example.org:2222/job-1::a']);
    expect(borgExtractArgv(url, spec, 'a', 'borg', 'list')).toContain('--list');
    // A dump streams one file to stdout: always listed.
    expect(borgExtractArgv(url, { ...spec, dump: { entry: 'x.sql', kind: 'postgresql', into: 'd' } }, 'a', 'borg', 'count')).toContain('--list');
  });

  it('reads borg 1.2 JSON lines: listed paths, byte progress with its total, the rest as log lines', () => {
    expect(parseExtractLine('{"type": "log_message", "time": 1.0, "message": "srv/<b>x</b>", "levelname": "INFO", "name": "borg.output.list"}')).toEqual({ kind: 'listed', path: 'srv/<b>x</b>' });
    expect(parseExtractLine('{"message": " 12.5% Extracting: srv/a", "current": 1250, "total": 10000, "info": ["srv/a"], "operation": 1, "msgid": "extract", "type": "progress_percent", "finished": false, "time": 2.5}')).toEqual({
      kind: 'progress', originalSize: 1250, compressedSize: 0, deduplicatedSize: 0, nfiles: 0, path: 'srv/a', time: 2.5, totalSize: 10000,
    });
    expect(parseExtractLine('{"operation": 1, "msgid": "extract", "type": "progress_percent", "finished": true, "time": 3}')).toEqual({ kind: 'progress-finished', time: 3 });
    expect(parseExtractLine('{"message": "Calculating total archive size for the progress indicator (might take long for large archives)", "current": 0, "total": 0, "info": null, "operation": 1, "msgid": "extract", "type": "progress_percent", "finished": false, "time": 1}')).toMatchObject({ kind: 'log', level: 'INFO', message: 'Calculating total archive size for the progress indicator (might take long for large archives)' });
    expect(parseExtractLine('{"message": "Setting directory permissions 50%", "current": 1, "total": 2, "operation": 2, "msgid": "extract.permissions", "type": "progress_percent", "finished": false, "time": 3}')).toBeNull();
    // A listed-looking line from another logger is an ordinary log line.
    expect(parseExtractLine('{"type": "log_message", "time": 1.0, "message": "x", "levelname": "WARNING", "name": "borg.archiver"}')).toMatchObject({ kind: 'log', level: 'WARNING', message: 'x' });
    // Malformed progress is not progress.
    expect(parseExtractLine('{"type": "progress_percent", "msgid": "extract", "current": -1, "total": 5, "time": 1}')).toBeNull();
  });

  it('lets borg read an authenticated job key only when the prepared restore says it got one', () => {
    const job = { id: 'job-1', restore: spec } as Job;
    // A storage host that predates authenticated keys says nothing: a key file, and the script says no.
    expect(borgExtract('ssh://x/job-1', job, spec.archiveName, 'borg').authenticatedKey).toBe(false);
    expect(borgExtract('ssh://x/job-1', job, spec.archiveName, 'borg', 'list', true).authenticatedKey).toBe(true);
  });

  it('keeps borg\'s question about an unknown unencrypted repository, answered by the job on purpose, out of the log; other questions stay', () => {
    // As borg 1.2.4 prints them with an authenticated job key and a new security folder.
    expect(parseExtractLine('{"type": "question_prompt", "msgid": "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "message": "Warning: Attempting to access a previously unknown unencrypted repository!\\nDo you want to continue? [yN] "}')).toBeNull();
    expect(parseExtractLine('{"env_var": "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "type": "question_env_answer", "msgid": "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "message": "yes (from BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK)"}')).toBeNull();
    expect(parseExtractLine('{"type": "question_prompt", "msgid": "BORG_RELOCATED_REPO_ACCESS_IS_OK", "message": "Warning: The repository at location x was previously located at y"}')).toMatchObject({ kind: 'log', level: 'WARNING' });
  });

  it('accepts a restore only when borg listed exactly the selected items and wrote no more than they hold', () => {
    expect(checkRestored({ listed: 5, writtenBytes: 90 }, { items: 5, files: 3, bytes: 100 })).toEqual({ items: 5, nfiles: 3, restoredBytes: 100, writtenBytes: 90 });
    expect(checkRestored({ listed: 2, writtenBytes: 0 }, { items: 2, files: 0, bytes: 0 })).toMatchObject({ writtenBytes: 0 });
    expect(() => checkRestored({ listed: 4, writtenBytes: 90 }, { items: 5, files: 3, bytes: 100 })).toThrow(/borg restored 4 items .*selection holds 5 items/);
    expect(() => checkRestored({ listed: 5, writtenBytes: 90 }, { items: 5, files: 3, bytes: 80 })).toThrow(/does not match the archive/);
  });

  it('accepts a restore into an empty folder only when it holds exactly the selected non-directories and at least their directories', () => {
    const expected = { items: 7, files: 3, dirs: 2, nondirs: 5, bytes: 100 };
    // Two parents borg created beside the two selected directories (e.g. home and home/u).
    expect(checkCounted({ listed: 0, writtenBytes: 90 }, expected, { nondirs: 5, dirs: 4, unreadable: false })).toEqual({ items: 7, nfiles: 3, restoredBytes: 100, writtenBytes: 90 });
    expect(() => checkCounted({ listed: 0, writtenBytes: 90 }, expected, { nondirs: 4, dirs: 4, unreadable: false })).toThrow(/target holds 4 non-directories .* selection holds 5 and 2/);
    expect(() => checkCounted({ listed: 0, writtenBytes: 90 }, expected, { nondirs: 6, dirs: 4, unreadable: false })).toThrow(/does not match/);
    expect(() => checkCounted({ listed: 0, writtenBytes: 90 }, expected, { nondirs: 5, dirs: 1, unreadable: false })).toThrow(/does not match/);
    expect(() => checkCounted({ listed: 0, writtenBytes: 90 }, { ...expected, bytes: 80 }, { nondirs: 5, dirs: 4, unreadable: false })).toThrow(/does not match/);
    // A folder the account cannot read hides what is below it: fewer is not a mismatch, more is.
    expect(checkCounted({ listed: 0, writtenBytes: 90 }, expected, { nondirs: 2, dirs: 1, unreadable: true })).toMatchObject({ items: 7 });
    expect(() => checkCounted({ listed: 0, writtenBytes: 90 }, expected, { nondirs: 6, dirs: 1, unreadable: true })).toThrow(/does not match/);
  });

  it('a full target: borg 1.2.4 warns per file it could not write; the restore fails with one line naming the target', () => {
    // As borg 1.2.4 printed it extracting into a full 2 MiB tmpfs (exit code 1).
    const warning = parseExtractLine('{"type": "log_message", "time": 1796608092.12, "message": "srv/a: write: [Errno 28] No space left on device", "levelname": "WARNING", "name": "borg.archiver"}')!;
    expect(diskFullInLine(warning, ['WARNING', 'ERROR', 'CRITICAL'])).toBe('No space left on device');
    // Not a server-side error line: the repository's disk is not what filled up.
    expect(diskFullInLine(warning)).toBeUndefined();
    const job = (restore: RestoreSpec) => ({ id: 'job-1', restore }) as Job;
    expect(borgExtract('ssh://x/job-1', job(spec), spec.archiveName, 'borg').diskFull).toBe(restoreTargetFullMessage('/var/tmp/r'));
    expect(restoreTargetFullMessage('/var/tmp/r')).toBe(
      'the disk of the restore target /var/tmp/r on the client is full (No space left on device); the files restored there so far are incomplete: free space there or restore elsewhere, and run the job again',
    );
    // A dump goes into its load command, whose own failure decides (dump-streams.ts).
    const dump: RestoreSpec = { ...spec, paths: ['dumps/pg.sql'], dump: { entry: 'dumps/pg.sql', kind: 'postgresql', into: 'restored' } };
    expect(borgExtract('ssh://x/job-1', job(dump), spec.archiveName, 'borg').diskFull).toBeUndefined();
  });
});
