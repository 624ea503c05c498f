// The arguments of every call the proxy accepts, checked against what stock `borg create` and
// `borg extract` (1.2.x, and 1.4.x, whose calls and arguments are the same: relay captures, borg
// 1.4.0 remote.py:944-1016) send: borg/remote.py's `@api` stubs send every parameter of the stub
// (defaults included, `wait` excluded), and borg's archiver fixes their values — `open` from
// with_repository(exclusive=…) with the default --lock-wait 1, `commit` always with
// compact=False (archive.py Archive.save, checkpoints). Anything else — an unknown or missing
// argument, another type, a lock or append-only flag, create or make_parent_dirs — is not
// something a stock client does, and is refused as a violation. Hand-written rather than zod:
// this runs in the per-connection proxy, whose start-up zod would slow (see ../protocol/replies.ts).
import { MsgFloat, type Value, type ValueMap } from '../borg/msgpack.js';

/** Why a call's arguments were refused (the proxy turns it into a `bad-arguments` violation). */
export class BadArguments extends Error {
  override name = 'BadArguments';
}

type Check = ((v: Value | undefined) => string | undefined) & { optional?: true };

const UINT64_MAX = 2n ** 64n - 1n;

const bytes =
  (o: { len?: number; maxLen?: number }): Check =>
  (v) => {
    if (!Buffer.isBuffer(v)) return 'not bytes';
    if (o.len !== undefined && v.length !== o.len) return `${v.length} bytes, not ${o.len}`;
    if (o.maxLen !== undefined && v.length > o.maxLen) return `longer than ${o.maxLen} bytes`;
    return undefined;
  };

/** Exactly this boolean: stock borg never sends the other value. */
const is =
  (want: boolean): Check =>
  (v) =>
    v === want ? undefined : `must be ${want}`;

const bool: Check = (v) => (typeof v === 'boolean' ? undefined : 'not a boolean');

const intIn =
  (min: number, max: number): Check =>
  (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? undefined : `not an integer in [${min}, ${max}]`;

const uint64: Check = (v) => {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? undefined : 'not an unsigned 64-bit integer';
  if (typeof v === 'bigint') return v >= 0n && v <= UINT64_MAX ? undefined : 'not an unsigned 64-bit integer';
  return 'not an unsigned 64-bit integer';
};

const nullable =
  (c: Check): Check =>
  (v) =>
    v === null ? undefined : c(v);

/** borg sends Python floats as float64 (MsgFloat here); an int would be another client. */
const floatIn =
  (min: number, max: number): Check =>
  (v) =>
    v instanceof MsgFloat && v.value >= min && v.value <= max ? undefined : `not a float in [${min}, ${max}]`;

const id32 = bytes({ len: 32 });

/**
 * `wait`: the decorator keeps it local when the caller passes it, and sends its default (True)
 * when the caller does not — so it is there or not, but never False (remote.py `api`).
 */
const wait: Check = Object.assign((v: Value | undefined) => (v === true ? undefined : 'must be true'), { optional: true as const });

/**
 * Per method, every argument stock borg sends and what it may be. All of them must be present
 * (the `@api` decorator fills in defaults, so a stock client never leaves one out), but `wait`.
 */
const SIGNATURES: Readonly<Record<string, Readonly<Record<string, Check>>>> = {
  // RemoteRepository.open(path, create=False, lock_wait=None, lock=True, exclusive=False,
  // append_only=False, make_parent_dirs=False). `borg create` opens exclusively, `borg extract`
  // not, so both values of `exclusive` are stock. lock_wait is --lock-wait (default 1, an int),
  // which BorgCube's command lines never set; the bound leaves room for a deliberate setting and
  // refuses negative, float, huge and null values (the proxy waits on its own terms anyway).
  open: {
    path: bytes({ maxLen: 4096 }),
    create: is(false),
    lock_wait: intIn(0, 600),
    lock: is(true),
    exclusive: bool,
    append_only: is(false),
    make_parent_dirs: is(false),
  },
  load_key: {},
  __len__: {},
  get_free_nonce: {},
  // crypto/nonces.py NonceManager: start_nonce is None only on the very first reservation.
  commit_nonce_reservation: { next_unreserved: uint64, start_nonce: nullable(uint64) },
  get: { id: id32 },
  put: { id: id32, data: bytes({}), wait },
  delete: { id: id32, wait },
  // commit(save_space=False, compact=True, threshold=0.1, cleanup_commits=False): create and
  // its checkpoints always pass compact=False; compaction is the server's business (prune).
  commit: { save_space: is(false), compact: is(false), threshold: floatIn(0, 1), cleanup_commits: is(false) },
  rollback: {},
};

/** True for the methods a stock client calls through BorgCube (the others are refused as such). */
export function hasSignature(method: string): boolean {
  return Object.hasOwn(SIGNATURES, method);
}

/** Throws BadArguments unless `args` is exactly what a stock client sends for `method`. */
export function checkCallArgs(method: string, args: ValueMap): void {
  const sig = SIGNATURES[method];
  if (!sig) throw new BadArguments(`method ${JSON.stringify(method.slice(0, 64))} has no known signature`);
  for (const k of args.keys()) {
    if (!Object.hasOwn(sig, k)) throw new BadArguments(`${method}: unexpected argument ${JSON.stringify(k.slice(0, 64))}`);
  }
  for (const [k, check] of Object.entries(sig)) {
    if (!args.has(k)) {
      if (check.optional) continue;
      throw new BadArguments(`${method}: argument ${k} is missing`);
    }
    const why = check(args.get(k));
    if (why) throw new BadArguments(`${method}: ${k} ${why} (${describe(args.get(k))})`);
  }
}

/**
 * negotiate's one argument, positional (legacy `[client_data]`) or named (`{client_data}`): borg
 * ≥ 1.1 sends `{client_version: (major, minor, patch, …)}` (RemoteRepository.__init__). The
 * version is not checked: 1.2.x and 1.4.x clients (1.4.0 sends [1, 4, 0, -1], borg 1.4.0
 * remote.py:590-592) make the same calls with the same arguments, and every call they make needs
 * a server ≥ 1.2.0a8 at most (1.4.0 remote.py:944-1016), so the 1.2.4 answer suits both
 * (proxy/borg/README.md "Borg versions"). Which borg runs is decided by the worker before the job.
 */
export function checkNegotiateArgs(args: readonly Value[] | ValueMap): void {
  let data: Value | undefined;
  if (!(args instanceof Map)) {
    if (args.length !== 1) throw new BadArguments(`negotiate: ${args.length} arguments, not 1`);
    data = args[0];
  } else {
    for (const k of args.keys()) if (k !== 'client_data') throw new BadArguments(`negotiate: unexpected argument ${JSON.stringify(k.slice(0, 64))}`);
    data = args.get('client_data');
  }
  if (!(data instanceof Map)) throw new BadArguments(`negotiate: client_data is not a map (${describe(data)})`);
  for (const k of data.keys()) if (k !== 'client_version') throw new BadArguments(`negotiate: unexpected key ${JSON.stringify(k.slice(0, 64))}`);
  const v = data.get('client_version');
  if (!Array.isArray(v) || v.length < 3 || v.length > 6 || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && Math.abs(x) < 1_000_000)) {
    throw new BadArguments(`negotiate: client_version is not a version tuple (${describe(v)})`);
  }
}

/** A short, printable description of a refused value (for the violation record). */
function describe(v: Value | undefined): string {
  if (v === undefined) return 'absent';
  if (v === null) return 'null';
  if (Buffer.isBuffer(v)) return `${v.length} bytes`;
  if (v instanceof MsgFloat) return `float ${v.value}`;
  if (Array.isArray(v)) return `array of ${v.length}`;
  if (v instanceof Map) return `map of ${v.size}`;
  return `${typeof v} ${String(v).slice(0, 40)}`;
}
