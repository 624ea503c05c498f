// `borgcube proxy`: the forced command of BorgCube's sshd, one process per client connection,
// running as the unprivileged proxy account. sshd starts it with the job id of the credential that
// authenticated (from the AuthorizedKeysCommand answer); the repository service checks that again
// against the key in $SSH_USER_AUTH before anything else happens. stdout carries only Borg's RPC.
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { writeFrame } from '../protocol/frames.js';
import { ClientSession } from './client-session.js';
import { storageSocketLink } from './storage-link.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

/** A line for the client's log: borg shows stderr JSON records of borg serve as "Remote: …" (§8.4). */
function tell(level: 'WARNING' | 'ERROR', message: string) {
  process.stderr.write(`${JSON.stringify({ type: 'log_message', time: Date.now() / 1000, levelname: level, name: 'borgcube.proxy', message })}\n`);
}

/**
 * sshd let a credential kept past its job (or its round) in only so that its use, now proven by a
 * signature, is reported (proxy/storage/authorized-keys.ts); nothing the client sends is read.
 */
function reportReuse(sock: Socket, jobId: string, authInfo: string) {
  const done = () => {
    tell('ERROR', 'BorgCube: this credential is no longer valid; the attempt is recorded');
    process.exit(2);
  };
  sock.once('error', done);
  sock.once('close', done);
  sock.once('connect', () => {
    writeFrame(sock, { t: 'violation', kind: 'credential-reuse', detail: 'credential used after its job', jobId, authInfo });
  });
  setTimeout(done, 10_000).unref();
}

function main() {
  // Whatever goes wrong here, the client gets one line, not a stack trace of the server.
  // Nor the error's text, which may name server paths (DESIGN.md §4.12); the service's side of
  // the session logs what it saw.
  process.on('uncaughtException', () => {
    tell('ERROR', 'BorgCube proxy failed');
    process.exit(2);
  });
  const socketPath = arg('--socket');
  const jobId = arg('--job');
  if (!socketPath || !jobId || !/^[0-9a-f-]{36}$/.test(jobId)) {
    tell('ERROR', 'BorgCube proxy: started without a job');
    process.exit(2);
  }
  let authInfo = '';
  try {
    if (process.env.SSH_USER_AUTH) authInfo = readFileSync(process.env.SSH_USER_AUTH, 'utf8').slice(0, 16384);
  } catch {
    /* the service refuses the session without it */
  }
  const sock = connect(socketPath);
  if (process.argv.includes('--reused')) return reportReuse(sock, jobId, authInfo);
  let finished = false;
  const finish = (code: number) => {
    if (finished) return;
    finished = true;
    process.stdout.end(() => process.exit(code));
    setTimeout(() => process.exit(code), 2000).unref();
  };
  // err.message names the socket's path on the server: not for the client.
  sock.once('error', () => {
    tell('ERROR', 'BorgCube repository service unavailable; try again later');
    finish(2);
  });
  sock.once('connect', () => {
    // Before anything of the client: the service counts this job's connections from here on.
    writeFrame(sock, { t: 'hello', jobId, authInfo });
    const session = new ClientSession({
      jobId,
      authInfo,
      input: process.stdin,
      output: process.stdout,
      service: storageSocketLink(sock, () => {
        if (!finished) tell('ERROR', 'BorgCube repository service closed the session');
        finish(2);
      }),
      tell,
      onEnd: finish,
    });
    session.start();
  });
}

main();
