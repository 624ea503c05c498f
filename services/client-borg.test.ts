import { describe, expect, it } from 'vitest';
import { decideClientBorg, supportedClientBorg } from './client-borg.js';

describe('which borg a job runs', () => {
  it('supports the 1.2 and 1.4 releases only', () => {
    for (const v of ['1.2.0', '1.2.4', '1.2.8', '1.4.0', '1.4.1']) expect(supportedClientBorg(v), v).toBe(true);
    for (const v of ['1.1.18', '1.3.0', '2.0.0b14', '1.4.0rc1', '1.0.13', '12.4.0']) expect(supportedClientBorg(v), v).toBe(false);
  });

  it('applies each deploy mode to a missing, a supported and an unsupported borg', () => {
    const d = (mode: Parameters<typeof decideClientBorg>[0], v: string | null) => decideClientBorg(mode, '/usr/bin/borg', v);
    expect(d('if-missing', '1.4.0')).toEqual({ use: 'client', version: '1.4.0' });
    expect(d('if-missing', null)).toMatchObject({ use: 'deploy', why: 'no borg at /usr/bin/borg on the client' });
    expect(d('if-missing', '1.1.18')).toEqual({ fail: expect.stringMatching(/^borg 1\.1\.18 at \/usr\/bin\/borg on the client is not supported .*--borg-deploy if-unsupported/) as string });
    expect(d('if-unsupported', '2.0.0b14')).toMatchObject({ use: 'deploy', why: expect.stringContaining('borg 2.0.0b14') as string });
    expect(d('if-unsupported', null)).toMatchObject({ use: 'deploy' });
    expect(d('if-unsupported', '1.2.4')).toEqual({ use: 'client', version: '1.2.4' });
    expect(d('always', '1.2.4')).toMatchObject({ use: 'deploy', why: 'borg deploy mode is always (the client has borg 1.2.4)' });
    expect(d('never', '1.2.4')).toEqual({ use: 'client', version: '1.2.4' });
    expect(d('never', null)).toEqual({ fail: expect.stringMatching(/^no borg at \/usr\/bin\/borg on the client, and its borg deploy mode is never/) as string });
    expect(d('never', '1.1.18')).toHaveProperty('fail');
    for (const r of [d('never', null), d('if-missing', '2.0.0b14')]) expect('fail' in r && r.fail.includes('\n')).toBe(false);
  });
});
