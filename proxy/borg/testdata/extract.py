#!/usr/bin/python3
"""Fixture extractor for proxy/borg tests. Uses BORG'S OWN CODE (borg 1.2.4 modules) as the oracle, plus
the independent lab implementation verify.py (../shared/tools/borg) for TAM checks, so expectations never
come from the TypeScript under test.

  extract.py objects <repo> <mode> <toolsdir>   -> JSON on stdout (key fields, every object, archives)
  extract.py vectors <outdir> - <toolsdir>      -> msgpack vectors and borg-written hashindex files
  extract.py readindex <file> [compact]         -> JSON of a hashindex as borg reads it (used by a test)
  extract.py check < request.json               -> what borg's key classes say about objects/manifests/ids
"""
import sys, os, json, hashlib, struct


def hx(b):
    return b.hex() if isinstance(b, (bytes, bytearray)) else b


def objects(repo_path, mode, tools):
    sys.path.insert(0, tools)
    import verify  # independent implementation, for TAM
    from borg.repository import Repository
    from borg.helpers import Manifest, msgpack
    from borg.compress import Compressor
    from borg.crypto.key import PlaintextKey
    out = {'mode': mode}
    with Repository(repo_path, exclusive=False) as repo:
        manifest, key = Manifest.load(repo, Manifest.NO_OPERATION_CHECK)
        out['keyType'] = key.TYPE
        out['repositoryId'] = repo.id.hex()
        if not isinstance(key, PlaintextKey):
            out['key'] = {'id_key': hx(key.id_key), 'enc_key': hx(key.enc_key), 'enc_hmac_key': hx(key.enc_hmac_key),
                          'chunk_seed': key.chunk_seed, 'repository_id': hx(key.repository_id),
                          'tam_required': key.tam_required}
            kt = repo.load_key()
            out['loadKey'] = kt.decode() if kt else ''
        vk = verify.Key({k.encode(): bytes.fromhex(v) for k, v in out.get('key', {}).items()
                         if k in ('id_key', 'enc_key', 'enc_hmac_key')}, key.TYPE)
        archives = {}
        item_ids = set()
        for info in manifest.archives.list():
            cdata = repo.get(info.id)
            plain = key.decrypt(info.id, cdata)
            a = msgpack.unpackb(plain)
            refs = []
            u = msgpack.Unpacker(use_list=True)
            for iid in a[b'items']:
                item_ids.add(iid)
                u.feed(key.decrypt(iid, repo.get(iid)))
            nitems = 0
            for item in u:
                nitems += 1
                for c in item.get(b'chunks', []):
                    refs.append(c[0].hex())
                for c in item.get(b'chunks_healthy', []):
                    refs.append(c[0].hex())
            archives[info.name] = {'id': info.id.hex(), 'time': info.ts.isoformat(), 'items': [i.hex() for i in a[b'items']],
                                   'refs': refs, 'nitems': nitems, 'keys': sorted(k.decode() for k in a),
                                   'tam': verify.Key.tam_ok(vk, plain, b'archive'),
                                   'plainSha256': hashlib.sha256(plain).hexdigest()}
        out['archives'] = archives
        mdata = repo.get(Manifest.MANIFEST_ID)
        mplain = key.decrypt(None, mdata)
        out['manifest'] = {'id': manifest.id.hex(), 'timestamp': manifest.timestamp,
                           'plain': bytes(mplain).hex(), 'tam': verify.Key.tam_ok(vk, bytes(mplain), b'manifest'),
                           'tamVerifiedByBorg': manifest.tam_verified}
        archive_ids = {bytes.fromhex(a['id']) for a in archives.values()}
        objs = []
        for oid in repo.list(limit=100000):
            data = repo.get(oid)
            payload = bytes(key.decrypt(oid if oid != Manifest.MANIFEST_ID else None, data, decompress=False))
            comp = Compressor.detect(payload).name
            if comp == 'obfuscate':
                n = struct.unpack('>I', payload[2:6])[0]
                comp = 'obfuscate(%s)' % Compressor.detect(payload[6:6 + n]).name
            plain = key.decrypt(oid if oid != Manifest.MANIFEST_ID else None, data)
            kind = ('manifest' if oid == Manifest.MANIFEST_ID else 'archive' if oid in archive_ids
                    else 'items' if oid in item_ids else 'data')
            o = {'id': oid.hex(), 'kind': kind, 'type': data[0], 'size': len(data), 'compression': comp,
                 'payloadLen': len(payload), 'plainLen': len(plain), 'plainSha256': hashlib.sha256(plain).hexdigest()}
            if data[0] in (0, 1, 3, 4, 5):
                o['iv'] = int.from_bytes(data[33:41], 'big')
            objs.append(o)
        out['objects'] = objs
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


def vectors(outdir):
    from borg.helpers import msgpack
    from borg.helpers.datastruct import StableDict
    from borg.hashindex import ChunkIndex
    # msgpack: values described in a tiny JSON language the TS test can rebuild
    cases = [
        ('nil', None), ('false', False), ('true', True),
        *[('int %d' % v, v) for v in (0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1,
                                      -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63, 2**28 + 28)],
        ('float 0.1', 0.1), ('float -2.5', -2.5),
        *[('bytes %d' % n, b'\xab' * n) for n in (0, 1, 31, 32, 255, 256, 65535, 65536)],
        ('str unicode', 'héllo'),
        ('array 15', list(range(15))), ('array 16', list(range(16))), ('array 65536', [0] * 65536),
        ('map 15', StableDict({b'k%02d' % i: i for i in range(15)})), ('map 16', StableDict({b'k%02d' % i: i for i in range(16)})),
        ('nested', StableDict({b'a': [1, [2, {b'b': None}]], b'c': b'\x00' * 3})),
        ('negotiate request', [1, 1, b'negotiate', [{b'client_version': (1, 2, 4, -1)}]]),
        ('negotiate reply', (1, 1, None, {b'server_version': (1, 2, 4, -1)})),
        ('get manifest', {b'i': 3, b'm': b'get', b'a': {b'id': bytes(32)}}),
        ('load_key', {b'i': 4, b'm': b'load_key', b'a': {}}),
        ('nonce reply', {b'i': 6, b'r': 2**28 + 28}),
        ('nil reply', {b'i': 7, b'r': None}),
    ]

    def describe(v):
        if v is None or isinstance(v, bool):
            return {'t': 'lit', 'v': v}
        if isinstance(v, int):
            return {'t': 'int', 'v': str(v)}
        if isinstance(v, float):
            return {'t': 'float', 'v': v}
        if isinstance(v, bytes):
            if len(v) > 64 and len(set(v)) == 1:
                return {'t': 'fill', 'byte': v[0], 'n': len(v)}
            return {'t': 'bytes', 'hex': v.hex()}
        if isinstance(v, str):
            return {'t': 'str', 'v': v}
        if isinstance(v, (list, tuple)):
            if len(v) > 64 and len(set(v)) == 1:
                return {'t': 'arrayfill', 'item': describe(v[0]), 'n': len(v)}
            return {'t': 'array', 'v': [describe(x) for x in v]}
        if isinstance(v, dict):
            return {'t': 'map', 'v': [[describe(k), describe(x)] for k, x in v.items()]}
        raise TypeError(v)
    vec = []
    for name, v in cases:
        packed = msgpack.packb(v)
        assert msgpack.unpackb(packed) is not None or v is None
        vec.append({'name': name, 'value': describe(v), 'hex': packed.hex() if len(packed) <= 512 else None,
                    'len': len(packed), 'sha256': hashlib.sha256(packed).hexdigest(), 'head': packed[:8].hex()})
    with open(os.path.join(outdir, 'msgpack.json'), 'w') as f:
        json.dump(vec, f, indent=1)
    # hashindex: 1200 deterministic entries (forces a resize), 200 deleted -> tombstones in the file
    idx = ChunkIndex()
    entries = {}
    for i in range(1200):
        k = hashlib.sha256(b'key %d' % i).digest()
        v = (i % 7 + 1, 1000 + i, 500 + i)
        idx[k] = v
        entries[k] = v
    for i in range(0, 1200, 6):
        k = hashlib.sha256(b'key %d' % i).digest()
        del idx[k]
        del entries[k]
    # a sticky maximum refcount
    kmax = hashlib.sha256(b'max').digest()
    idx[kmax] = (0xfffffbff, 1, 2)
    entries[kmax] = (0xfffffbff, 1, 2)
    idx.write(os.path.join(outdir, 'chunks.idx'))
    with open(os.path.join(outdir, 'chunks.json'), 'w') as f:
        # the entries are re-derived by the test from this rule; only their digest is stored
        rule = 'sha256(b"key %d") -> (i % 7 + 1, 1000 + i, 500 + i) for i in range(1200) if i % 6; sha256(b"max") -> (0xfffffbff, 1, 2)'
        blob = b''.join(k + struct.pack('<III', *v) for k, v in sorted(entries.items()))
        json.dump({'rule': rule, 'count': len(entries), 'sortedEntriesSha256': hashlib.sha256(blob).hexdigest()}, f)
    idx.compact()
    idx.write(os.path.join(outdir, 'chunks-compact.idx'))
    ChunkIndex().write(os.path.join(outdir, 'empty.idx'))


def readindex(path, compact):
    from borg.hashindex import ChunkIndex
    with open(path, 'rb') as fd:
        idx = ChunkIndex.read(fd, permit_compact=compact)
    ents = sorted([k.hex(), *v] for k, v in idx.iteritems())
    s = idx.summarize()
    json.dump({'len': len(idx), 'entries': ents, 'summary': list(s)}, sys.stdout)


def check():
    """Reads {type, keyText, passphrase, objects:[{id,obj}], manifests:[hex], archives:[hex], idData:[hex]} on
    stdin and answers with what borg's own key classes say about them (used by tests when borg is installed)."""
    from borg.crypto import key as K
    from borg.crypto.key import Passphrase
    req = json.load(sys.stdin)
    cls = {0: K.KeyfileKey, 2: K.PlaintextKey, 3: K.RepoKey, 4: K.Blake2KeyfileKey, 5: K.Blake2RepoKey,
           6: K.Blake2AuthenticatedKey, 7: K.AuthenticatedKey}[req['type']]
    import tempfile, types
    os.environ['BORG_BASE_DIR'] = tempfile.mkdtemp()  # tam_required() peeks into the security dir
    key = cls(types.SimpleNamespace(id=bytes(32), id_str='00' * 32))
    if req['type'] != 2:
        text = req['keyText']
        if text.startswith('BORG_KEY '):
            text = ''.join(text.splitlines()[1:])
        assert key._load(text, Passphrase(req['passphrase'])), 'borg could not load the key'
        key.init_ciphers()
    res = {'objects': [], 'manifests': [], 'ids': [], 'chunkSeed': getattr(key, 'chunk_seed', None)}
    for o in req.get('objects', []):
        try:
            plain = key.decrypt(bytes.fromhex(o['id']) if o['id'] else None, bytes.fromhex(o['obj']))
            res['objects'].append({'ok': True, 'plainSha256': hashlib.sha256(plain).hexdigest()})
        except Exception as e:
            res['objects'].append({'ok': False, 'error': '%s: %s' % (type(e).__name__, e)})
    for m in req.get('manifests', []):
        try:
            _, verified = key.unpack_and_verify_manifest(bytes.fromhex(m))
            res['manifests'].append({'ok': True, 'verified': verified})
        except Exception as e:
            res['manifests'].append({'ok': False, 'error': type(e).__name__})
    from borg.compress import Compressor
    res['payloads'] = []
    for pl in req.get('payloads', []):
        try:
            res['payloads'].append({'ok': True, 'plainSha256': hashlib.sha256(Compressor('lz4').decompress(bytes.fromhex(pl))).hexdigest()})
        except Exception as e:
            res['payloads'].append({'ok': False, 'error': type(e).__name__})
    for d in req.get('idData', []):
        res['ids'].append(key.id_hash(bytes.fromhex(d)).hex())
    json.dump(res, sys.stdout)


if __name__ == '__main__':
    from borg.logger import setup_logging
    setup_logging(level='warning', is_serve=False)
    cmd = sys.argv[1]
    if cmd == 'objects':
        objects(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == 'vectors':
        vectors(sys.argv[2])
    elif cmd == 'check':
        check()
    elif cmd == 'readindex':
        readindex(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == 'compact')
    else:
        raise SystemExit(__doc__)
