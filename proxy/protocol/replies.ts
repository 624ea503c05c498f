// What the repository service sends to a proxy, and the proxy's check of it. Kept free of zod on
// purpose: the proxy is started by sshd for every client connection, and importing zod was 80 ms
// of its ~190 ms start-up (measured with node 20 here), paid by every backup. The shapes are
// small; the check is as strict as a schema: anything else breaks the session.

export interface AttachResult {
  /**
   * Key text answered to `load_key` (the job key, encrypted with the job passphrase, which only
   * the client has). The proxy holds no key material: the service checks and opens the objects.
   */
  keyText: string;
  /** Repository id the client is shown. */
  repoId: string;
}

export interface ReplyError {
  /** Python exception class name the client will see (BORG_PROTOCOL.md §1.3). */
  cls: string;
  message: string;
  /** The proxy hangs up after sending this error (violations, broken sessions). */
  fatal?: boolean;
}

/** Method result for the client: null, an int (decimal string, 64-bit), bytes in the payload, or the attach answer. */
export type ReplyResult = null | { int: string } | { bytes: true } | AttachResult;

export type ServiceMessage =
  | { t: 'reply'; rid: number; ok: true; result: ReplyResult }
  | { t: 'reply'; rid: number; ok: false; error: ReplyError }
  /** The service ends the session (job cancelled, violation elsewhere, service stopping). */
  | { t: 'abort'; reason: string };

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const hasOnly = (o: Obj, keys: readonly string[]) => Object.keys(o).every((k) => keys.includes(k));
const str = (v: unknown, max = Infinity): v is string => typeof v === 'string' && v.length <= max;
const isRid = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 2 ** 31;

function isResult(v: unknown): v is ReplyResult {
  if (v === null) return true;
  if (!isObj(v)) return false;
  if ('int' in v) return hasOnly(v, ['int']) && str(v.int) && /^\d{1,20}$/.test(v.int);
  if ('bytes' in v) return hasOnly(v, ['bytes']) && v.bytes === true;
  return hasOnly(v, ['keyText', 'repoId']) && str(v.keyText) && str(v.repoId) && /^[0-9a-f]{64}$/.test(v.repoId);
}

function isError(v: unknown): v is ReplyError {
  return isObj(v) && hasOnly(v, ['cls', 'message', 'fatal']) && str(v.cls, 128) && str(v.message, 4096) && (v.fatal === undefined || typeof v.fatal === 'boolean');
}

/** The message if it has one of the shapes above exactly, else undefined. */
export function parseServiceMessage(v: unknown): ServiceMessage | undefined {
  if (!isObj(v)) return undefined;
  if (v.t === 'abort') return hasOnly(v, ['t', 'reason']) && str(v.reason, 4096) ? { t: 'abort', reason: v.reason } : undefined;
  if (v.t !== 'reply' || !isRid(v.rid)) return undefined;
  if (v.ok === true) return hasOnly(v, ['t', 'rid', 'ok', 'result']) && isResult(v.result) ? { t: 'reply', rid: v.rid, ok: true, result: v.result } : undefined;
  if (v.ok === false) return hasOnly(v, ['t', 'rid', 'ok', 'error']) && isError(v.error) ? { t: 'reply', rid: v.rid, ok: false, error: v.error } : undefined;
  return undefined;
}
