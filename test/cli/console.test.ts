/**
 * `snapplane console`, the web host, as a user starts it: the first line of stdout is the URL with the token; the
 * WebSocket refuses a missing or wrong token and a foreign origin; the HTTP side serves only the renderer, with a
 * CSP; random frames get validation errors; its scheduler takes a snapshot that is due.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotInfo } from '../../core/api/index.js';
import { startConsole, type HostProcess } from '../helpers/console-host.js';
import { json, ok } from './cli-helpers.js';

let dir: string;
let host: HostProcess;
let vol: string;

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: host.port, path, headers: { Host: `127.0.0.1:${host.port}`, ...headers } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket; resolves with it once open, or rejects with the HTTP status of the refusal. */
function connect(query: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${host.port}/api${query}`, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

class Rpc {
  private id = 0;
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>();
  readonly events: Record<string, unknown>[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      const m = JSON.parse(String(d)) as Record<string, unknown>;
      if (m.type === 'event') this.events.push(m.event as Record<string, unknown>);
      else if (m.type === 'reply') {
        const k = m.id as number;
        this.waiting.get(k)?.(m);
        this.waiting.delete(k);
      }
    });
  }
  call(method: string, args: unknown): Promise<Record<string, unknown>> {
    const id = ++this.id;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(JSON.stringify({ id, method, args }));
    });
  }
  raw(frame: string | Buffer): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      this.ws.once('message', (d) => {
        const m = JSON.parse(String(d)) as Record<string, unknown>;
        if (m.type === 'reply' && m.id === null) resolve(m);
      });
      this.ws.send(frame);
    });
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-console-'));
  vol = join(dir, 'v.img');
  await ok('volume', 'create', vol, '--size', '4M');
  host = await startConsole(['--volume', vol, '--schedule-interval', '1'], { SNAPPLANE_HOME: join(dir, 'home') });
});

afterAll(async () => {
  expect(await host.stop()).toBe(0);
  await rm(dir, { recursive: true, force: true });
});

describe('snapplane console (web host)', () => {
  it('prints its URL with the token first and serves the renderer with a CSP', async () => {
    expect(host.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=[A-Za-z0-9_-]{32}$/);
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<div id="root">');
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    // Only files of the built renderer: no way out of its folder, no other host names (DNS rebinding).
    expect((await get('/../../package.json')).status).toBe(404);
    expect((await get('/%2e%2e/%2e%2e/package.json')).status).toBe(404);
    expect((await get('/..%2f..%2fpackage.json')).status).toBe(404);
    expect((await get('/', { Host: 'evil.example:80' })).status).toBe(421);
  });

  it('refuses a WebSocket without the token, with a wrong one, or from a foreign page', async () => {
    await expect(connect('')).rejects.toThrow('refused 401');
    await expect(connect('?token=')).rejects.toThrow('refused 401');
    // One character off (a token that ends in 'x' gets a 'y': CI at fb2b13f 'refused' a token ending in x by sending that same token).
    const wrong = `${host.token.slice(0, -1)}${host.token.endsWith('x') ? 'y' : 'x'}`;
    await expect(connect(`?token=${wrong}`)).rejects.toThrow('refused 401');
    await expect(connect(`?token=${host.token}`, { Origin: 'http://evil.example' })).rejects.toThrow('refused 403');
    const ws = await connect(`?token=${host.token}`, { Origin: `http://127.0.0.1:${host.port}` });
    const rpc = new Rpc(ws);
    const list = await rpc.call('volumeList', {});
    expect(list).toMatchObject({ ok: true });
    expect((list.result as { path: string }[]).map((v) => v.path)).toEqual([vol]);
    ws.close();
  });

  it('answers random frames and random calls with validation errors and stays up', async () => {
    const rpc = new Rpc(await connect(`?token=${host.token}`));
    expect(await rpc.raw('not json')).toMatchObject({ ok: false, error: { code: 'INVALID' } });
    expect(await rpc.raw(Buffer.from([1, 2, 3]))).toMatchObject({ ok: false, error: { code: 'INVALID' } });
    expect(await rpc.raw(JSON.stringify({ id: 'x', method: 'volumeList' }))).toMatchObject({ ok: false });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('volumeInfo', 'planeTiles', 'jobStart', 'restoreToHost', 'writeFile', 'snapCreate', 'scheduleAdd', 'mirrorCreate'), fc.anything({ maxDepth: 2 }), async (method, args) => {
        const r = await rpc.call(method, args);
        expect(r.ok).toBe(false);
        expect((r.error as { code: string }).code).toBe('INVALID');
      }),
      { numRuns: 60 },
    );
    expect(await rpc.call('volumeInfo', { volume: vol })).toMatchObject({ ok: true });
    rpc.ws.close();
  });

  it('a frame past the size limit (a 40 MB upload) closes that connection only; the host stays up for the next one', async () => {
    const ws = await connect(`?token=${host.token}`);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('error', () => undefined);
    ws.send(JSON.stringify({ id: 1, method: 'writeFile', args: { volume: vol, path: '/big.bin', base64: 'A'.repeat(40_000_000) } }));
    expect(await closed).toBe(1009);
    const rpc = new Rpc(await connect(`?token=${host.token}`));
    expect(await rpc.call('volumeInfo', { volume: vol })).toMatchObject({ ok: true });
    rpc.ws.close();
    expect(host.child.exitCode).toBeNull();
  });

  it("runs the scheduler: a due schedule's snapshot is taken and pushed as an event", async () => {
    const rpc = new Rpc(await connect(`?token=${host.token}`));
    expect(await rpc.call('scheduleAdd', { volume: vol, label: 'often', every: '1h', keep: 3 })).toMatchObject({ ok: true });
    await expect.poll(async () => ((await rpc.call('snapList', { volume: vol })).result as SnapshotInfo[]).map((s) => s.name), { timeout: 15_000, interval: 200 }).toEqual([expect.stringMatching(/^often-\d{4}-\d{2}-\d{2}_\d{4}$/)]);
    // The event follows the whole pass (take, then prune), so a snapList may see the snapshot a moment before it.
    await expect.poll(() => rpc.events.some((e) => e.type === 'volumeChanged' && e.volume === vol), { timeout: 5_000, interval: 50 }).toBe(true);
    // The CLI sees the snapshot on disk.
    const snaps = await json<SnapshotInfo[]>('snap', 'list', vol);
    expect(snaps.map((s) => s.name)).toEqual([expect.stringMatching(/^often-/)]);
    rpc.ws.close();
  });
});
