// Issue 2 acceptance for the admin CLI: repositories in every encryption mode open with
// `borgcube borg REPO -- info`; clients pin their host key on first contact and a changed key is
// refused; bad input of every kind gives one line on stderr and a non-zero exit, and a failed
// `repo add` leaves neither a database row nor a folder.
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupAccount } from '../../infra/accounts.js';
import { findClientByName } from '../../db/queries/clients.js';
import { connectClient, updateClient } from '../../services/clients.js';
import { listRepositories } from '../../services/repositories.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';

describe('borgcube CLI', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  const repoRoot = () => `${stack.dataDir}-repos`;

  /** Runs the CLI and checks the failure shape: non-zero, exactly one line on stderr. */
  async function fails(args: string[], pattern: RegExp, env?: Record<string, string>) {
    const r = env ? await runWithEnv(args, env) : await stack.cli(args);
    expect(r.code, `${args.join(' ')} should fail`).not.toBe(0);
    const lines = r.err.split('\n').filter(Boolean);
    expect(lines, `stderr of ${args.join(' ')}: ${r.err}`).toHaveLength(1);
    expect(lines[0]).toMatch(/^borgcube: /);
    expect(lines[0]).toMatch(pattern);
    return r;
  }

  async function runWithEnv(args: string[], env: Record<string, string>) {
    const { run } = await import('../../infra/subprocess.js');
    const { projectRoot } = await import('../harness/paths.js');
    const r = await run(process.execPath, [`${projectRoot}/bin/borgcube`, ...args], { env: { ...stack.env, ...env }, timeoutMs: 120_000 });
    return { ...r, out: r.stdout.toString(), err: r.stderr.toString() };
  }

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'etc/x': 'x' } });
  });
  afterAll(runCleanups);

  for (const mode of ['repokey', 'repokey-blake2', 'keyfile', 'keyfile-blake2']) {
    it(`repo add --encryption ${mode} creates a repository that borg info opens`, async () => {
      const path = `${repoRoot()}/${mode}`;
      const r = await stack.cli(['repo', 'add', mode, '--path', path, '--encryption', mode, '--json']);
      expect(r.code, r.err).toBe(0);
      const row = JSON.parse(r.out) as Record<string, unknown>;
      expect(row).toMatchObject({ name: mode, path, encryption: mode });
      // Secrets never leave through list/show.
      expect(Object.keys(row).join(' ')).not.toMatch(/key|passphrase|sealed/i);
      const show = await stack.cli(['repo', 'show', mode, '--json']);
      expect(show.out).not.toMatch(/Sealed|passphrase/);
      const st = statSync(path);
      expect(st.uid).toBe(lookupAccount(stack.config.accounts.storage)!.uid);
      expect(st.mode & 0o777).toBe(0o700);
      const info = await stack.cli(['borg', mode, '--', 'info']);
      expect(info.code, info.err).toBe(0);
      // borg names the modes "repokey", "repokey BLAKE2b", "key file", "key file BLAKE2b".
      const label = mode.replace('keyfile', 'key file').replace('-blake2', ' BLAKE2b');
      expect(info.out).toContain(`Encrypted: Yes (${label})`);
    });
  }

  it('lists and shows repositories, with --json', async () => {
    const list = await stack.cli(['repo', 'list', '--json']);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.out) as unknown[]).length).toBe(4);
    expect((await stack.cli(['repo', 'list'])).out).toMatch(/keyfile-blake2/);
  });

  it('client add + client test pins the host key; a changed host key is refused', async () => {
    const add = await stack.cli(['client', 'add', 'web1', '--host', sshd.host, '--port', String(sshd.port), '--user', host.username, '--path', host.path('etc'), '--exclude', '*.tmp']);
    expect(add.code, add.err).toBe(0);
    const first = await stack.cli(['client', 'test', 'web1', '--json']);
    expect(first.code, first.err).toBe(0);
    const result = JSON.parse(first.out) as { pinnedNow: boolean; borgVersion: string; hostKeyFingerprint: string };
    expect(result.pinnedNow).toBe(true);
    expect(result.borgVersion).toBe('1.2.4');
    const shown = JSON.parse((await stack.cli(['client', 'show', 'web1', '--json'])).out) as { hostKey: string };
    expect(shown.hostKey).toBe(sshd.hostPublicKey);
    const again = await stack.cli(['client', 'test', 'web1']);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/matches the pinned key/);

    await sshd.regenerateHostKey();
    await fails(['client', 'test', 'web1'], /host key of .* changed: pinned SHA256:.*, presented SHA256:/);
    // Forgetting the pin (after a reinstall) lets the new key be pinned.
    expect((await stack.cli(['client', 'forget-host-key', 'web1'])).code).toBe(0);
    const repinned = await stack.cli(['client', 'test', 'web1', '--json']);
    expect(JSON.parse(repinned.out)).toMatchObject({ pinnedNow: true });
  });

  it('a first contact does not pin its key on a client whose address changed meanwhile', async () => {
    expect((await stack.cli(['client', 'add', 'moving', '--host', sshd.host, '--port', String(sshd.port), '--user', host.username, '--path', host.path('etc')])).code).toBe(0);
    const before = (await findClientByName(stack.deps.db, 'moving'))!;
    // The admin corrects the address while a connection to the old one is being made.
    await updateClient(stack.deps, 'moving', { host: 'elsewhere.invalid' });
    await expect(connectClient(stack.deps, before)).rejects.toThrow(/was changed while connecting to it/);
    const after = (await findClientByName(stack.deps.db, 'moving'))!;
    expect(after.hostKey).toBeNull();
    // Two first contacts with the same address: both pin (or find pinned) the same key.
    await updateClient(stack.deps, 'moving', { host: sshd.host });
    const row = (await findClientByName(stack.deps.db, 'moving'))!;
    const both = await Promise.all([connectClient(stack.deps, row), connectClient(stack.deps, row)]);
    for (const b of both) b.conn.close();
    expect(both.map((b) => b.pinnedNow).sort()).toEqual([false, true]);
    expect((await findClientByName(stack.deps.db, 'moving'))!.hostKey).toBe(sshd.hostPublicKey);
  });

  it('reports a missing borg on the client, and removes clients', async () => {
    expect((await stack.cli(['client', 'add', 'noborg', '--host', sshd.host, '--port', String(sshd.port), '--user', host.username, '--path', '/nonexistent-borgcube-test', '--borg-path', '/opt/none/borg'])).code).toBe(0);
    const t = await stack.cli(['client', 'test', 'noborg']);
    expect(t.code, t.err).toBe(0);
    expect(t.out).toMatch(/no borg at \/opt\/none\/borg\nborg deploy if-missing: jobs deploy the server's borg into their job folder/);
    expect(t.out).toMatch(/warning: \/nonexistent-borgcube-test does not exist/);
    expect((await stack.cli(['client', 'remove', 'noborg'])).code).toBe(0);
    await fails(['client', 'show', 'noborg'], /client "noborg" does not exist/);
  });

  it('prints the server key a client must authorize', async () => {
    const r = await stack.cli(['server-key']);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(stack.serverPublicKey);
  });

  it('gives one-line errors for bad input, unknown names, duplicates and unreachable hosts', async () => {
    await fails(['repo', 'add', 'x'], /required option '--path <path>' not specified/);
    await fails(['repo', 'add', 'x', '--path', 'relative/path'], /path: must be an absolute path/);
    await fails(['repo', 'add', 'x', '--path', '/tmp/x', '--encryption', 'rot13'], /encryption: /);
    await fails(['repo', 'add', 'bad name!', '--path', '/tmp/x'], /name: use 1-63 letters/);
    await fails(['repo', 'show', 'nope'], /repository "nope" does not exist/);
    await fails(['repo', 'add', 'repokey', '--path', `${repoRoot()}/other`], /repository "repokey" already exists/);
    await fails(['repo', 'add', 'samepath', '--path', `${repoRoot()}/repokey`], /is already the repository "repokey"/);
    await fails(['client', 'add', 'c', '--host', 'h'], /required option '--path <path>'/);
    await fails(['client', 'add', 'c', '--host', 'h', '--path', '/x', '--port', 'ssh'], /port/);
    await fails(['client', 'add', 'web1', '--host', 'h', '--path', '/x'], /client "web1" already exists/);
    await fails(['client', 'test', 'nope'], /client "nope" does not exist/);
    await fails(['borg', 'nope', '--', 'list'], /repository "nope" does not exist/);
    await fails(['nonsense'], /unknown command 'nonsense'/);
    await fails(['user', 'add', 'bob', '--role', 'king'], /role/);
    expect((await stack.cli(['client', 'add', 'dead', '--host', '127.0.0.1', '--port', '1', '--path', '/x'])).code).toBe(0);
    await fails(['client', 'test', 'dead'], /cannot reach root@127\.0\.0\.1:1: ECONNREFUSED/);
    await fails(['repo', 'list'], /invalid configuration: DATABASE_URL="nope"/, { DATABASE_URL: 'nope' });
  });

  it('a failed repo add leaves no database row and no folder', async () => {
    const before = (await listRepositories(stack.deps)).length;
    const path = `${repoRoot()}/will-fail/deeper/repo`;
    await fails(['repo', 'add', 'willfail', '--path', path], /borg init failed/, { BORGCUBE_BORG_PATH: '/bin/false' });
    expect(existsSync(`${repoRoot()}/will-fail`)).toBe(false);
    expect((await listRepositories(stack.deps)).length).toBe(before);
    // A folder that existed (empty) before stays, and stays empty.
    const pre = `${repoRoot()}/preexisting`;
    mkdirSync(pre, { recursive: true });
    await fails(['repo', 'add', 'willfail2', '--path', pre], /borg init failed/, { BORGCUBE_BORG_PATH: '/bin/false' });
    expect(existsSync(pre)).toBe(true);
    // A non-empty folder is refused before anything happens.
    writeFileSync(`${pre}/file`, 'x');
    await fails(['repo', 'add', 'willfail3', '--path', pre], /exists and is not empty/);
    expect((await listRepositories(stack.deps)).length).toBe(before);
  });

  it('two adds of the same path at once: one repository, intact; the other add is refused', async () => {
    const path = `${repoRoot()}/twice`;
    const [a, b] = await Promise.all([stack.cli(['repo', 'add', 'twice-a', '--path', path]), stack.cli(['repo', 'add', 'twice-b', '--path', path])]);
    expect([a, b].filter((r) => r.code === 0), `${a.err}\n${b.err}`).toHaveLength(1);
    expect(a.code ? a.err : b.err).toContain(`${path} is already the repository`);
    const winner = a.code ? 'twice-b' : 'twice-a';
    expect((await listRepositories(stack.deps)).filter((r) => r.path === path).map((r) => r.name)).toEqual([winner]);
    const check = await stack.cli(['borg', winner, '--', 'check']);
    expect(check.code, check.err).toBe(0);
  });

  it('adds console users with a generated password', async () => {
    const r = await stack.cli(['user', 'add', 'ops', '--role', 'operator', '--json']);
    expect(r.code, r.err).toBe(0);
    const u = JSON.parse(r.out) as { username: string; role: string; password: string; passwordHash?: string };
    expect(u).toMatchObject({ username: 'ops', role: 'operator' });
    expect(u.password).toMatch(/^[A-Za-z0-9]{20}$/);
    expect(u.passwordHash).toBeUndefined();
    await fails(['user', 'add', 'ops'], /user "ops" already exists/);
    const stdin = await stack.cli(['user', 'add', 'scripted', '--password-stdin'], { input: 'a-long-enough-password\n' });
    expect(stdin.code, stdin.err).toBe(0);
    const short = await stack.cli(['user', 'add', 'short', '--password-stdin'], { input: 'short\n' });
    expect(short.code).not.toBe(0);
    expect(short.err.trim()).toMatch(/^borgcube: password: must be at least 12 characters$/);
  });
});
