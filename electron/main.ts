/**
 * Electron main: the window and its security settings, the menu, the `app://` protocol that serves the built
 * renderer, and the IPC adapter of the contract's channel table. The engine runs in a worker thread
 * (engine-worker.ts) with the same router the web host uses; main checks every IPC sender, validates every argument
 * object with the contract's schemas, forwards the call and pushes the engine's events to the window.
 */
import { app, BrowserWindow, dialog, ipcMain, Menu, net, protocol, session, type IpcMainInvokeEvent, type MenuItemConstructorOptions, type WebContents } from 'electron';
import { Worker } from 'node:worker_threads';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { methodArgs, type Reply } from '../core/api/index.js';
import { EVENT_CHANNEL, METHOD_CHANNELS, PICK_FOLDER_CHANNEL, type FromWorker, type ToWorker, type WorkerConfig } from './channels.js';

// Built to dist/electron/main.mjs; the renderer is built to dist/renderer.
const HERE = dirname(fileURLToPath(import.meta.url));
const RENDERER_DIR = normalize(join(HERE, '..', 'renderer'));
const SCHEME = 'app';
const HOST = 'snapplane';
const START_URL = `${SCHEME}://${HOST}/index.html`;

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.map': 'application/json', '.woff2': 'font/woff2' };

// The renderer is served from a privileged custom scheme, not file:// (Electron security checklist item 18).
protocol.registerSchemesAsPrivileged([{ scheme: SCHEME, privileges: { standard: true, secure: true } }]);

let win: BrowserWindow | null = null;

/** Volumes from the command line (`--volume <path>`, repeatable); none means the demo volume. */
function volumesFromArgs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--volume' && argv[i + 1]) out.push(argv[++i]);
    else if (argv[i].startsWith('--volume=')) out.push(argv[i].slice('--volume='.length));
  }
  return out;
}

// ---- the engine worker ---------------------------------------------------------------------------------------

const volumes = volumesFromArgs(process.argv);
const config: WorkerConfig = { volumes, demo: volumes.length === 0, version: app.getVersion() };
const worker = new Worker(join(HERE, 'engine-worker.mjs'), { workerData: config });
const pending = new Map<number, (r: Reply) => void>();
let nextId = 1;
let workerClosed: (() => void) | null = null;
let workerError: string | null = null;

worker.on('message', (m: FromWorker) => {
  if (m.type === 'reply') {
    pending.get(m.id)?.(m.reply);
    pending.delete(m.id);
  } else if (m.type === 'event') {
    if (win && !win.isDestroyed()) win.webContents.send(EVENT_CHANNEL, m.event);
  } else if (m.type === 'closed') {
    workerClosed?.();
  } else if (m.type === 'fatal') {
    workerError = m.message;
    dialog.showErrorBox('Snapplane engine', m.message);
  }
});
worker.on('error', (e) => {
  workerError = e.message;
  for (const [id, resolve] of pending) {
    resolve({ ok: false, error: { code: 'IO', message: `the engine stopped: ${e.message}` } });
    pending.delete(id);
  }
});

function callWorker(method: ToWorker & { type: 'call' }): Promise<Reply> {
  if (workerError) return Promise.resolve({ ok: false, error: { code: 'IO', message: `the engine stopped: ${workerError}` } });
  return new Promise((resolve) => {
    pending.set(method.id, resolve);
    worker.postMessage(method);
  });
}

// ---- IPC ----------------------------------------------------------------------------------------------------

/** Only the app's own page, in its main frame, of our window, may call the engine (checklist item 17). */
function trusted(event: IpcMainInvokeEvent): boolean {
  const frame = event.senderFrame;
  if (!frame || !win || event.sender !== win.webContents || frame !== event.sender.mainFrame) return false;
  try {
    const url = new URL(frame.url);
    return url.protocol === `${SCHEME}:` && url.host === HOST;
  } catch {
    return false;
  }
}

function register(): void {
  for (const { method, channel } of METHOD_CHANNELS) {
    ipcMain.handle(channel, async (event, args: unknown): Promise<Reply> => {
      if (!trusted(event)) return { ok: false, error: { code: 'AUTH', message: `refused ${channel} from ${event.senderFrame?.url ?? 'an unknown frame'}` } };
      // Validated here at the boundary, and again by the router in the worker.
      const parsed = methodArgs[method].safeParse(args ?? {});
      if (!parsed.success) return { ok: false, error: { code: 'INVALID', message: `${method}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(arguments)'} ${i.message}`).join('; ')}` } };
      return callWorker({ type: 'call', id: nextId++, method, args });
    });
  }
  ipcMain.handle(PICK_FOLDER_CHANNEL, async (event): Promise<string | null> => {
    if (!trusted(event) || !win) return null;
    const r = await dialog.showOpenDialog(win, { title: 'Restore into folder', properties: ['openDirectory', 'createDirectory'] });
    return r.canceled || r.filePaths.length === 0 ? null : r.filePaths[0];
  });
}

// ---- the renderer's protocol ----------------------------------------------------------------------------------

function serveRenderer(): void {
  protocol.handle(SCHEME, async (request) => {
    const url = new URL(request.url);
    const path = decodeURIComponent(url.pathname);
    const file = normalize(join(RENDERER_DIR, path === '/' ? 'index.html' : path));
    if (url.host !== HOST || path.includes('\0') || !file.startsWith(RENDERER_DIR + sep)) return new Response('not found', { status: 404 });
    const res = await net.fetch(pathToFileURL(file).toString());
    if (!res.ok) return new Response('not found', { status: 404 });
    return new Response(res.body, {
      status: 200,
      headers: { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff' },
    });
  });
}

// ---- windows --------------------------------------------------------------------------------------------------

/** Every web contents: no navigation, no new windows, no <webview> (checklist items 11–14). */
function lockDown(contents: WebContents): void {
  contents.on('will-navigate', (event) => event.preventDefault());
  contents.on('will-redirect', (event) => event.preventDefault());
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
}

function createWindow(): void {
  win = new BrowserWindow({
    width: 1400,
    height: 900,
    title: 'Snapplane',
    backgroundColor: '#0d131c',
    webPreferences: {
      preload: join(HERE, 'preload.cjs'),
      contextIsolation: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      sandbox: true,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      spellcheck: false,
    },
  });
  win.on('closed', () => {
    win = null;
  });
  void win.loadURL(START_URL);
}

function buildMenu(): void {
  const template: MenuItemConstructorOptions[] = [
    ...(process.platform === 'darwin' ? [{ role: 'appMenu' as const }] : []),
    { label: 'File', submenu: [{ role: 'quit' }] },
    { label: 'Edit', submenu: [{ role: 'undo' }, { role: 'redo' }, { type: 'separator' }, { role: 'cut' }, { role: 'copy' }, { role: 'paste' }, { role: 'selectAll' }] },
    { label: 'View', submenu: [{ role: 'reload' }, { role: 'resetZoom' }, { role: 'zoomIn' }, { role: 'zoomOut' }, { type: 'separator' }, { role: 'togglefullscreen' }, ...(app.isPackaged ? [] : [{ role: 'toggleDevTools' as const }])] },
    {
      label: 'Help',
      submenu: [
        {
          label: 'About Snapplane',
          click: () => void dialog.showMessageBox({ type: 'info', title: 'Snapplane', message: `Snapplane ${app.getVersion()}`, detail: 'A block-level copy-on-write storage engine with bit-plane snapshots.' }),
        },
      ],
    },
  ];
  Menu.setApplicationMenu(Menu.buildFromTemplate(template));
}

app.on('web-contents-created', (_e, contents) => lockDown(contents));

void app.whenReady().then(() => {
  // No permission (camera, notifications, …) is ever granted (checklist item 5).
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  session.defaultSession.setPermissionCheckHandler(() => false);
  serveRenderer();
  register();
  buildMenu();
  createWindow();
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow();
  });
});

app.on('window-all-closed', () => {
  // The worker cancels running jobs and closes every volume (each writes its final consistency point).
  const done = new Promise<void>((resolve) => {
    workerClosed = resolve;
    setTimeout(resolve, 15_000).unref();
  });
  const close: ToWorker = { type: 'close' };
  worker.postMessage(close);
  void done.finally(() => {
    void worker.terminate();
    app.quit();
  });
});
