#!/usr/bin/env bash
# Regenerates the fixtures of proxy/borg/*.test.ts with REAL borg 1.2.4 (BORG_PROTOCOL.md "verified" facts
# are re-observed here, not copied). Needs: borg 1.2.4, /usr/bin/python3 with borg's modules, and the lab tools
# in ../shared/tools/borg (relay.py, verify.py). Output is committed so unit tests never need borg.
#
#   bash proxy/borg/testdata/generate.sh            (from the project root; takes ~1 minute)
#
# Layout written under proxy/borg/testdata/:
#   repos/<mode>/repo/          a whole borg repository (segments, index, config with the repokey)
#   repos/<mode>/keyfile        the key file (keyfile modes only)
#   repos/<mode>/expect.json    what borg itself says about every object (extract.py, borg's own code)
#   cache/repokey/              the client cache borg wrote after `create` (chunks, files, config)
#   cache/repokey-synced/       the cache borg wrote after a full sync (chunks, chunks.archive.d/*.compact)
#   relay/repokey-create.log    a relay.py capture of one `borg create` over the RPC (both directions)
#   vectors/*.json, *.idx       msgpack and hashindex vectors produced by borg's own packb / ChunkIndex
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="${BORG_TOOLS:-$(cd "$HERE/../../.." && pwd)/../shared/tools/borg}"
[ -f "$TOOLS/relay.py" ] || TOOLS=/work/shared/tools/borg
borg --version | grep -q '^borg 1\.2\.4$' || { echo "needs borg 1.2.4" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export BORG_BASE_DIR="$WORK/home" BORG_PASSPHRASE=test BORG_KEYS_DIR="$WORK/keys"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_DISPLAY_PASSPHRASE=no BORG_HOST_ID=fixture@1
mkdir -p "$BORG_BASE_DIR" "$BORG_KEYS_DIR"

rm -rf "$HERE/repos" "$HERE/cache" "$HERE/relay" "$HERE/vectors"
mkdir -p "$HERE/repos" "$HERE/cache" "$HERE/relay" "$HERE/vectors"

COMPRESSIONS=(none lz4 zstd zlib lzma auto,lzma obfuscate,3,zstd)
MODES=(repokey repokey-blake2 keyfile keyfile-blake2 authenticated authenticated-blake2 none)

# A tiny tree whose content is new for every archive, so every compression really stores chunks:
# a compressible text (lz4/zstd/lzma/zlib keep their own output), random bytes (they fall back to
# "none"; zlib does not), an empty file, a symlink and a directory.
make_tree() { # dir tag
  rm -rf "$1"; mkdir -p "$1/sub"
  python3 - "$1" "$2" <<'PY'
import os, sys
d, tag = sys.argv[1], sys.argv[2]
tok = os.urandom(8).hex()
with open(os.path.join(d, 'text.txt'), 'w') as f:
    for i in range(120):
        f.write(f'{tag} line {i} token {tok} the quick brown fox jumps over the lazy dog\n')
with open(os.path.join(d, 'rand.bin'), 'wb') as f:
    f.write(os.urandom(1500))
open(os.path.join(d, 'sub', 'empty'), 'w').close()
os.symlink('text.txt', os.path.join(d, 'link'))
PY
}

for mode in "${MODES[@]}"; do
  out="$HERE/repos/$mode"; mkdir -p "$out"
  repo="$WORK/$mode"
  borg init -e "$mode" "$repo" >/dev/null 2>&1
  for comp in "${COMPRESSIONS[@]}"; do
    name="a-${comp//,/-}"
    make_tree "$WORK/data" "$mode-$comp"
    (cd "$WORK" && borg create -C "$comp" "$repo::$name" data)
  done
  if [ "$mode" = repokey ]; then
    # Enough item metadata (> 512 KiB, the items chunker's maximum: buzhash 15,19,17) for several items chunks, so items span
    # chunk boundaries; every 10th file has unique content so items carry chunk references.
    rm -rf "$WORK/data"; mkdir -p "$WORK/data/many"
    python3 - "$WORK/data/many" <<'PY'
import os, sys
d = sys.argv[1]; tok = os.urandom(4).hex()
for i in range(4000):
    with open(os.path.join(d, 'file-%05d-%s' % (i, 'x' * 40)), 'w') as f:
        if i % 10 == 0:
            f.write(f'content of file {i} {tok}\n')
PY
    (cd "$WORK" && borg create -C lz4 "$repo::a-many" data)
    # The client cache as left by `borg create`, then as rebuilt by a full sync (chunks.archive.d).
    rid=$(python3 -c "import configparser,sys;c=configparser.ConfigParser();c.read(sys.argv[1]);print(c['repository']['id'])" "$repo/config")
    cdir="$BORG_BASE_DIR/.cache/borg/$rid"
    mkdir -p "$HERE/cache/repokey"
    cp "$cdir/config" "$cdir/chunks" "$cdir/files" "$HERE/cache/repokey/"
    rm -rf "$cdir"
    borg info "$repo" > "$HERE/cache/borg-info.txt"
    mkdir -p "$HERE/cache/repokey-synced/chunks.archive.d"
    cp "$cdir/config" "$cdir/chunks" "$HERE/cache/repokey-synced/"
    cp "$cdir"/chunks.archive.d/*.compact "$HERE/cache/repokey-synced/chunks.archive.d/"
    # One `borg create` over the RPC, recorded in both directions by relay.py.
    make_tree "$WORK/data" relay
    cp -r "$repo" "$WORK/relayrepo"
    (cd "$WORK" && RELAY_LOG="$HERE/relay/repokey-create.log" BORG_RSH="$TOOLS/relay.py" \
      borg create -C lz4 "ssh://fixture/$WORK/relayrepo::a-relay" data)
    rm -f "$HERE/relay/repokey-create.log.cmd"
  fi
  cp -r "$repo" "$out/repo"
  rm -rf "$out/repo/lock.exclusive" "$out/repo/lock.roster"
  if [[ "$mode" == keyfile* ]]; then
    cp "$(grep -l "$(python3 -c "import configparser,sys;c=configparser.ConfigParser();c.read(sys.argv[1]);print(c['repository']['id'])" "$repo/config")" "$BORG_KEYS_DIR"/*)" "$out/keyfile"
  fi
  keyfile_arg=""; [ -f "$out/keyfile" ] && keyfile_arg="$out/keyfile"
  env ${keyfile_arg:+BORG_KEY_FILE=$keyfile_arg} /usr/bin/python3 "$HERE/extract.py" objects "$out/repo" "$mode" "$TOOLS" > "$out/expect.json"
done

/usr/bin/python3 "$HERE/extract.py" vectors "$HERE/vectors" - "$TOOLS"
du -sh "$HERE"
