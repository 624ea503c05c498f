// Typed errors for Borg's formats. Every parser in proxy/borg throws one of these for bad input, so callers
// can turn "the peer sent garbage" into a clean RPC error reply without catching programming errors too.

/** Input does not follow Borg's format (msgpack shape, field types, sizes, headers). */
export class BorgFormatError extends Error {
  override readonly name: string = 'BorgFormatError';
  constructor(
    message: string,
    /** Short machine-readable reason, e.g. `bin-type`, `limit-str`, `missing-key`. */
    readonly code: string,
  ) {
    super(message);
  }
}

/** A msgpack-level violation (§1.2): forbidden type, limit exceeded, too deep, trailing bytes. */
export class MsgpackError extends BorgFormatError {
  override readonly name = 'MsgpackError';
}

/** Authentication failed: MAC, chunk id, TAM or key-envelope hash mismatch (borg: IntegrityError). */
export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
  constructor(
    message: string,
    readonly code: 'type-byte' | 'mac' | 'id' | 'tam' | 'tam-missing' | 'tam-suite' | 'crc' | 'length',
  ) {
    super(message);
  }
}

/** Decompression refused or failed (§4): unknown header, bound exceeded, corrupt stream. */
export class DecompressionError extends BorgFormatError {
  override readonly name = 'DecompressionError';
}

/** The passphrase does not open the key envelope (borg: PassphraseWrong). */
export class PassphraseWrongError extends Error {
  override readonly name = 'PassphraseWrongError';
  constructor() {
    super('passphrase does not decrypt the key (envelope hash mismatch)');
  }
}
