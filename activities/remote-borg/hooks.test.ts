import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandPreview, HookOutput, hookPidFile, hookScript, killHookScript } from './hooks.js';

const jobId = '6c1f7a52-4f55-4d2b-9a54-0d4d2c1c9b1e';

/** Runs the wrapper with the local sh in a scratch home, as the client's login shell would. */
function runWrapper(command: string, home = mkdtempSync(join(tmpdir(), 'hook-'))) {
  const r = spawnSync('sh', ['-c', hookScript({ home, jobId, phase: 'after', state: 'failed', command })], { encoding: 'utf8', timeout: 20_000 });
  return { home, code: r.status, out: r.stdout + r.stderr };
}

describe('hookScript', () => {
  it('runs the command as typed, once: quotes and expansions reach sh -c unchanged', () => {
    const { home, code, out } = runWrapper(`printf '%s|' "a b" 'it'"'"'s' "$BORGCUBE_HOOK" "$BORGCUBE_JOB_STATE" $((6*7)); echo; pwd`);
    expect(code).toBe(0);
    expect(out).toBe(`a b|it's|after|failed|42|\n${home}\n`);
    expect(existsSync(join(home, hookPidFile(jobId))), 'pid file left').toBe(false);
    rmSync(home, { recursive: true });
  });

  it("passes the hook's exit code, with its stderr in the output", () => {
    const r = runWrapper('echo to-err >&2; no-such-command-xyz');
    expect(r.code).toBe(127);
    expect(r.out).toMatch(/to-err\n.*no-such-command-xyz.*not found/);
  });

  it('kills what the hook left running in its process group when it exits', () => {
    const home = mkdtempSync(join(tmpdir(), 'hook-'));
    const r = runWrapper(`sleep 300 > /dev/null & echo $! > ${home}/child`, home);
    expect(r.code).toBe(0);
    const child = readFileSync(join(home, 'child'), 'utf8').trim();
    expect(processLives(child)).toBe(false);
  });

  it('killHookScript stops a running hook and all it started', async () => {
    const home = mkdtempSync(join(tmpdir(), 'hook-'));
    const { spawn } = await import('node:child_process');
    const wrapper = spawn('sh', ['-c', hookScript({ home, jobId, phase: 'before', command: `sleep 301 & echo $! > ${home}/child; trap '' TERM; sleep 302` })], { stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => wrapper.on('exit', r));
    for (let i = 0; i < 100 && !existsSync(join(home, 'child')); i++) await new Promise((r) => setTimeout(r, 50));
    const child = readFileSync(join(home, 'child'), 'utf8').trim();
    const t0 = Date.now();
    expect(spawnSync('sh', ['-c', killHookScript(home, jobId)]).status).toBe(0);
    expect(await exited).not.toBe(0);
    // The hook ignored SIGTERM: SIGKILL after five seconds.
    expect(Date.now() - t0).toBeGreaterThan(4000);
    expect(processLives(child)).toBe(false);
    expect(existsSync(join(home, hookPidFile(jobId)))).toBe(false);
    rmSync(home, { recursive: true });
  }, 30_000);
});

function processLives(pid: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

describe('HookOutput', () => {
  it('keeps the first lines, counts the rest, and remembers the last line', async () => {
    const stored: string[] = [];
    const out = new HookOutput((l) => Promise.resolve(void stored.push(l)), { lines: 3, bytes: 1024 });
    for (let i = 0; i < 10_000; i++) out.push(Buffer.from(`line ${i}\n`));
    out.push(Buffer.from('the end'));
    const dropped = await out.end();
    expect(stored).toEqual(['line 0', 'line 1', 'line 2']);
    expect(dropped).toMatch(/only the first 3 lines are kept, \d+ more bytes were dropped/);
    expect(out.lastLine()).toBe('the end');
  });

  it('stores nothing extra when the output fits, and marks a cut line', async () => {
    const stored: string[] = [];
    const out = new HookOutput((l) => Promise.resolve(void stored.push(l)));
    out.push(Buffer.concat([Buffer.alloc(5000, 'x'), Buffer.from('\nshort\n')]));
    expect(await out.end()).toBeUndefined();
    expect(stored[0]).toMatch(/^x{4096} \[line truncated\]$/);
    expect(stored[1]).toBe('short');
  });

  it('quotes a command on one line for the log', () => {
    expect(commandPreview('a\nb')).toBe('"a ⏎ b"');
    expect(commandPreview('y'.repeat(200))).toHaveLength(122);
  });
});
