// Messages between the per-connection proxy (unprivileged, parses the client's bytes, holds only
// the job key) and the repository service (holds the real key, writes the repository). The
// service validates every message again: a compromised proxy can do no more than its client could.
import { z } from 'zod';

const hex32 = z.string().regex(/^[0-9a-f]{64}$/);
const rid = z.number().int().nonnegative().max(2 ** 31);
/** A job-key AES-CTR counter value, as a decimal string (64-bit). */
const u64 = z.string().regex(/^\d{1,20}$/);

export const proxyRequest = z.discriminatedUnion('t', [
  z.object({
    t: z.literal('attach'),
    rid,
    jobId: z.string().uuid(),
    /** The path the client sent in `open` (should be "/<job id>"). */
    path: z.string().max(4096),
    /** Contents of sshd's $SSH_USER_AUTH (ExposeAuthInfo): the key that authenticated. */
    authInfo: z.string().max(16384),
    clientVersion: z.array(z.number().int()).max(5).optional(),
  }),
  z.object({ t: z.literal('getManifest'), rid }),
  /** Job-key counters: `get` (get_free_nonce) or `commit` (commit_nonce_reservation with next/start). */
  z.object({ t: z.literal('nonce'), rid, op: z.enum(['get', 'commit']), next: u64.optional(), start: u64.nullable().optional() }),
  /** payload = the object exactly as the client sent it (encrypted with the job key). */
  z.object({ t: z.literal('put'), rid, id: hex32 }),
  z.object({ t: z.literal('putManifest'), rid }),
  z.object({ t: z.literal('delete'), rid, id: hex32 }),
  z.object({ t: z.literal('get'), rid, id: hex32 }),
  z.object({ t: z.literal('commit'), rid }),
  z.object({ t: z.literal('rollback'), rid }),
  /**
   * Something the proxy refused on its own (forbidden method, bad MAC, malformed input). Before
   * `attach` succeeded it names the job of its credential and sshd's auth info, which the service
   * verifies like an attach before it records anything against that job.
   */
  z.object({
    t: z.literal('violation'),
    kind: z.string().max(64),
    detail: z.string().max(4096),
    jobId: z.string().uuid().optional(),
    authInfo: z.string().max(16384).optional(),
  }),
]);
export type ProxyRequest = z.infer<typeof proxyRequest>;

export interface ReplyError {
  /** Python exception class name the client will see (BORG_PROTOCOL.md §1.3). */
  cls: string;
  message: string;
  /** The proxy hangs up after sending this error (violations, broken sessions). */
  fatal?: boolean;
}

export const attachResult = z.object({
  /**
   * Key text answered to `load_key` (the job key, encrypted with the job passphrase, which only
   * the client has). The proxy holds no key material: the service checks and opens the objects.
   */
  keyText: z.string(),
  /** Repository id the client is shown. */
  repoId: hex32,
});
export type AttachResult = z.infer<typeof attachResult>;

// A plain union: two shapes share t='reply' (zod's discriminated unions need unique values).
export const serviceMessage = z.union([
  z.object({
    t: z.literal('reply'),
    rid,
    ok: z.literal(true),
    /** Method result for the client: null, an int (as decimal string for 64-bit), or bytes in the payload. */
    result: z.union([z.null(), z.object({ int: u64 }), z.object({ bytes: z.literal(true) }), attachResult]),
  }),
  z.object({
    t: z.literal('reply'),
    rid,
    ok: z.literal(false),
    error: z.object({ cls: z.string().max(128), message: z.string().max(4096), fatal: z.boolean().optional() }),
  }),
  /** The service ends the session (job cancelled, violation elsewhere, service stopping). */
  z.object({ t: z.literal('abort'), reason: z.string().max(4096) }),
]);
export type ServiceMessage = z.infer<typeof serviceMessage>;

/** What the AuthorizedKeysCommand asks on its own short connection. */
export const authorizedKeysRequest = z.object({
  t: z.literal('authorizedKeys'),
  user: z.string().max(64),
  keyType: z.string().max(64),
  key: z.string().max(16384),
});
