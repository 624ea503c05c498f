import { describe, expect, it } from 'vitest';
import { backupHooks, editHookSet, hookSetSchema, hooksFromLines, hooksOf, MAX_HOOK_COMMAND_LENGTH, parseHookTimeout } from './hooks.js';

describe('hook input', () => {
  it('keeps a command exactly as typed, quotes, semicolons, newlines and all', () => {
    const command = `pg_dump app > '/var/backups/app.sql'; echo "$HOME" | tr a-z A-Z\n$(id -u) && ls *`;
    expect(hookSetSchema.parse({ before: [{ command }] })).toEqual({ before: [{ command }] });
  });

  it('refuses empty, blank, NUL-carrying and overlong commands, and unknown keys', () => {
    for (const command of ['', '   ', '\n\t', 'echo a\0b', 'x'.repeat(MAX_HOOK_COMMAND_LENGTH + 1)]) {
      expect(hookSetSchema.safeParse({ before: [{ command }] }).success, JSON.stringify(command.slice(0, 20))).toBe(false);
    }
    expect(hookSetSchema.safeParse({ before: [{ command: 'true', shell: 'bash' }] }).success).toBe(false);
    expect(hookSetSchema.safeParse({ afterBackup: [{ command: 'true' }] }).success).toBe(false);
    expect(hookSetSchema.safeParse({ after: Array.from({ length: 17 }, () => ({ command: 'true' })) }).success).toBe(false);
  });

  it('takes timeouts as seconds, minutes or hours between 1 s and a day', () => {
    expect(parseHookTimeout('90')).toBe(90);
    expect(parseHookTimeout('60s')).toBe(60);
    expect(parseHookTimeout('10m')).toBe(600);
    expect(parseHookTimeout('2h')).toBe(7200);
    for (const bad of ['0', '0s', '25h', '1d', '-5', 'soon', '', '1.5m']) expect(() => parseHookTimeout(bad), bad).toThrow(/not a timeout/);
    expect(hookSetSchema.safeParse({ before: [{ command: 'true', timeoutSeconds: 0 }] }).success).toBe(false);
    expect(hookSetSchema.safeParse({ before: [{ command: 'true', timeoutSeconds: 1.5 }] }).success).toBe(false);
  });

  it("runs the client's before hooks first and its end hooks last", () => {
    const client = { before: [{ command: 'c-before' }], onFailure: [{ command: 'c-fail' }], after: [{ command: 'c-after' }] };
    const policy = { before: [{ command: 'p-before' }], onFailure: [{ command: 'p-fail' }], after: [{ command: 'p-after' }] };
    const h = backupHooks(client, policy);
    expect(h.before.map((x) => x.command)).toEqual(['c-before', 'p-before']);
    expect(h.onFailure.map((x) => x.command)).toEqual(['p-fail', 'c-fail']);
    expect(h.after.map((x) => x.command)).toEqual(['p-after', 'c-after']);
    expect(backupHooks({}, undefined)).toEqual({ before: [], onFailure: [], after: [] });
  });

  it('refuses a stored set it cannot read instead of guessing', () => {
    expect(() => hooksOf({ before: 'rm -rf /' })).toThrow();
  });

  it('edits a set the way the CLI flags say: a phase given replaces it, --clear starts over', () => {
    const current = { before: [{ command: 'a' }], after: [{ command: 'b' }] };
    expect(editHookSet(current, { before: ['x', 'y'], timeoutSeconds: 30 })).toEqual({
      before: [{ command: 'x', timeoutSeconds: 30 }, { command: 'y', timeoutSeconds: 30 }],
      onFailure: [],
      after: [{ command: 'b' }],
    });
    expect(editHookSet(current, { clear: true, after: ['z'] })).toEqual({ after: [{ command: 'z' }] });
    expect(() => editHookSet(current, { before: [''] })).toThrow();
  });

  it('reads a form textarea as one command per line', () => {
    expect(hooksFromLines('one\r\n\n  \ntwo --flag "x y"\n', 60)).toEqual([{ command: 'one', timeoutSeconds: 60 }, { command: 'two --flag "x y"', timeoutSeconds: 60 }]);
  });
});
