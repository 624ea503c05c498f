// Issue 21 point 7: the proxy account reaches nothing but its socket to the repository service
// (DESIGN.md §5, last paragraph), whatever the local defaults of the other services are — on this
// machine PostgreSQL trusts every local connection (TCP and its Unix socket) and Redis has no
// password. Every probe runs as the proxy account twice: outside the sandbox (what a proxy was on
// main, and proof that the probe itself works) and inside bin/borgcube-sandbox, which is what the
// forced command runs in. The last test looks at a live proxy of a real backup.
import { spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireAccount, type Account } from '../../infra/accounts.js';
import { programs } from '../../infra/local-stack/programs.js';
import { addClient } from '../../services/clients.js';
import { startBackup } from '../../services/jobs.js';
import { describeJob, waitForJob } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { projectRoot } from '../harness/paths.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { startWeb } from '../harness/web.js';

const sandbox = programs(projectRoot).sandbox;

describe('the proxy account in its sandbox', () => {
  let stack: TestStack;
  let proxy: Account;
  let webUrl: string;

  beforeAll(async () => {
    stack = await startStack();
    proxy = requireAccount(stack.config.accounts.proxy);
    webUrl = (await startWeb(stack, 'sandbox-test-admin-pw')).url;
  });
  afterAll(runCleanups);

  /** Runs argv as the proxy account (as sshd runs its forced command), inside the sandbox or not. */
  function asProxy(argv: string[], sandboxed: boolean, timeout = 30_000) {
    const cmd = sandboxed ? [sandbox, stack.config.paths.runDir, ...argv] : argv;
    const r = spawnSync('setpriv', [`--reuid=${proxy.uid}`, `--regid=${proxy.gid}`, '--init-groups', ...cmd], {
      env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' },
      cwd: '/',
      timeout,
    });
    return { code: r.status, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
  }

  const temporalHostPort = (): [string, string] => {
    const a = stack.env.TEMPORAL_ADDRESS!;
    const i = a.lastIndexOf(':');
    return [a.slice(0, i), a.slice(i + 1)];
  };

  // `refused`: how the probe itself says it could not connect (so it ran, and failed for that reason).
  const probes: Array<{ name: string; argv: () => string[]; ok: RegExp; refused: RegExp }> = [
    { name: 'psql over TCP as postgres', argv: () => ['psql', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-Atc', 'select 4242'], ok: /4242/, refused: /Network is unreachable/ },
    { name: "psql over PostgreSQL's Unix socket as postgres", argv: () => ['psql', '-U', 'postgres', '-d', 'postgres', '-Atc', 'select 4242'], ok: /4242/, refused: /connection to server on socket .* failed: No such file or directory/ },
    { name: 'redis-cli ping', argv: () => ['redis-cli', '-u', stack.env.REDIS_URL!, 'ping'], ok: /PONG/, refused: /Network is unreachable/ },
    {
      name: "a TCP connection to Temporal's frontend",
      argv: () => {
        const [h, p] = temporalHostPort();
        return ['bash', '-c', `exec 3<>/dev/tcp/${h}/${p} && echo connected`];
      },
      ok: /connected/,
      refused: /Network is unreachable/,
    },
    { name: 'curl /metrics (token-less for loopback callers)', argv: () => ['curl', '-sS', '--max-time', '10', `${webUrl}/metrics`], ok: /borgcube_/, refused: /Couldn't connect|Failed to connect|Network is unreachable/ },
  ];

  for (const p of probes) {
    it(`${p.name}: answers the account outside the sandbox, fails inside`, () => {
      const outside = asProxy(p.argv(), false);
      expect(outside.out, outside.err).toMatch(p.ok);
      const inside = asProxy(p.argv(), true);
      expect(inside.code, inside.out).not.toBe(0);
      expect(inside.out).not.toMatch(p.ok);
      expect(inside.err).toMatch(p.refused);
    });
  }

  it('inside, the storage socket still answers, the control socket does not, and no capability is left', () => {
    const py = (path: string) => ['python3', '-c', `import socket; s=socket.socket(socket.AF_UNIX); s.connect(${JSON.stringify(path)}); print("reached")`];
    expect(asProxy(py(stack.config.paths.storageSocket), true).out).toMatch(/reached/);
    const control = asProxy(py(stack.config.paths.controlSocket), true);
    expect(control.out).not.toMatch(/reached/);
    expect(control.err).toMatch(/Permission denied/);
    const status = asProxy(['cat', '/proc/self/status'], true).out;
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    expect(status).toMatch(/^CapBnd:\s+0+$/m);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
  });

  describe('a live proxy of a real backup', () => {
    let sshd: ClientSshd;
    let host: ClientHost;

    beforeAll(async () => {
      sshd = await startClientSshd();
      host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/a.txt': 'sandboxed\n'.repeat(1000) } });
      // borg create's ssh connects at once (sshd starts the proxy), but the client's first bytes
      // wait for ~/hold to go: the proxy is alive and idle for as long as the test looks at it.
      host.writeTree({
        'held-ssh': { type: 'file', mode: 0o755, content: ['#!/bin/sh', `{ while [ -e ${host.path('hold')} ]; do sleep 0.1; done; exec cat; } | exec "$@"`, ''].join('\n') },
        'held-borg': { type: 'file', mode: 0o755, content: ['#!/bin/sh', `if [ "$1" = "create" ]; then BORG_RSH="${host.path('held-ssh')} $BORG_RSH"; export BORG_RSH; fi`, 'exec borg "$@"', ''].join('\n') },
      });
      const r = await stack.cli(['repo', 'add', 'sbx', '--path', `${stack.dataDir}-repos/sbx`]);
      expect(r.code, r.err).toBe(0);
      await addClient(stack.deps, { name: 'sbx', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: host.path('held-borg') });
    });

    it('runs in its own network and PID namespaces without capabilities; another sandboxed process cannot see or read it; the backup succeeds', async () => {
      host.writeTree({ hold: '' });
      const job = await startBackup(stack.deps, { client: 'sbx', repository: 'sbx', triggeredBy: 'test' });
      let pid: number | undefined;
      const deadline = Date.now() + 120_000;
      while (!pid) {
        if (Date.now() > deadline) throw new Error(`no proxy process for job ${job.id}\n${await describeJob(stack, job.id)}`);
        pid = proxyPidOf(job.id, proxy.uid);
        if (!pid) await new Promise((r) => setTimeout(r, 200));
      }
      try {
        expect(readlinkSync(`/proc/${pid}/ns/net`)).not.toBe(readlinkSync('/proc/self/ns/net'));
        expect(readlinkSync(`/proc/${pid}/ns/pid`)).not.toBe(readlinkSync('/proc/self/ns/pid'));
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        expect(status).toMatch(/^CapEff:\s+0+$/m);
        expect(status).toMatch(/^NoNewPrivs:\s+1$/m);

        // Reading the live proxy's memory: one address from its maps, then /proc/PID/mem there.
        const readMem = ['python3', '-c', `p=${pid}\nm=int(open(f"/proc/{p}/maps").readline().split("-")[0],16)\nf=open(f"/proc/{p}/mem","rb")\nf.seek(m)\nprint("read", len(f.read(16)))`];
        // The same account outside a sandbox (what every proxy was before) can…
        expect(asProxy(readMem, false).out).toMatch(/read 16/);
        // …another proxy, in its own sandbox, cannot: the process does not exist for it.
        const inside = asProxy(readMem, true);
        expect(inside.out).not.toMatch(/read/);
        expect(inside.err).toMatch(/No such file or directory/);
        expect(asProxy(['sh', '-c', 'ls /proc | grep -c "^[0-9]"'], true).out.trim()).toMatch(/^[1-3]$/);
      } finally {
        rmSync(host.path('hold'), { force: true });
      }
      const done = await waitForJob(stack, job.id);
      expect(done.state, `${done.error}\n${await describeJob(stack, job.id)}`).toBe('succeeded');
    });
  });

  it('costs: the sandbox adds this much to the start of every proxy (median of 20)', () => {
    const time = (sandboxed: boolean) => {
      const ms: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t0 = process.hrtime.bigint();
        const r = asProxy([process.execPath, '-e', '0'], sandboxed);
        expect(r.code, r.err).toBe(0);
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      return ms.sort((a, b) => a - b)[10]!;
    };
    const plain = time(false);
    const boxed = time(true);
    process.stdout.write(`\nproxy start as ${proxy.name}: node -e 0 ${plain.toFixed(1)} ms, in the sandbox ${boxed.toFixed(1)} ms (median of 20; +${(boxed - plain).toFixed(1)} ms)\n`);
    expect(boxed).toBeGreaterThan(0);
  });
});

/** The pid of the proxy (node running proxy/session/main.js) of this job, outside its namespace. */
function proxyPidOf(jobId: string, uid: number): number | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(join('/proc', e, 'cmdline'), 'utf8').split('\0');
      if (!cmd.some((a) => a.endsWith('proxy/session/main.js')) || !cmd.includes(jobId)) continue;
      if (!cmd[0]!.endsWith('node')) continue;
      if (!new RegExp(`^Uid:\\s+${uid}\\b`, 'm').test(readFileSync(join('/proc', e, 'status'), 'utf8'))) continue;
      return Number(e);
    } catch {
      /* gone */
    }
  }
  return undefined;
}
