// sshd's AuthorizedKeysCommand for BorgCube's sshd: asks the repository service whether the
// offered key (by its fingerprint, sshd's %f: the key never appears in `ps`) is a job credential. Prints the authorized_keys line the service returns
// (restrict + the forced proxy command) or nothing. Runs as the proxy account; any failure
// prints nothing, which makes sshd refuse the key.
import { connect } from 'node:net';
// Kept to node built-ins and the framing module: sshd runs this twice per login, and every
// module loaded here is start-up time of each backup's connection.
import { FrameDecoder, writeFrame } from '../protocol/frames.js';

function parseArgs(argv: string[]): { socket: string; user: string; fingerprint: string } | undefined {
  const i = argv.indexOf('--socket');
  if (i === -1 || argv.length !== i + 4) return undefined;
  const [socket, user, fingerprint] = argv.slice(i + 1) as [string, string, string];
  return { socket, user, fingerprint };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (!args) return 0;
  const lines = await new Promise<string[]>((resolve) => {
    const sock = connect(args.socket);
    const decoder = new FrameDecoder(1024 * 1024);
    const done = (l: string[]) => {
      // sshd waits for us on every login attempt: never linger after an answer or an error.
      clearTimeout(timer);
      sock.destroy();
      resolve(l);
    };
    const timer = setTimeout(() => done([]), 10_000);
    sock.on('connect', () => writeFrame(sock, { t: 'authorizedKeys', user: args.user, fingerprint: args.fingerprint }));
    sock.on('data', (c: Buffer) => {
      try {
        for (const f of decoder.push(c)) {
          const lines = (f.header as { lines?: unknown }).lines;
          done(Array.isArray(lines) && lines.length <= 4 && lines.every((l): l is string => typeof l === 'string' && l.length <= 8192) ? lines : []);
        }
      } catch {
        done([]);
      }
    });
    sock.on('error', () => done([]));
    sock.on('close', () => done([]));
  });
  for (const l of lines) if (!/[\r\n]/.test(l)) process.stdout.write(`${l}\n`);
  return 0;
}

void main().then((code) => {
  process.exitCode = code;
});
