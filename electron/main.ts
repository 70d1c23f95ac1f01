/**
 * Electron main: the window, its security settings, and IPC handlers that adapt the typed channel table to the
 * engine's service facade. Every handler checks its sender (the app's own page, main frame) before it runs.
 */
import { app, BrowserWindow, ipcMain, session, type IpcMainInvokeEvent } from 'electron';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SnapplaneService, isSnapplaneError } from '../core/service/index.js';
import { CHANNELS, type Channel, type Channels } from './channels.js';

// Built to dist/electron/main.mjs; the renderer ships beside dist/.
const HERE = dirname(fileURLToPath(import.meta.url));
const RENDERER = join(HERE, '..', '..', 'renderer', 'index.html');
const RENDERER_URL = pathToFileURL(RENDERER).href;
const service = new SnapplaneService();

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/** Only the app's own page, in its main frame, may call the engine. */
function trusted(event: IpcMainInvokeEvent): boolean {
  const frame = event.senderFrame;
  return frame !== null && frame.url === RENDERER_URL && frame === event.sender.mainFrame;
}

function isText(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0 && x.length < 4096 && !x.includes('\0');
}

type Handler<C extends Channel> = (...args: Channels[C]['args']) => Promise<Channels[C]['result']>;

const handlers: { [C in Channel]: Handler<C> } = {
  'snapplane:volumeInfo': (volume) => service.volumeInfo({ volume }),
  'snapplane:snapList': (volume) => service.snapList({ volume }),
  'snapplane:planes': (volume) => service.planes(volume),
  'snapplane:ls': (volume, path) => service.ls({ volume }, path),
};

function register(): void {
  for (const channel of CHANNELS) {
    ipcMain.handle(channel, async (event, ...args: unknown[]) => {
      if (!trusted(event)) throw new Error(`refused ${channel} from ${event.senderFrame?.url ?? 'an unknown frame'}`);
      if (!args.every(isText)) throw new Error(`${channel}: arguments must be non-empty strings`);
      try {
        return await (handlers[channel] as (...a: string[]) => Promise<unknown>)(...(args as string[]));
      } catch (e) {
        // Typed engine errors cross IPC as plain objects with their code.
        if (isSnapplaneError(e)) throw new Error(JSON.stringify(e.toJSON()));
        throw e;
      }
    });
  }
}

function createWindow(): void {
  const win = new BrowserWindow({
    width: 1280,
    height: 800,
    title: 'Snapplane',
    webPreferences: {
      preload: join(HERE, 'preload.cjs'),
      contextIsolation: true,
      nodeIntegration: false,
      sandbox: true,
      webSecurity: true,
    },
  });
  win.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  win.webContents.on('will-navigate', (event, url) => {
    if (url !== RENDERER_URL) event.preventDefault();
  });
  void win.loadFile(RENDERER);
}

void app.whenReady().then(() => {
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CSP] } });
  });
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  register();
  createWindow();
});

app.on('window-all-closed', () => {
  void service.closeAll().finally(() => app.quit());
});
