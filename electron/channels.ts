/**
 * The one typed channel table shared by Electron main and preload: each IPC channel maps to one service
 * method, with its argument and result types. The console (renderer) grows this table; it starts read-only.
 */
import type { DirEntryInfo, PlaneInfo, SnapshotInfo, VolumeInfo } from '../core/api/index.js';

export interface Channels {
  'snapplane:volumeInfo': { args: [volume: string]; result: VolumeInfo };
  'snapplane:snapList': { args: [volume: string]; result: SnapshotInfo[] };
  'snapplane:planes': { args: [volume: string]; result: PlaneInfo[] };
  'snapplane:ls': { args: [volume: string, path: string]; result: DirEntryInfo[] };
}

export type Channel = keyof Channels;

export const CHANNELS: readonly Channel[] = ['snapplane:volumeInfo', 'snapplane:snapList', 'snapplane:planes', 'snapplane:ls'];

/** The API the preload exposes to the renderer as `window.snapplane`: one function per channel. */
export interface SnapplaneBridge {
  volumeInfo(volume: string): Promise<VolumeInfo>;
  snapList(volume: string): Promise<SnapshotInfo[]>;
  planes(volume: string): Promise<PlaneInfo[]>;
  ls(volume: string, path: string): Promise<DirEntryInfo[]>;
}
