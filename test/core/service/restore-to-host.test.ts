/**
 * Restore into a host folder (the snapshot browser's "restore to folder…") against a corpus of hostile targets:
 * `../`, absolute paths, separators, symlinked path components, a symlink already at the target, NUL, very long
 * names, Unicode look-alikes and hostile names inside the volume. The rule under test: zero writes outside the
 * chosen folder, and nothing there overwritten.
 */
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleHost } from '../../../core/service/index.js';

let dir: string;
let chosen: string;
let outside: string;
let host: ConsoleHost;
let vol: string;
const tag = `snapplane-escape-${process.pid}-${Date.now()}`;

/** Every path under `root` (except `skip`) with its type, size and link target: what "no writes" compares. */
async function listing(root: string, skip: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      if (p === skip) continue;
      const st = await lstat(p);
      out.push(`${p} ${st.isSymbolicLink() ? `-> ${await readlink(p)}` : st.isDirectory() ? 'dir' : `${st.size} ${st.mtimeMs}`}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out;
}

async function restore(args: Record<string, unknown>): Promise<{ ok: boolean; code?: string; target?: string }> {
  const r = await host.router.call('restoreToHost', { volume: vol, snapshot: 's1', folder: chosen, ...args });
  return r.ok ? { ok: true, target: (r.result as { target: string }).target } : { ok: false, code: r.error.code };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-restore-'));
  chosen = join(dir, 'chosen');
  outside = join(dir, 'outside');
  await mkdir(chosen);
  await mkdir(outside);
  await writeFile(join(outside, 'sentinel'), 'untouched');
  host = await ConsoleHost.start({ transport: 'direct', stateFile: join(dir, 'state.json'), schedulerIntervalMs: 0 });
  vol = join(dir, 'v.img');
  const ok = async (m: string, a: unknown): Promise<void> => {
    const r = await host.router.call(m, a);
    if (!r.ok) throw new Error(`${m}: ${r.error.message}`);
  };
  await ok('volumeCreate', { path: vol, sizeBytes: 4 * 2 ** 20 });
  const put = (path: string, text: string): Promise<void> => ok('writeFile', { volume: vol, path, base64: Buffer.from(text).toString('base64') });
  await put('/a.txt', 'alpha');
  await ok('mkdir', { volume: vol, path: '/dir/sub', parents: true });
  await put('/dir/b.txt', 'bravo');
  await put('/dir/sub/c.txt', 'charlie');
  // Names the volume allows but a host must not be fooled by.
  await ok('mkdir', { volume: vol, path: '/hostile' });
  await put('/hostile/..\\..\\win.txt', 'backslashes');
  await ok('mkdir', { volume: vol, path: '/bidi' });
  await put('/bidi/invoice\u202Etxt.exe', 'rtl override');
  await ok('snapCreate', { volume: vol, name: 's1' });
});

afterAll(async () => {
  await host.close();
  await rm(dir, { recursive: true, force: true });
});

describe('restore into a host folder', () => {
  it('restores a file and a folder inside the chosen folder', async () => {
    expect(await restore({ path: '/a.txt' })).toMatchObject({ ok: true, target: join(chosen, 'a.txt') });
    expect(await readFile(join(chosen, 'a.txt'), 'utf8')).toBe('alpha');
    expect(await restore({ path: '/dir', name: 'restored-dir' })).toMatchObject({ ok: true });
    expect(await readFile(join(chosen, 'restored-dir', 'sub', 'c.txt'), 'utf8')).toBe('charlie');
  });

  it('writes nothing outside the chosen folder for any target in the corpus', async () => {
    const before = await listing(dir, chosen);
    const names = [
      '../escape',
      '../../escape',
      '..',
      '.',
      '',
      `/${tag}`,
      `/tmp/${tag}`,
      `${outside}/x`,
      'a/b',
      'sub/../../escape',
      'x\\..\\..\\escape',
      'nul\0byte',
      'n'.repeat(300),
      'é'.repeat(130), // 260 bytes in UTF-8
      'line\nbreak',
      'evil\u202Egnp.exe',
    ];
    for (const name of names) {
      const r = await restore({ path: '/a.txt', name });
      expect(r.ok, `name ${JSON.stringify(name)}`).toBe(false);
      expect(['OUTSIDE', 'INVALID', 'EXISTS']).toContain(r.code);
    }
    // Folders that are not an absolute path to an existing folder.
    for (const folder of ['chosen', '../outside', '', `${chosen}\0`, join(dir, 'missing'), join(outside, 'sentinel')]) {
      const r = await restore({ path: '/a.txt', folder, name: 'z' });
      expect(r.ok, `folder ${JSON.stringify(folder)}`).toBe(false);
    }
    expect(existsSync(`/${tag}`)).toBe(false);
    expect(existsSync(`/tmp/${tag}`)).toBe(false);
    expect(await listing(dir, chosen)).toEqual(before);
  });

  it('never writes through a symlink already at the target or overwrites anything', async () => {
    const before = await listing(dir, chosen);
    await symlink(outside, join(chosen, 'linkdir'));
    await symlink(join(outside, 'sentinel'), join(chosen, 'linkfile'));
    expect(await restore({ path: '/dir', name: 'linkdir' })).toMatchObject({ ok: false, code: 'EXISTS' });
    expect(await restore({ path: '/a.txt', name: 'linkfile' })).toMatchObject({ ok: false, code: 'EXISTS' });
    // A dangling symlink is refused too (it would create its target outside).
    await symlink(join(outside, 'created-through-link'), join(chosen, 'dangling'));
    expect(await restore({ path: '/a.txt', name: 'dangling' })).toMatchObject({ ok: false, code: 'EXISTS' });
    // A symlinked component in the name is refused before any lookup.
    expect(await restore({ path: '/a.txt', name: 'linkdir/x' })).toMatchObject({ ok: false, code: 'OUTSIDE' });
    // The same name twice: the second is refused and the first stays as it was.
    expect(await restore({ path: '/dir/b.txt', name: 'twice' })).toMatchObject({ ok: true });
    expect(await restore({ path: '/a.txt', name: 'twice' })).toMatchObject({ ok: false, code: 'EXISTS' });
    expect(await readFile(join(chosen, 'twice'), 'utf8')).toBe('bravo');
    expect(await readFile(join(outside, 'sentinel'), 'utf8')).toBe('untouched');
    expect(existsSync(join(outside, 'created-through-link'))).toBe(false);
    expect(await listing(dir, chosen)).toEqual(before);
  });

  it('refuses hostile names inside the volume (separators, direction overrides) and keeps Unicode look-alikes apart', async () => {
    const before = await listing(dir, chosen);
    expect(await restore({ path: '/hostile' })).toMatchObject({ ok: false, code: 'OUTSIDE' });
    expect(await restore({ path: '/bidi' })).toMatchObject({ ok: false, code: 'INVALID' });
    // NFC and NFD spellings of the same name: two names to the host, never one file written twice.
    const nfc = 'caf\u00e9';
    const nfd = 'cafe\u0301';
    expect(await restore({ path: '/a.txt', name: nfc })).toMatchObject({ ok: true });
    const second = await restore({ path: '/dir/b.txt', name: nfd });
    if (second.ok) expect(await readFile(join(chosen, nfd), 'utf8')).toBe('bravo');
    else expect(second.code).toBe('EXISTS'); // a normalizing file system: refused, not overwritten
    expect(await readFile(join(chosen, nfc), 'utf8')).toBe('alpha');
    expect(await listing(dir, chosen)).toEqual(before);
  });
});
