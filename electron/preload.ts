/** Preload: exposes only the typed bridge (one named function per channel), never ipcRenderer itself. */
import { contextBridge, ipcRenderer } from 'electron';
import type { Channel, Channels, SnapplaneBridge } from './channels.js';

function call<C extends Channel>(channel: C, ...args: Channels[C]['args']): Promise<Channels[C]['result']> {
  return ipcRenderer.invoke(channel, ...args) as Promise<Channels[C]['result']>;
}

const bridge: SnapplaneBridge = {
  volumeInfo: (volume) => call('snapplane:volumeInfo', volume),
  snapList: (volume) => call('snapplane:snapList', volume),
  planes: (volume) => call('snapplane:planes', volume),
  ls: (volume, path) => call('snapplane:ls', volume, path),
};

contextBridge.exposeInMainWorld('snapplane', bridge);
