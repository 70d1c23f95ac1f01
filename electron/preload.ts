/**
 * Preload (sandboxed, context-isolated): exposes `window.snapplane`, one named function per method of the contract
 * plus `onEvent` and `pickFolder`, never `ipcRenderer` itself nor any Electron or Node object.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { METHOD_LIST } from '../core/api/method-names.js';
import type { SnapplaneBridge } from '../core/api/index.js';
import { EVENT_CHANNEL, PICK_FOLDER_CHANNEL, channelOf } from './channels.js';

const methods: Record<string, (args: unknown) => Promise<unknown>> = {};
for (const method of METHOD_LIST) {
  const channel = channelOf(method);
  methods[method] = (args: unknown) => ipcRenderer.invoke(channel, args);
}

const bridge = {
  ...methods,
  onEvent(listener: (event: unknown) => void): () => void {
    const wrapped = (_e: IpcRendererEvent, event: unknown): void => listener(event);
    ipcRenderer.on(EVENT_CHANNEL, wrapped);
    return () => {
      ipcRenderer.removeListener(EVENT_CHANNEL, wrapped);
    };
  },
  pickFolder: (): Promise<string | null> => ipcRenderer.invoke(PICK_FOLDER_CHANNEL) as Promise<string | null>,
} as unknown as SnapplaneBridge;

contextBridge.exposeInMainWorld('snapplane', bridge);
