import { describe, expect, it } from 'vitest';
import type { FormProblem } from './form-problem.js';
import { emptyRestoreForm, restoreFieldset } from './restore-form.js';

const evil = '"><script>alert(1)</script>';

describe('the restore form', () => {
  it("preselects the archive's own client and leaves the target empty (the new-directory default)", async () => {
    const out = String(await restoreFieldset('a1', { clients: ['other', 'src'], values: emptyRestoreForm('src') }));
    expect(out).toContain('<option value="src" selected>src</option>');
    expect(out).not.toContain('— choose —');
    expect(out).toMatch(/name="target" id="restore-target" value=""/);
    expect(out).toContain('/var/tmp/borgcube-restore-&lt;job id&gt;');
    expect(out).not.toMatch(/id="restore-in-place"[^>]* checked/);
    expect(out).toContain('formaction="/archives/a1/restore"');
  });

  it('asks for a client when the archive has none left', async () => {
    const out = String(await restoreFieldset('a1', { clients: ['other'], values: emptyRestoreForm(null) }));
    expect(out).toContain('<option value="">— choose —</option>');
  });

  it('keeps what was typed, shows the refusal by its field, and escapes everything', async () => {
    const problem: FormProblem = { status: 400, message: `target: ${evil}`, byField: { target: [`target: ${evil}`] }, general: [] };
    const values = { client: evil, target: evil, inPlace: true, stripComponents: evil, picked: new Set<string>() };
    const out = String(await restoreFieldset('a1', { clients: [evil, 'src'], values, problem }));
    expect(out).not.toContain('<script>');
    expect(out).toContain('value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" selected');
    expect(out).toMatch(/id="restore-target" value="&quot;&gt;&lt;script&gt;/);
    expect(out).toMatch(/id="restore-in-place" checked/);
    expect(out).toContain('id="error-target"');
    expect(out).toMatch(/id="restore-target"[^>]*aria-invalid="true"/);
  });
});
