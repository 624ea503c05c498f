// RPC message shapes of `borg serve` (BORG_PROTOCOL.md §1.3-§1.6; borg/remote.py `RepositoryServer.serve`,
// `RemoteRepository.call_many`, constants MSGID=b'i', MSG=b'm', ARGS=b'a', RESULT=b'r').
//
// * legacy (1.0) array, used for the first message only: request [1, msgid, "negotiate", [client_data]],
//   reply [1, msgid, error_or_nil, result]
// * dict: request {i, m, a}, success {i, r}, error {i, exception_class, exception_args, exception_full,
//   exception_short, exception_trace, sysinfo}
//
// `borg serve` parses the envelope outside its error handler (a missing `a` or `m` kills it, §1.3); here every
// envelope problem is a typed BorgFormatError so the proxy can answer or drop the connection deliberately.
import { BorgFormatError } from './errors.js';
import { asArray, asInt, asMap, asText, packb, strHeader, type Packable, type Value, type ValueMap } from './msgpack.js';

export const RPC_PROTOCOL_VERSION = 2;
/** Most requests a borg client keeps in flight (`get_many`). */
export const MAX_INFLIGHT = 100;
/** What a 1.2.4 client reports, and what a proxy should answer (§1.4). */
export const BORG_VERSION: readonly number[] = [1, 2, 4, -1];

/** RepositoryServer.rpc_methods of 1.2.4; `borg serve` answers InvalidRPCMethod for anything else. */
export const SERVE_METHODS: readonly string[] = [
  '__len__', 'check', 'commit', 'delete', 'destroy', 'get', 'list', 'scan', 'negotiate', 'open', 'put', 'rollback',
  'save_key', 'load_key', 'break_lock', 'get_free_nonce', 'commit_nonce_reservation', 'inject_exception',
];

export type RpcRequest =
  | { readonly format: 'legacy'; readonly msgid: number; readonly method: string; readonly args: readonly Value[] }
  | { readonly format: 'dict'; readonly msgid: number; readonly method: string; readonly args: ValueMap };

export interface ParseRequestOptions {
  /** Methods accepted in the legacy array form (default: only `negotiate`, as every 1.2 client sends). */
  readonly legacyMethods?: readonly string[];
}

const METHOD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const ARG = /^[a-z_][a-z0-9_]{0,63}$/;

function msgidOf(v: Value | undefined): number {
  return asInt(v, 'msgid', { min: 1, max: Number.MAX_SAFE_INTEGER });
}

function methodOf(v: Value | undefined): string {
  const m = asText(v, 'method', 64);
  if (!METHOD.test(m)) throw new BorgFormatError(`invalid RPC method name ${JSON.stringify(m)}`, 'rpc-method');
  return m;
}

/** Validates one decoded client request (§1.3). */
export function parseRequest(v: Value, opts: ParseRequestOptions = {}): RpcRequest {
  if (v instanceof Map) {
    for (const k of v.keys()) if (k !== 'i' && k !== 'm' && k !== 'a') throw new BorgFormatError(`unexpected request key ${JSON.stringify(k)}`, 'rpc-shape');
    if (!v.has('i') || !v.has('m') || !v.has('a')) throw new BorgFormatError('request lacks one of i, m, a', 'rpc-shape');
    const args = asMap(v.get('a'), 'args');
    for (const k of args.keys()) if (!ARG.test(k)) throw new BorgFormatError(`invalid argument name ${JSON.stringify(k)}`, 'rpc-args');
    return { format: 'dict', msgid: msgidOf(v.get('i')), method: methodOf(v.get('m')), args };
  }
  if (Array.isArray(v) && v.length === 4) {
    // [type, msgid, method, args]; borg ignores `type`, which was always 1.
    if (v[0] !== 1) throw new BorgFormatError('legacy request type is not 1', 'rpc-shape');
    const method = methodOf(v[2]);
    if (!(opts.legacyMethods ?? ['negotiate']).includes(method)) {
      throw new BorgFormatError(`legacy array format is not accepted for ${method}`, 'rpc-legacy');
    }
    return { format: 'legacy', msgid: msgidOf(v[1]), method, args: asArray(v[3], 'legacy args') };
  }
  throw new BorgFormatError('request is neither a map nor a 4-element array', 'rpc-shape');
}

/** The value of a named argument, or undefined (RepositoryServer.filter_args drops unknown names). */
export function arg(req: RpcRequest, name: string): Value | undefined {
  return req.format === 'dict' ? req.args.get(name) : undefined;
}

// ------------------------------------------------------------------------------------------------
// Replies (server side)

/** `{i, r}` */
export function encodeReply(msgid: number, result: Packable): Buffer {
  return packb(new Map<string, Packable>([['i', msgid], ['r', result]]));
}

const EMPTY = Buffer.alloc(0);

/**
 * encodeReply(msgid, bytes) up to the bytes themselves, for a reply whose `length` bytes are
 * written after it as they are (the proxy relays objects without copying them).
 */
export function replyBytesHead(msgid: number, length: number): Buffer {
  const head = encodeReply(msgid, EMPTY);
  // The empty byte string packs as its header alone, one byte, last: the real one takes its place.
  return Buffer.concat([head.subarray(0, head.length - 1), strHeader(length)]);
}

/** `[1, msgid, nil, result]`, the reply to a legacy request (what borg serve sends for negotiate). */
export function encodeLegacyReply(msgid: number, result: Packable): Buffer {
  return packb([1, msgid, null, result]);
}

/** `[1, msgid, class, text]`: a legacy-format error (borg serve's fixed text). */
export function encodeLegacyError(msgid: number, exceptionClass: string): Buffer {
  return packb([1, msgid, exceptionClass, 'Remote Exception (see remote log for the traceback)']);
}

/** The negotiate result: `{server_version: [...]}` (RepositoryServer.negotiate). */
export function negotiateResult(version: readonly number[] = BORG_VERSION): Map<string, Packable> {
  return new Map<string, Packable>([['server_version', [...version]]]);
}

export interface RpcErrorInfo {
  /** Python class name, e.g. `ObjectNotFound` or `ProxyPolicyError`. */
  readonly exceptionClass: string;
  /**
   * exception_args; for IntegrityError, AtticRepository, PathNotAllowed, ParentPathDoesNotExist, ObjectNotFound
   * and InvalidRPCMethod the client uses args[0] as the message and calls .decode() on it, so pass a string.
   */
  readonly args: readonly Packable[];
  /** exception_short lines: what the client prints when exception_trace is false. */
  readonly short: readonly string[];
  /** exception_full lines (default: `short`). */
  readonly full?: readonly string[];
  /** exception_trace (default false: print `short` only). */
  readonly trace?: boolean;
  /** sysinfo text (default ''). */
  readonly sysinfo?: string;
}

/** A Borg-shaped error reply, keys in the order borg serve packs them. */
export function encodeError(msgid: number, e: RpcErrorInfo): Buffer {
  return packb(
    new Map<string, Packable>([
      ['i', msgid],
      ['exception_class', e.exceptionClass],
      ['exception_args', [...e.args]],
      ['exception_full', [...(e.full ?? e.short)]],
      ['exception_short', [...e.short]],
      ['exception_trace', e.trace ?? false],
      ['sysinfo', e.sysinfo ?? ''],
    ]),
  );
}

// ------------------------------------------------------------------------------------------------
// Requests and replies (client side, talking to an upstream `borg serve`)

/** `{i, m, a}` with keys in that order; `a` is always present (an empty map for no-arg methods, §1.3). */
export function encodeRequest(msgid: number, method: string, args: ReadonlyMap<string, Packable> | Readonly<Record<string, Packable>> = {}): Buffer {
  if (!METHOD.test(method)) throw new RangeError(`invalid method name ${method}`);
  const a = args instanceof Map ? args : new Map(Object.entries(args));
  return packb(new Map<string, Packable>([['i', msgid], ['m', method], ['a', a]]));
}

/** The legacy negotiate request `[1, msgid, "negotiate", [{client_version: [...]}]]`. */
export function encodeNegotiate(msgid: number, clientVersion: readonly number[] = BORG_VERSION): Buffer {
  return packb([1, msgid, 'negotiate', [new Map<string, Packable>([['client_version', [...clientVersion]]])]]);
}

export interface RpcRemoteError {
  readonly exceptionClass: string;
  readonly args: readonly Value[];
  readonly short: readonly Value[];
  readonly full: readonly Value[];
  readonly trace: boolean;
  readonly sysinfo: Value | undefined;
}

export type RpcReply =
  | { readonly msgid: number; readonly ok: true; readonly result: Value }
  | { readonly msgid: number; readonly ok: false; readonly error: RpcRemoteError };

/** Parses a reply from `borg serve` (either format), like RemoteRepository.call_many. */
export function parseReply(v: Value): RpcReply {
  if (Array.isArray(v) && v.length === 4) {
    const msgid = msgidOf(v[1]);
    if (v[2] === null) return { msgid, ok: true, result: v[3] ?? null };
    return { msgid, ok: false, error: { exceptionClass: asText(v[2], 'exception_class', 256), args: [], short: [], full: [], trace: false, sysinfo: v[3] } };
  }
  const m = asMap(v, 'reply');
  const msgid = msgidOf(m.get('i'));
  if (m.has('exception_class')) {
    const list = (k: string): Value[] => (m.has(k) ? asArray(m.get(k), k) : []);
    return {
      msgid,
      ok: false,
      error: {
        exceptionClass: asText(m.get('exception_class'), 'exception_class', 256),
        args: list('exception_args'),
        short: list('exception_short'),
        full: list('exception_full'),
        trace: m.get('exception_trace') === true,
        sysinfo: m.get('sysinfo'),
      },
    };
  }
  if (!m.has('r')) throw new BorgFormatError('reply has neither r nor exception_class', 'rpc-shape');
  return { msgid, ok: true, result: m.get('r') ?? null };
}
