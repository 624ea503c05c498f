import { describe, expect, it } from 'vitest';
import { parseRepositoryConfig, borgErrorLine } from './borg-cli.js';

describe('parseRepositoryConfig', () => {
  it('reads the id and a multi-line repokey', () => {
    const cfg = `[repository]\nversion = 1\nsegments_per_dir = 1000\nmax_segment_size = 524288000\nappend_only = 0\nstorage_quota = 0\nadditional_free_space = 0\nid = ${'ab'.repeat(32)}\nkey = hqlhbGdvcml0aG1\n\tAAAAAA\n\tBBBB\n\n`;
    const r = parseRepositoryConfig(cfg);
    expect(r.id).toBe('ab'.repeat(32));
    expect(r.key).toBe('hqlhbGdvcml0aG1\nAAAAAA\nBBBB');
    expect(r.appendOnly).toBe(false);
  });

  it('refuses a config without an id', () => {
    expect(() => parseRepositoryConfig('[repository]\nversion = 1\n')).toThrow(/id/);
  });
});

describe('borgErrorLine', () => {
  it('picks the last error of --log-json output and plain output', () => {
    const json = '{"type": "log_message", "levelname": "INFO", "message": "x", "name": "borg"}\n{"type": "log_message", "levelname": "ERROR", "message": "Repository /x does not exist.", "name": "borg.archiver"}\n';
    expect(borgErrorLine(json)).toBe('Repository /x does not exist.');
    expect(borgErrorLine('Traceback\n  File "x"\nRepository /y already exists.\n')).toBe('Repository /y already exists.');
  });
});
