import { describe, expect, it } from 'vitest';
import type { Principal } from '../../services/auth.js';
import { hookSetFromForm } from '../routes/hooks.js';
import { hooksSection } from './hooks.js';

const admin = { user: { role: 'admin' }, via: 'session', session: { idHash: 'x', csrfToken: 'tok"en', expiresAt: new Date() } } as unknown as Principal;
const viewer = { user: { role: 'viewer' }, via: 'session' } as unknown as Principal;

describe('the hooks section', () => {
  const hooks = { before: [{ command: `echo "<script>alert('x')</script>" && rm -f '/tmp/a&b'`, timeoutSeconds: 60 }], after: [{ command: 'umount /mnt/snap' }] };

  it('shows commands as text, in the table and in the form, with the CSRF field', async () => {
    const page = String(await hooksSection(admin, hooks, { action: '/clients/web-1/hooks', owner: 'client' }));
    expect(page).not.toContain('<script>');
    expect(page).toContain('echo &quot;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot; &amp;&amp; rm -f &#39;/tmp/a&amp;b&#39;');
    expect(page).toContain('name="_csrf" value="tok&quot;en"');
    expect(page).toMatch(/<textarea name="before" rows="2">echo &quot;/);
    expect(page).toContain('value="60s"');
    expect(page).toContain('600 s');
  });

  it('gives viewers no form, and a multi-line command no textarea that would split it', async () => {
    expect(String(await hooksSection(viewer, hooks, { action: '/x', owner: 'client' }))).not.toContain('<form');
    const page = String(await hooksSection(admin, { after: [{ command: 'a\nb' }] }, { action: '/x', owner: 'policy' }));
    expect(page).not.toContain('<form');
    expect(page).toContain('borgcube policy hooks');
    // Nor a phase whose hooks have different timeouts: the form's one timeout would overwrite them.
    const mixed = String(await hooksSection(admin, { before: [{ command: 'a', timeoutSeconds: 60 }, { command: 'b', timeoutSeconds: 7200 }] }, { action: '/x', owner: 'client' }));
    expect(mixed).not.toContain('<form');
    expect(mixed).toContain('different timeouts');
  });

  it('reads the form back as the set it showed', () => {
    expect(hookSetFromForm({ before: 'one\r\ntwo', beforeTimeout: '60s', onFailure: '', onFailureTimeout: '', after: 'umount /mnt/snap', afterTimeout: '' })).toEqual({
      before: [{ command: 'one', timeoutSeconds: 60 }, { command: 'two', timeoutSeconds: 60 }],
      onFailure: [],
      after: [{ command: 'umount /mnt/snap' }],
    });
    expect(() => hookSetFromForm({ before: 'x', beforeTimeout: 'forever' })).toThrow(/not a timeout/);
  });
});
