// AES-CTR counters for the REAL key (BORG_PROTOCOL.md §3.2, §9.3; borg/crypto/nonces.py
// NonceManager). The repository service is the only user of the real key, so it runs borg's
// reservation algorithm against the real repository: start = max(repository's free nonce, our
// own persistent local value, the manifest's bound, the end of the previous reservation), reserve
// 2^28 blocks ahead, commit the reservation upstream, remember it locally. Within a reservation,
// counters are handed out synchronously, so no two objects ever share one.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export const NONCE_SPACE_RESERVATION = 2n ** 28n;

/** Counter blocks an AES-CTR payload of `len` bytes uses. */
export const blocksFor = (len: number): bigint => BigInt(Math.ceil(len / 16));

export interface NonceUpstream {
  getFreeNonce(): Promise<bigint | null>;
  commitNonceReservation(nextUnreserved: bigint, startNonce: bigint | null): Promise<void>;
}

export class RealNonces {
  private next = 0n;
  private end = 0n;
  /** Lower bound from the manifest: IV(manifest) + ceil(len(manifest object)/16). */
  private manifestBound = 0n;
  private reserving: Promise<void> | undefined;

  constructor(
    /** `<repo state>/nonce`, like borg's security-dir file: 16 hex digits, no newline. */
    private readonly localFile: string,
    private upstream: NonceUpstream | undefined,
  ) {}

  /** A new upstream session: its reservation must be made again (borg does so per session). */
  attach(upstream: NonceUpstream, manifestBound: bigint) {
    this.upstream = upstream;
    this.next = 0n;
    this.end = 0n;
    this.manifestBound = manifestBound;
  }

  detach() {
    this.upstream = undefined;
    this.next = 0n;
    this.end = 0n;
  }

  /** Returns the IV for `len` bytes of payload, reserving a new range when needed. */
  async allocate(len: number): Promise<bigint> {
    const blocks = blocksFor(len);
    for (;;) {
      if (this.end > 0n && this.next + blocks <= this.end) {
        const iv = this.next;
        this.next += blocks;
        return iv;
      }
      if (this.reserving) await this.reserving;
      else {
        this.reserving = this.reserve(blocks).finally(() => {
          this.reserving = undefined;
        });
        await this.reserving;
      }
    }
  }

  private async reserve(blocks: bigint): Promise<void> {
    const up = this.upstream;
    if (!up) throw new Error('no upstream session for a nonce reservation');
    const repoFree = await up.getFreeNonce();
    const local = readNonceFile(this.localFile);
    let start = this.end;
    for (const v of [repoFree ?? 0n, local ?? 0n, this.manifestBound]) if (v > start) start = v;
    const newEnd = start + blocks + NONCE_SPACE_RESERVATION;
    await up.commitNonceReservation(newEnd, repoFree);
    writeNonceFile(this.localFile, newEnd);
    this.next = start;
    this.end = newEnd;
  }
}

export function readNonceFile(path: string): bigint | undefined {
  if (!existsSync(path)) return undefined;
  const t = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{16}$/.test(t)) throw new Error(`${path}: not a nonce file`);
  return BigInt(`0x${t}`);
}

export function writeNonceFile(path: string, v: bigint) {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, v.toString(16).padStart(16, '0'), { mode: 0o600 });
  renameSync(tmp, path);
}
