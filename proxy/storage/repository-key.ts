// A repository's real key from its sealed key text and passphrase, by the encryption mode the
// database records (borg's key type bytes: BORG_PROTOCOL.md §3.1).
import { asKeyType, loadKey, type BorgKey } from '../borg/keys.js';

export type RepositoryEncryption = 'repokey' | 'repokey-blake2' | 'keyfile' | 'keyfile-blake2';

export function loadRepositoryKey(encryption: RepositoryEncryption, keyText: string, passphrase: string): BorgKey {
  const type = encryption === 'repokey' ? 0x03 : encryption === 'repokey-blake2' ? 0x05 : encryption === 'keyfile' ? 0x00 : 0x04;
  return loadKey(keyText, passphrase, asKeyType(type));
}
