/**
 * Names as users type them: volume names that would read as another volume's sidecar (served and local),
 * destinations shaped like an address without a volume, volume paths holding '@', `<vol>@<snap>` given to
 * commands that write or take a whole volume, and snapshot names the image expressions could not read plainly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../../core/fs/volume.js';
import { snapplaneIn, type CliResult } from './cli-helpers.js';
import { makeKey, startServer, type ServerProcess } from '../helpers/replication.js';
import { useTempDir } from '../helpers/temp-dir.js';

const temp = useTempDir('names');
let dir: string;
let key: string;
let server: ServerProcess;
let root: string;

/** Runs the CLI in the test's folder (relative paths, as a user types them). */
const run = (...args: string[]): Promise<CliResult> => snapplaneIn(dir, ...args);

async function ok(...args: string[]): Promise<CliResult> {
  const r = await run(...args);
  if (r.code !== 0) throw new Error(`snapplane ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

beforeAll(async () => {
  dir = temp();
  process.env.SNAPPLANE_HOME = join(dir, 'home');
  key = await makeKey(dir);
  root = join(dir, 'root');
  await mkdir(root);
  server = await startServer(root, key);
  const v = await Volume.create(join(dir, 'src.img'), { sizeBytes: 16 << 20, cpIntervalMs: 0 });
  await v.writeFile('/t', Buffer.from('t\n'));
  await v.createSnapshot('T');
  await v.setSnapshotFlags('T', { master: true });
  await v.close();
  await writeFile(join(dir, 'n.txt'), 'n\n');
});
afterAll(async () => {
  await server?.kill();
});

describe('volume names that read as another volume\'s sidecar', () => {
  it('serve refuses them, and the volume whose sidecar it would be stays usable', async () => {
    const dest = (name: string): string => `127.0.0.1:${server.port}/${name}`;
    await ok('replicate', 'src.img', dest('lim1'), '--key-file', key);
    await ok('replicate', 'src.img', dest('v2'), '--key-file', key);
    const before = (await readdir(root)).sort();
    for (const name of ['lim1.mirror.json', 'v2.receive-token.json', 'lim1.lock', 'lim1.receive-token.spool', 'lim1.offline.json', 'lim1.destinations.json', 'lim1.destinations.json.lock', 'lim1.lock.takeover', 'lim1.replacement.json', 'lim1.creating-99', 'lim1.mirror.json.7.tmp', 'LIM1.Mirror.Json']) {
      const r = await run('replicate', 'src.img', dest(name), '--key-file', key);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(/^snapplane: bad volume name '.*': it ends in '.*', which reads as a file volume '(lim1|v2|LIM1)' keeps beside it .*choose another name \(INVALID\)\n$/);
    }
    expect(await run('replicate', 'src.img', dest('lim1.replacement'), '--key-file', key)).toMatchObject({ code: 1, stderr: expect.stringMatching(/names ending in '\.replacement'/) });
    // Nothing was written under the root, and both volumes open as they did.
    expect((await readdir(root)).sort()).toEqual(before);
    expect((await ok('volume', 'info', join(root, 'lim1'))).stdout).toMatch(/^volume: +.*lim1\n/);
    expect((await ok('snap', 'list', join(root, 'v2'))).stdout).toMatch(/\nT +/);
    // A name that only contains such a word elsewhere is a name like any other.
    await ok('replicate', 'src.img', dest('lim1.lock.img'), '--key-file', key);
  });

  it('local volumes: volume create and a local destination refuse them too', async () => {
    await ok('volume', 'create', 'x.img', '--size', '8M');
    const create = await run('volume', 'create', 'x.img.mirror.json', '--size', '8M');
    expect(create).toMatchObject({ code: 1, stderr: expect.stringMatching(/bad volume name 'x\.img\.mirror\.json': it ends in '\.mirror\.json', which reads as a file volume 'x\.img' keeps beside it/) });
    const raid = await run('volume', 'create', 'g.lock', '--size', '8M', '--raid', '2');
    expect(raid).toMatchObject({ code: 1, stderr: expect.stringMatching(/bad volume name 'g\.lock'/) });
    const replica = await run('replicate', 'src.img', 'x.img.destinations.json');
    expect(replica).toMatchObject({ code: 1, stderr: expect.stringMatching(/bad volume name '.*x\.img\.destinations\.json'/) });
    const mirror = await run('mirror', 'create', 'mx', 'src.img', 'x.img.offline.json', '--kind', 'full');
    expect(mirror).toMatchObject({ code: 1, stderr: expect.stringMatching(/bad volume name '.*x\.img\.offline\.json'/) });
    expect((await readdir(dir)).filter((f) => f.startsWith('x.img.') || f.startsWith('g.'))).toEqual([]);
    expect((await ok('volume', 'info', 'x.img')).stdout).toMatch(/^volume: +x\.img\n/);
  });
});

describe('destinations shaped like an address', () => {
  it('a server without a volume name, a bad port or host, and --key-file with a local path are refused; nothing is created', async () => {
    const p = server.port;
    const cases: [string[], RegExp][] = [
      [['replicate', 'src.img', `127.0.0.1:${p}`, '--key-file', key], new RegExp(`names a server but no volume on it: give a volume name: 127\\.0\\.0\\.1:${p}/<name>`)],
      [['replicate', 'src.img', `127.0.0.1:${p}/`, '--key-file', key], new RegExp(`give a volume name: 127\\.0\\.0\\.1:${p}/<name>`)],
      [['replicate', 'src.img', '127.0.0.1:notaport/x'], /bad port 'notaport' in destination '127\.0\.0\.1:notaport\/x': a number from 1 to 65535/],
      [['replicate', 'src.img', '127.0.0.1:99999/x'], /bad port '99999'/],
      [['replicate', 'src.img', '127.0.0.1:0/x'], /bad port '0'/],
      [['replicate', 'src.img', 'no host:1/x'], /bad host 'no host'/],
      [['replicate', 'src.img', 'local.img', '--key-file', key], /a key file \(--key-file\) is for a remote destination \(host:port\/name\); 'local\.img' is a path on this host/],
      [['mirror', 'create', 'nn', 'src.img', `127.0.0.1:${p}`, '--kind', 'full', '--key-file', key], /give a volume name/],
      [['mirror', 'create', 'nn', 'src.img', 'local.img', '--kind', 'full', '--key-file', key], /a key file \(--key-file\) is for a remote destination/],
      [['mirror', 'create', 'nn', 'src.img', `127.0.0.1:${p}/x.mirror.json`, '--kind', 'full', '--key-file', key], /bad volume name/],
    ];
    for (const [args, message] of cases) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr, args.join(' ')).toMatch(/\(INVALID\)\n$/);
    }
    expect((await readdir(dir)).filter((f) => f.includes(':') || f.startsWith('local'))).toEqual([]);
    expect((await ok('mirror', 'list', '--json')).stdout).not.toMatch(/"nn"/);
  });

  it('a --limit that is not a positive rate is a usage error (exit 2) that says so, for replicate and mirror create', async () => {
    for (const bad of ['0', 'abc', '-5M', '0K/s']) {
      for (const args of [['replicate', 'src.img', 'lim.img', '--limit', bad], ['mirror', 'create', 'lim', 'src.img', 'lim.img', '--kind', 'full', '--limit', bad]]) {
        const r = await run(...args);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr.trim()).toBe(`snapplane: --limit must be a positive rate in bytes per second with an optional K, M, G or T suffix, e.g. 50M (got '${bad}')`);
      }
    }
    expect((await readdir(dir)).filter((f) => f.startsWith('lim'))).toEqual([]);
    expect((await ok('mirror', 'list', '--json')).stdout).not.toMatch(/"lim"/);
    // A good one with a /s suffix is taken.
    expect((await run('replicate', 'src.img', 'lim.img', '--limit', '50M/s', '--dry-run')).code).toBe(0);
  });

  it('a local path with a colon works when it exists or starts as a path', async () => {
    await ok('replicate', 'src.img', './h:1.img');
    await ok('volume', 'create', 'h:2.img', '--size', '16M');
    await ok('replicate', 'src.img', 'h:2.img');
    expect((await ok('snap', 'list', 'h:2.img')).stdout).toMatch(/\nT +/);
    expect((await ok('snap', 'list', 'h:1.img')).stdout).toMatch(/\nT +/);
  });
});

describe("'@' in volume paths", () => {
  it('a volume whose path holds @ is read as itself; another volume is split at the last @', async () => {
    await ok('volume', 'create', 'host@x.img', '--size', '8M');
    await ok('put', 'host@x.img', 'n.txt', '/n');
    expect((await ok('ls', 'host@x.img', '/')).stdout).toMatch(/ n\n$/);
    await ok('get', 'host@x.img', '/n', 'back.txt');
    expect((await ok('volume', 'info', 'host@x.img')).stdout).toMatch(/^volume: +host@x\.img\n/);
    await ok('volume', 'create', 'v.img', '--size', '8M');
    await ok('put', 'v.img', 'n.txt', '/n');
    await ok('snap', 'create', 'v.img', 'A');
    await ok('rm', 'v.img', '/n');
    expect((await ok('ls', 'v.img@A', '/')).stdout).toMatch(/ n\n$/);
    expect((await ok('volume', 'info', 'v.img@A')).stdout).toMatch(/^volume: +v\.img@A \(a snapshot: /);
    // A new volume that would read as a snapshot of an existing one is refused.
    expect(await run('volume', 'create', 'v.img@A', '--size', '8M')).toMatchObject({ code: 1, stderr: expect.stringMatching(/bad volume name 'v\.img@A': it reads as snapshot 'A' of volume 'v\.img'/) });
  });

  it('<vol>@<snap> given to a write says the snapshot is read-only; to a whole-volume command, that it takes a volume', async () => {
    for (const args of [
      ['put', 'v.img@A', 'n.txt', '/x'],
      ['rm', 'v.img@A', '/n'],
      ['mkdir', 'v.img@A', '/d'],
      ['mv', 'v.img@A', '/n', '/m'],
      ['sync', 'v.img@A'],
      ['snap', 'create', 'v.img@A', 'B'],
      ['snap', 'delete', 'v.img@A', 'A'],
      ['snap', 'restore', 'v.img@A', 'A', '/n'],
    ]) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(/^snapplane: snapshot 'A' of 'v\.img' is read-only; change the volume itself \('v\.img'\).*\(READ_ONLY\)\n$/);
    }
    for (const args of [['fsck', 'v.img@A'], ['planes', 'v.img@A'], ['space', 'v.img@A'], ['snap', 'list', 'v.img@A'], ['snap', 'diff', 'v.img@A', 'A', 'active']]) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(/^snapplane: 'v\.img@A' names snapshot 'A' of 'v\.img', and this command takes a whole volume: give 'v\.img' \(INVALID\)\n$/);
    }
    // A volume that is simply missing is still NOT_FOUND, naming it.
    expect(await run('put', 'gone.img', 'n.txt', '/x')).toMatchObject({ code: 1, stderr: expect.stringMatching(/volume 'gone\.img' does not exist \(NOT_FOUND\)/) });
  });
});

describe('snapshot names', () => {
  it('refuses names the image expressions or the command line would not read plainly', async () => {
    await ok('volume', 'create', 's.img', '--size', '8M');
    for (const name of ['x+y', 'a&b', 'o(k', 'c)', "q'", '-dash']) {
      const r = await run('snap', 'create', 's.img', '--', name);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(/invalid snapshot name .*not '-' first.*\+ & \( \) '.*\(INVALID\)\n$/);
    }
    await ok('snap', 'create', 's.img', 'hourly-2026-12-02_0300');
    expect(await run('snap', 'rename', 's.img', 'hourly-2026-12-02_0300', 'x+y')).toMatchObject({ code: 1, stderr: expect.stringMatching(/invalid snapshot name 'x\+y'/) });
    expect((await ok('image', 'eval', 's.img', 'hourly-2026-12-02_0300')).stdout).toMatch(/^hourly-2026-12-02_0300: /);
    expect((await ok('snap', 'list', 's.img')).stdout.trim().split('\n')).toHaveLength(2);
  });
});
