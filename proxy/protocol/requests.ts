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
    /** `open`'s exclusive flag: each job kind's stock borg sends one value (checked by the session policy). */
    exclusive: z.boolean(),
    clientVersion: z.array(z.number().int()).max(5).optional(),
  }),
  /**
   * The forced command's first frame, sent when it starts: which job its credential is for, with
   * sshd's auth info as the proof. It lets the service count a job's connections before any
   * `open` arrives (a client that opens many and never sends open is bounded too).
   */
  z.object({ t: z.literal('hello'), jobId: z.string().uuid(), authInfo: z.string().max(16384) }),
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

// The other direction (service → proxy) is in replies.ts, without zod: see there why.
export type { AttachResult, ReplyError, ServiceMessage } from './replies.js';

/** What the AuthorizedKeysCommand asks on its own short connection. */
export const authorizedKeysRequest = z.object({
  t: z.literal('authorizedKeys'),
  user: z.string().max(64),
  /** sshd's %f ("SHA256:…"): the key itself never goes on a command line, where `ps` shows it. */
  fingerprint: z.string().max(128),
});
