// Issue 22 point 2: the recovery kit. With only the kit and a copy of a repository's folder — no
// BorgCube database, no master key, a fresh HOME and no BORG_* variables of the server — plain
// `borg` lists and extracts every archive (keyfile repositories after `borg key import`, repokey
// ones as they are, and also after their key was imported back from the kit). The console hands
// an admin the same kit after the password again; an unknown repository writes nothing.
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAuditEvents } from '../../db/queries/audit.js';
import { run } from '../../infra/subprocess.js';
import { addClient } from '../../services/clients.js';
import type { RecoveryKit } from '../../services/recovery-kit.js';
import { addUser } from '../../services/users.js';
import { backup } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, describeTree, type ClientHost } from '../harness/client-host.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';
import { tempDir } from '../harness/temp-dir.js';
import { createStackWebApp } from '../harness/web.js';
import { Browser, password } from './web-browser.js';

describe('recovery kit', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  const repoPath = (name: string) => `${stack.dataDir}-repos/${name}`;
  const archives: Record<string, string[]> = { rk: [], kf: [] };

  const cli = (args: string[], expectCode = 0) => expectCli(stack, args, expectCode);

  /** Plain borg as on another machine: nothing of the server's environment, a HOME of its own. */
  function plainBorg(home: string, passphrase: string) {
    return async (args: string[], cwd?: string) => {
      const r = await run('/usr/bin/borg', args, {
        cwd,
        env: { PATH: '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', BORG_PASSPHRASE: passphrase },
        timeoutMs: 120_000,
      });
      expect(r.code, `borg ${args.join(' ')}\n${r.stderr.toString()}`).toBe(0);
      return r.stdout.toString();
    };
  }

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    host = await createClientHost({
      authorizedKeys: [stack.serverPublicKey],
      tree: { 'data/big.bin': { type: 'file', size: 2 * 1024 * 1024, seed: 'k' }, 'data/a.txt': 'alpha\n', 'data/sub/b.txt': 'beta\n' },
    });
    await cli(['repo', 'add', 'rk', '--path', repoPath('rk')]);
    await cli(['repo', 'add', 'kf', '--path', repoPath('kf'), '--encryption', 'keyfile']);
    await addClient(stack.deps, { name: 'web', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    archives.rk!.push((await backup(stack, 'web', 'rk')).archiveName!);
    writeFileSync(host.path('data/a.txt'), 'alpha, changed\n');
    archives.rk!.push((await backup(stack, 'web', 'rk')).archiveName!);
    archives.kf!.push((await backup(stack, 'web', 'kf')).archiveName!);
  });
  afterAll(runCleanups);

  /** Lists and extracts every archive of a copy of `name` with plain borg and the kit's entry. */
  async function recoverWithPlainBorg(entry: RecoveryKit['repositories'][number], opts: { importKey: boolean }) {
    const work = tempDir('borgcube-test-kit');
    const copy = join(work, 'repo-copy');
    cpSync(repoPath(entry.name), copy, { recursive: true });
    const home = join(work, 'home');
    mkdirSync(home, { mode: 0o700 });
    const borg = plainBorg(home, entry.passphrase);
    const keyFile = join(work, 'repo.key');
    writeFileSync(keyFile, entry.keyExport, { mode: 0o600 });
    if (opts.importKey) await borg(['key', 'import', copy, keyFile]);
    // The copy was taken while the server's borg serve held the repository open, so its lock came
    // along, as from a server that died: the kit's instructions say to break it.
    await borg(['break-lock', copy]);
    const listed = (await borg(['list', '--short', copy])).split('\n').filter(Boolean);
    expect(listed.sort()).toEqual([...archives[entry.name]!].sort());
    for (const name of listed) {
      const into = join(work, `extract-${name}`);
      mkdirSync(into);
      await borg(['extract', `${copy}::${name}`], into);
      expect(existsSync(join(into, host.path('data'), 'big.bin'))).toBe(true);
    }
    // The newest archive is the client's tree as it is now.
    const newest = join(work, `extract-${listed.sort().at(-1)}`, host.path('data'));
    expect(describeTree(newest)).toEqual(describeTree(host.path('data')));
  }

  it('the CLI kit (JSON, 0600) opens every archive of a copied repokey and keyfile repository with plain borg', async () => {
    const dir = tempDir('borgcube-test-kit-out');
    const out = join(dir, 'kit.json');
    const r = await cli(['recovery-kit', '--out', out]);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/wrote the recovery kit of 2 repositories to .*kit\.json \(mode 0600\)/);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const kit = JSON.parse(readFileSync(out, 'utf8')) as RecoveryKit;
    expect(kit).toMatchObject({ format: 'borgcube-recovery-kit', version: 1, createdBy: expect.stringMatching(/^cli:/) as string, borgVersion: expect.stringMatching(/^borg 1\.2\./) as string });
    expect(kit.repositories.map((x) => [x.name, x.encryption, x.path])).toEqual([
      ['kf', 'keyfile', repoPath('kf')],
      ['rk', 'repokey', repoPath('rk')],
    ]);
    for (const entry of kit.repositories) {
      expect(entry.keyExport).toMatch(new RegExp(`^BORG_KEY ${entry.borgId}\\n[A-Za-z0-9+/=\\n]+\\n$`));
      expect(entry.sshUrl).toMatch(new RegExp(`^ssh://root@[^/]+${entry.path}$`));
    }
    // The kit never reaches the service logs or the CLI's output.
    const rk = kit.repositories.find((x) => x.name === 'rk')!;
    for (const log of ['storage.log', 'worker.log']) expect(readFileSync(join(stack.config.paths.logDir, log), 'utf8')).not.toContain(rk.passphrase);

    await recoverWithPlainBorg(kit.repositories.find((x) => x.name === 'kf')!, { importKey: true });
    await recoverWithPlainBorg(rk, { importKey: false });
    // A repokey copy whose config lost its key opens again once the exported key is imported.
    const work = tempDir('borgcube-test-kit-nokey');
    const copy = join(work, 'copy');
    cpSync(repoPath('rk'), copy, { recursive: true });
    const config = readFileSync(join(copy, 'config'), 'utf8');
    writeFileSync(join(copy, 'config'), config.replace(/^key = [\s\S]*$/m, ''));
    const home = join(work, 'home');
    mkdirSync(home);
    await plainBorg(home, rk.passphrase)(['break-lock', copy]);
    const bad = await run('/usr/bin/borg', ['list', copy], { env: { PATH: '/usr/bin:/bin', HOME: home, BORG_PASSPHRASE: rk.passphrase }, timeoutMs: 60_000 });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.toString()).not.toMatch(/lock/i);
    writeFileSync(join(work, 'rk.key'), rk.keyExport);
    const borg = plainBorg(home, rk.passphrase);
    await borg(['key', 'import', copy, join(work, 'rk.key')]);
    expect((await borg(['list', '--short', copy])).split('\n').filter(Boolean).sort()).toEqual([...archives.rk!].sort());

    const audit = (await listAuditEvents(stack.deps.db)).filter((e) => e.action === 'recovery-kit.export');
    expect(audit[0]).toMatchObject({ target: '*', detail: { repositories: ['kf', 'rk'] } });
    expect(JSON.stringify(audit)).not.toContain(rk.passphrase);
  });

  it('the printable form carries the instructions, the key block and the passphrase', async () => {
    const r = await cli(['recovery-kit', '--repo', 'kf', '--format', 'text']);
    expect(r.out).toMatch(/^BorgCube recovery kit\n/);
    expect(r.out).toContain('borg key import REPO repo.key');
    expect(r.out).toMatch(/=== repository kf ===\nborg id +[0-9a-f]{64}\nencryption +keyfile\npath +\S+\/kf/);
    expect(r.out).toMatch(/passphrase +\S{20,}\nkey \(borg key export\):\nBORG_KEY [0-9a-f]{64}\n/);
    expect(r.out).not.toContain('=== repository rk ===');
  });

  it('an unknown repository: one line, exit 1, no file', async () => {
    const dir = tempDir('borgcube-test-kit-bad');
    const out = join(dir, 'kit.json');
    const r = await cli(['recovery-kit', '--repo', 'nope', '--out', out], 1);
    expect(r.err).toBe('borgcube: repository "nope" does not exist\n');
    expect(r.out).toBe('');
    expect(existsSync(out)).toBe(false);
    // An existing file is never written over.
    writeFileSync(out, 'mine\n');
    const again = await cli(['recovery-kit', '--out', out], 2);
    expect(again.err).toMatch(/^borgcube: .*kit\.json exists already/);
    expect(readFileSync(out, 'utf8')).toBe('mine\n');
  });

  it('the console hands an admin the kit after the password again; others get nothing', async () => {
    const { app } = createStackWebApp(stack);
    await addUser(stack.deps, { username: 'admin', role: 'admin', password });
    await addUser(stack.deps, { username: 'op', role: 'operator', password });
    const admin = new Browser(app);
    const op = new Browser(app);
    expect((await admin.login('admin')).status).toBe(303);
    expect((await op.login('op')).status).toBe(303);

    const page = await (await admin.get('/repositories/kf')).text();
    expect(page).toContain('id="recovery-kit"');
    expect(page).toContain('action="/repositories/kf/recovery-kit"');
    expect(await (await op.get('/repositories/kf')).text()).not.toContain('id="recovery-kit"');

    expect((await op.post('/repositories/kf/recovery-kit', { password })).status).toBe(403);
    expect((await admin.post('/repositories/kf/recovery-kit', { password }, { csrf: false })).status).toBe(403);
    const wrong = await admin.post('/repositories/kf/recovery-kit', { password: 'not my password' });
    expect(wrong.status).toBe(400);
    expect(await wrong.text()).toContain('wrong password');
    const before = (await listAuditEvents(stack.deps.db)).filter((e) => e.action === 'recovery-kit.export').length;

    const res = await admin.post('/repositories/kf/recovery-kit', { password, format: 'json' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="borgcube-recovery-kit-kf-\d{4}-\d{2}-\d{2}\.json"$/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const kit = (await res.json()) as RecoveryKit;
    expect(kit.createdBy).toBe('web:admin');
    expect(kit.repositories.map((x) => x.name)).toEqual(['kf']);
    await recoverWithPlainBorg(kit.repositories[0]!, { importKey: true });

    const audit = (await listAuditEvents(stack.deps.db)).filter((e) => e.action === 'recovery-kit.export');
    expect(audit.length).toBe(before + 1);
    expect(audit[0]).toMatchObject({ actor: 'web:admin', target: 'kf' });
  });
});
