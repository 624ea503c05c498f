// A Temporal frontend that speaks TLS and wants an API key, for tests of BorgCube's external-Temporal
// configuration. The Temporal CLI's dev server (v1.5.1) cannot serve TLS (no such flags; its own
// source says "the dev server doesn't support TLS"), so a gRPC reverse proxy terminates mutual TLS
// in front of a dev server — as an ingress does in front of a cluster — and, like Temporal Cloud,
// answers UNAUTHENTICATED to calls without the right `authorization: Bearer <key>`.
// Certificates come from a CA made with openssl for the test.
import { chmodSync, chownSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, constants, createSecureServer, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { join } from 'node:path';
import { runChecked } from '../../infra/subprocess.js';
import { registerCleanup } from './cleanup.js';
import { tempDir } from './temp-dir.js';

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: a client trusting only it must refuse the server. */
  otherCaCert: string;
  /** The DNS name in the server's certificate (not the address's host: the override is needed). */
  serverName: string;
}

/**
 * A CA, a server certificate for `serverName`, a client certificate, and an unrelated CA. The
 * folder and the keys are readable by `group` (the storage account reads the client key too).
 */
export async function makeTestPki(group?: number): Promise<TestPki> {
  const dir = tempDir('borgcube-test-pki');
  const f = (name: string) => join(dir, name);
  const ssl = (args: string[]) => runChecked('openssl', args, { timeoutMs: 60_000 });
  const serverName = 'temporal.borgcube.test';
  for (const ca of ['ca', 'other-ca']) {
    await ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=BorgCube test ${ca}`, '-keyout', f(`${ca}.key`), '-out', f(`${ca}.crt`)]);
  }
  const leaf = async (name: string, subject: string, ext: string) => {
    await ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', subject, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`)]);
    writeFileSync(f(`${name}.ext`), ext);
    await ssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`)]);
  };
  await leaf('server', `/CN=${serverName}`, `subjectAltName=DNS:${serverName}\nextendedKeyUsage=serverAuth\n`);
  await leaf('client', '/CN=borgcube-worker', 'extendedKeyUsage=clientAuth\n');
  if (group !== undefined) {
    chownSync(dir, 0, group);
    chmodSync(dir, 0o750);
    for (const k of ['client.key']) {
      chownSync(f(k), 0, group);
      chmodSync(f(k), 0o640);
    }
  }
  return { dir, caCert: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key'), otherCaCert: f('other-ca.crt'), serverName };
}

export interface TlsFront {
  address: string;
  /** Calls forwarded (with the right API key) and refused (without it). */
  stats: { forwarded: number; refused: number; handshakesRefused: number; methods: Set<string> };
  stop(): Promise<void>;
}

const hopHeaders = new Set([':scheme', ':authority', ':status', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'host', 'authorization']);
function forwardable(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (!hopHeaders.has(k) && v !== undefined) out[k] = v;
  return out;
}

/** Starts the front on 127.0.0.1 (a free port), forwarding to the plain-gRPC dev server at `upstream`. */
export async function startTlsFront(o: { upstream: string; pki: TestPki; apiKey: string }): Promise<TlsFront> {
  const stats: TlsFront['stats'] = { forwarded: 0, refused: 0, handshakesRefused: 0, methods: new Set() };
  let upstream: ClientHttp2Session | undefined;
  const session = () => {
    if (!upstream || upstream.closed || upstream.destroyed) {
      upstream = connect(`http://${o.upstream}`);
      upstream.on('error', () => {});
    }
    return upstream;
  };
  const server = createSecureServer({
    key: readFileSync(o.pki.serverKey),
    cert: readFileSync(o.pki.serverCert),
    ca: readFileSync(o.pki.caCert),
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2'],
  });
  server.on('tlsClientError', () => stats.handshakesRefused++);
  server.on('sessionError', () => {});
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => {});
    if (headers.authorization !== `Bearer ${o.apiKey}`) {
      stats.refused++;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'missing or wrong API key' }, { endStream: true });
      return;
    }
    stats.forwarded++;
    stats.methods.add(String(headers[':path']));
    const up = session().request(forwardable(headers));
    up.on('error', () => stream.close(constants.NGHTTP2_INTERNAL_ERROR));
    let trailers: OutgoingHttpHeaders = {};
    up.on('response', (h) => {
      // A trailers-only answer (a gRPC error without a body) carries grpc-status in its headers.
      if ('grpc-status' in h) stream.respond(forwardable(h), { endStream: true });
      else {
        stream.respond(forwardable(h), { waitForTrailers: true });
        up.pipe(stream);
      }
    });
    up.on('trailers', (t: IncomingHttpHeaders) => (trailers = forwardable(t)));
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    stream.pipe(up);
    stream.on('close', () => {
      if (!up.closed) up.close(constants.NGHTTP2_CANCEL);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const stop = registerCleanup('Temporal TLS front', async () => {
    upstream?.destroy();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Sessions of still-running clients (long polls) would hold close() open.
      setTimeout(resolve, 2000).unref();
    });
  });
  return { address: `127.0.0.1:${port}`, stats, stop };
}
