import { describe, expect, it } from 'vitest';
import { clientArchiveGlob, clientArchiveRegex, parsePruneListLine, retentionArgs } from './maintenance.js';

/** borg/shellpattern.py translate() for the subset the glob uses: `*` (no `/`), `[…]`, literals. */
function shellPatternToRegex(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '[') {
      const end = glob.indexOf(']', i);
      re += glob.slice(i, end + 1);
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  }
  // do_prune adds match_end=(\.checkpoint(\.\d+)?)?\Z, which the trailing * already covers.
  return new RegExp(`^${re}$`);
}

describe('the archive pattern of a client', () => {
  const names = {
    web: ['web-2024-01-02T03-04-05', 'web-2024-01-02T03-04-05-2', 'web-2024-01-02T03-04-05.checkpoint', 'web-2024-01-02T03-04-05-3.checkpoint.1'],
    'web-2': ['web-2-2024-01-02T03-04-05', 'web-2-2024-01-02T03-04-05.checkpoint'],
    'web.x': ['web.x-2024-01-02T03-04-05'],
  };

  it('selects exactly that client’s server-built names, never a client whose name extends it', () => {
    for (const [client, own] of Object.entries(names)) {
      const glob = shellPatternToRegex(clientArchiveGlob(client));
      const exact = clientArchiveRegex(client);
      for (const [other, theirs] of Object.entries(names)) {
        for (const n of theirs) {
          expect(glob.test(n), `${client} glob vs ${n}`).toBe(other === client);
          expect(exact.test(n), `${client} exact vs ${n}`).toBe(other === client);
        }
      }
      expect(own.length).toBeGreaterThan(0);
    }
  });

  it('the exact check catches what a glob cannot tell apart (a client named like a timestamp)', () => {
    const odd = 'web-2024-01-01T00-00-00-2025-01-01T00-00-00';
    expect(shellPatternToRegex(clientArchiveGlob('web')).test(odd)).toBe(true);
    expect(clientArchiveRegex('web').test(odd)).toBe(false);
  });

  it('refuses names that are not client names', () => {
    expect(() => clientArchiveGlob('a*b')).toThrow();
    expect(() => clientArchiveGlob('[x]')).toThrow();
  });
});

describe('retention rules', () => {
  it('become borg prune options in a fixed order', () => {
    expect(retentionArgs({ daily: 7, keepWithin: '2d', yearly: 1 })).toEqual(['--keep-within', '2d', '--keep-daily', '7', '--keep-yearly', '1']);
    expect(retentionArgs({})).toEqual([]);
  });
  it('refuse values borg would misread', () => {
    expect(() => retentionArgs({ keepWithin: '2 days' })).toThrow();
    expect(() => retentionArgs({ daily: 0 })).toThrow();
  });
});

describe('borg prune --list lines', () => {
  const id = 'ab'.repeat(32);
  it('are parsed into pruned and kept archives', () => {
    expect(parsePruneListLine(`${'Pruning archive (1/3):'.padEnd(40)} ${'web-2024-01-01T00-00-00'.padEnd(36)} Mon, 2024-01-01 00:00:00 [${id}]`)).toEqual({ action: 'prune', name: 'web-2024-01-01T00-00-00', id, rule: undefined });
    expect(parsePruneListLine(`${'Keeping archive (rule: daily #1):'.padEnd(40)} web-2024-01-02T00-00-00 Tue, 2024-01-02 00:00:00 [${id}]`)).toMatchObject({ action: 'keep', rule: 'daily #1' });
    expect(parsePruneListLine(`${'Keeping checkpoint archive:'.padEnd(40)} web-2024-01-02T00-00-00.checkpoint Tue, 2024-01-02 00:00:00 [${id}]`)).toMatchObject({ action: 'keep' });
    expect(parsePruneListLine('Pruning archives  50%')).toBeNull();
  });
});
