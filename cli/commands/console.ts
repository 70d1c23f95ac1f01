/**
 * `snapplane console`: the web host. Serves the built renderer and the console's router over a WebSocket on
 * 127.0.0.1, guarded by a token made for this launch. The first line of stdout is the URL to open (the token rides
 * in its fragment, which browsers never send to a server or in a Referer).
 */
import type { Command } from 'commander';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { ConsoleHost, ensureDemoVolume, snapplaneHome } from '../../core/service/index.js';
import { requestSchema, type ConsoleEvent } from '../../core/api/index.js';
import { UsageError, parseInteger, parsePort, reportError } from '../run.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

/** The built renderer: beside the bundled CLI (dist/renderer), or dist/renderer of the repository when run from source. */
export function rendererDir(): string {
  if (process.env.SNAPPLANE_RENDERER_DIR) return resolve(process.env.SNAPPLANE_RENDERER_DIR);
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [join(here, '..', 'renderer'), join(here, '..', '..', 'dist', 'renderer')]) {
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  throw new UsageError('the console is not built: run `npm run build` first (dist/renderer/index.html is missing)');
}

export interface WebHostOptions {
  port: number;
  volumes: string[];
  schedulerIntervalMs: number;
  stateFile?: string;
  log?: (line: string) => void;
}

export interface WebHost {
  url: string;
  port: number;
  token: string;
  host: ConsoleHost;
  close(): Promise<void>;
}

/** Content-Security-Policy of every page the web host serves. */
function csp(port: number): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src ws://127.0.0.1:${port} ws://localhost:${port}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function sameToken(given: string | null, token: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Starts the web host on 127.0.0.1. */
export async function startWebHost(options: WebHostOptions): Promise<WebHost> {
  const root = rendererDir();
  const token = randomBytes(24).toString('base64url');
  const host = await ConsoleHost.start({ transport: 'websocket', volumes: options.volumes, schedulerIntervalMs: options.schedulerIntervalMs, stateFile: options.stateFile, log: options.log });
  let port = 0;
  const allowedHosts = (): string[] => [`127.0.0.1:${port}`, `localhost:${port}`];

  const serveFile = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const headers: Record<string, string> = {
      'Content-Security-Policy': csp(port),
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'X-Frame-Options': 'DENY',
    };
    // DNS rebinding: only our own host names.
    if (!allowedHosts().includes(req.headers.host ?? '')) {
      res.writeHead(421, headers).end('wrong host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end();
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400, headers).end();
      return;
    }
    if (path.includes('\0')) {
      res.writeHead(400, headers).end();
      return;
    }
    const file = normalize(join(root, path === '/' ? 'index.html' : path));
    if (!file.startsWith(root + sep)) {
      res.writeHead(404, headers).end();
      return;
    }
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error('not a file');
      const body = await readFile(file);
      res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Cache-Control': file.endsWith('index.html') ? 'no-store' : 'max-age=3600' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, headers).end('not found\n');
    }
  };

  const server = createServer((req, res) => void serveFile(req, res));
  const wss = new WebSocketServer({ noServer: true, maxPayload: 32 * 2 ** 20 });
  const sockets = new Set<WebSocket>();

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: string): void => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      refuse('400 Bad Request');
      return;
    }
    if (url.pathname !== '/api' || !sameToken(url.searchParams.get('token'), token)) {
      refuse('401 Unauthorized');
      return;
    }
    // A browser page of another origin never gets in, even with the token.
    const origin = req.headers.origin;
    if (!allowedHosts().includes(req.headers.host ?? '') || (origin !== undefined && !allowedHosts().map((h) => `http://${h}`).includes(origin))) {
      refuse('403 Forbidden');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      const off = host.onEvent((event: ConsoleEvent) => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'event', event }));
      });
      ws.on('close', () => {
        off();
        sockets.delete(ws);
      });
      // A frame past maxPayload (or a broken one): ws closes this connection with its code (1009 too big); unhandled,
      // the error would end the whole host and every volume it holds. The renderer reconnects with the same token.
      ws.on('error', (e: Error) => process.stderr.write(`snapplane console: closed a connection: ${e.message}\n`));
      ws.on('message', (data, isBinary) => {
        void (async () => {
          let id: number | null = null;
          try {
            if (isBinary) throw new Error('binary frames are not part of the protocol');
            const frame: unknown = JSON.parse(data.toString());
            // A malformed request that still carries a usable id gets its answer under that id.
            const given = (frame as { id?: unknown } | null)?.id;
            if (typeof given === 'number' && Number.isSafeInteger(given) && given >= 0) id = given;
            const parsed = requestSchema.safeParse(frame);
            if (!parsed.success) throw new Error('a request is {"id": number, "method": string, "args": object}');
            id = parsed.data.id;
            const reply = await host.router.call(parsed.data.method, parsed.data.args);
            if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'reply', id, ...reply }));
          } catch (e) {
            if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'reply', id, ok: false, error: { code: 'INVALID', message: e instanceof Error ? e.message : String(e) } }));
          }
        })();
      });
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolveListen());
  });
  const address = server.address();
  port = typeof address === 'object' && address ? address.port : options.port;
  const url = `http://127.0.0.1:${port}/#token=${token}`;
  return {
    url,
    port,
    token,
    host,
    async close(): Promise<void> {
      for (const ws of sockets) ws.terminate();
      wss.close();
      await new Promise<void>((r) => server.close(() => r()));
      await host.close();
    },
  };
}

export function registerConsole(program: Command): void {
  program
    .command('console')
    .description('the web console: serves the renderer and the engine API on 127.0.0.1 (WebSocket, per-launch token); prints its URL first')
    .option('--port <port>', 'TCP port on 127.0.0.1 (0 picks a free one)', '7345')
    .option('--volume <vol...>', 'volumes to show (remembered with the console state)')
    .option('--demo', 'also show the demo volume (built on first use under the Snapplane home folder)')
    .option('--schedule-interval <seconds>', 'how often the scheduler looks for due snapshot schedules and mirror updates (0: off)', '30')
    .action(async (opts: { port: string; volume?: string[]; demo?: boolean; scheduleInterval: string }) => {
      let web: WebHost | null = null;
      try {
        const volumes = [...(opts.volume ?? [])];
        if (opts.demo) {
          const demo = join(snapplaneHome(), 'demo', 'demo.img');
          if (await ensureDemoVolume(demo)) process.stderr.write(`built the demo volume at ${demo}\n`);
          volumes.push(demo);
        }
        web = await startWebHost({
          port: parsePort(opts.port),
          volumes,
          schedulerIntervalMs: parseInteger(opts.scheduleInterval, '--schedule-interval') * 1000,
          log: (l) => process.stderr.write(`snapplane console: ${l}\n`),
        });
        process.stdout.write(`${web.url}\n`);
        process.stdout.write(`Snapplane console on 127.0.0.1:${web.port}: open the URL above (it carries this launch's token). Ctrl-C stops it.\n`);
        await new Promise<void>((r) => {
          process.once('SIGINT', r);
          process.once('SIGTERM', r);
        });
        process.stderr.write('snapplane console: stopping (running jobs are cancelled, volumes closed)\n');
        await web.close();
      } catch (e) {
        await web?.host.service.abortAll();
        process.exitCode = reportError(e);
      }
    });
}
