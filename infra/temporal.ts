// Connection to Temporal, shared by every composition root that starts or signals workflows, and
// the connection options every Connection and NativeConnection of BorgCube is made with: address,
// TLS (client certificate, CA, server name) and API key from the configuration (README: Running
// on a Temporal cluster or Temporal Cloud).
import { readFileSync, statSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { Config } from './config.js';

export interface TemporalHandle {
  connection: Connection;
  client: Client;
  close(): Promise<void>;
}

/** What Connection.connect and NativeConnection.connect both take (their TLS types are the same). */
export interface TemporalConnectionOptions {
  address: string;
  tls?: {
    serverNameOverride?: string;
    serverRootCACertificate?: Buffer;
    clientCertPair?: { crt: Buffer; key: Buffer };
  };
  apiKey?: string;
}

export class TemporalConfigError extends Error {
  override name = 'TemporalConfigError';
}

/** Reads one configured file; the error names the variable, the path and what to do, never the content. */
function readConfigured(variable: string, path: string, what: 'certificate' | 'key' | 'api key'): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const account = process.getuid?.() === 0 ? '' : ` as uid ${process.getuid?.()}`;
    const hint = code === 'EACCES' ? ' (the worker, the web console, the CLI and the repository service all read it: make it readable by root and the storage account, e.g. chgrp borgcube-storage and chmod 640)' : '';
    throw new TemporalConfigError(`${variable}=${path}: cannot read it${account}: ${code}${hint}`);
  }
  if (what !== 'certificate') {
    // Secrets: refuse a file every account on the machine can read, like ssh refuses such keys.
    const mode = statSync(path).mode;
    if (mode & 0o004) throw new TemporalConfigError(`${variable}=${path}: readable by every account (mode ${(mode & 0o777).toString(8)}); chmod o-r ${path}`);
  }
  if (what === 'api key') {
    const key = data.toString('utf8').trim();
    if (!/^[\x21-\x7e]{1,8192}$/.test(key)) throw new TemporalConfigError(`${variable}=${path}: must hold one API key (printable characters, no spaces)`);
    return Buffer.from(key);
  }
  const text = data.toString('latin1');
  const label = what === 'key' ? /-----BEGIN [A-Z ]*PRIVATE KEY-----/ : /-----BEGIN CERTIFICATE-----/;
  if (!label.test(text)) throw new TemporalConfigError(`${variable}=${path}: not a PEM ${what === 'key' ? 'private key' : 'certificate'} (expected a "-----BEGIN ${what === 'key' ? '… PRIVATE KEY' : 'CERTIFICATE'}-----" block)`);
  return data;
}

/** The options of every Temporal connection BorgCube makes; reads the TLS files and the API key file now. */
export function temporalConnectionOptions(cfg: Pick<Config, 'temporal'>): TemporalConnectionOptions {
  const t = cfg.temporal;
  const out: TemporalConnectionOptions = { address: t.address };
  if (t.tls) {
    out.tls = {};
    if (t.tls.serverName) out.tls.serverNameOverride = t.tls.serverName;
    if (t.tls.caPath) out.tls.serverRootCACertificate = readConfigured('TEMPORAL_TLS_CA', t.tls.caPath, 'certificate');
    if (t.tls.certPath && t.tls.keyPath) {
      out.tls.clientCertPair = { crt: readConfigured('TEMPORAL_TLS_CERT', t.tls.certPath, 'certificate'), key: readConfigured('TEMPORAL_TLS_KEY', t.tls.keyPath, 'key') };
    }
  }
  if (t.apiKey) out.apiKey = 'value' in t.apiKey ? t.apiKey.value : readConfigured('TEMPORAL_API_KEY_FILE', t.apiKey.file, 'api key').toString('utf8');
  return out;
}

/** The Temporal target for log lines and error messages: where, and how it is secured — never a secret. */
export function describeTemporal(cfg: Pick<Config, 'temporal'>): string {
  const t = cfg.temporal;
  const tls = t.tls
    ? `TLS${t.tls.certPath ? ' with a client certificate' : ''}${t.tls.caPath ? `, CA ${t.tls.caPath}` : ''}${t.tls.serverName ? `, server name ${t.tls.serverName}` : ''}`
    : 'no TLS';
  return `${t.address} (namespace ${t.namespace}, ${tls}${t.apiKey ? ', API key' : ''})`;
}

/**
 * A connection failure with what was tried: the SDK's own message for a TLS handshake that fails
 * is often only a deadline ("Failed to connect before the deadline").
 */
export function temporalConnectError(cfg: Pick<Config, 'temporal'>, err: unknown): Error {
  if (err instanceof TemporalConfigError) return err;
  // The SDK wraps the gRPC error ("Failed to connect to Temporal server", cause: the status).
  const chain: string[] = [];
  let code: number | undefined;
  for (let e: unknown = err; e instanceof Error && chain.length < 4; e = e.cause) {
    if (!chain.some((m) => m.includes(e.message))) chain.push(e.message);
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'number') code ??= c;
  }
  const msg = chain.join(': ') || String(err);
  // gRPC UNAUTHENTICATED (16) and PERMISSION_DENIED (7): the handshake worked, the credentials did not.
  const hint =
    code === 16 || code === 7
      ? ' (the server refused the credentials: check TEMPORAL_API_KEY / TEMPORAL_API_KEY_FILE, or the client certificate, and the namespace)'
      : cfg.temporal.tls
        ? " (with TLS: check that the server speaks TLS there, that its certificate chains to TEMPORAL_TLS_CA or a system CA and names TEMPORAL_TLS_SERVER_NAME or the address's host, and that it accepts the client certificate)"
        : '';
  return new Error(`cannot connect to Temporal at ${describeTemporal(cfg)}: ${msg}${hint}`, { cause: err });
}

export async function connectTemporal(cfg: Pick<Config, 'temporal'>): Promise<TemporalHandle> {
  const options = temporalConnectionOptions(cfg);
  const connection = await Connection.connect({ ...options, connectTimeout: '10s' }).catch((err: unknown) => {
    throw temporalConnectError(cfg, err);
  });
  const client = new Client({ connection, namespace: cfg.temporal.namespace });
  return { connection, client, close: () => connection.close() };
}

/** Link to a workflow in the Temporal Web UI. */
export function temporalWorkflowUrl(cfg: Pick<Config, 'temporal'>, workflowId: string): string {
  return `${cfg.temporal.uiUrl}/namespaces/${encodeURIComponent(cfg.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
