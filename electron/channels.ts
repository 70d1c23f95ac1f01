/**
 * The one typed channel table of Electron main and preload: one IPC channel per method of the contract
 * (core/api/methods.ts), plus the event channel (main → renderer) and the folder dialog (main only). The worker
 * protocol between main and the engine worker is here too.
 */
import { METHOD_LIST } from '../core/api/method-names.js';
import type { ConsoleEvent, MethodName, Reply } from '../core/api/index.js';

export type MethodChannel = `snapplane:${MethodName}`;

export function channelOf(method: MethodName): MethodChannel {
  return `snapplane:${method}`;
}

/** Every method channel main handles. */
export const METHOD_CHANNELS: readonly { method: MethodName; channel: MethodChannel }[] = METHOD_LIST.map((method) => ({ method, channel: channelOf(method) }));

/** Events the engine pushes (main → renderer). */
export const EVENT_CHANNEL = 'snapplane:event';
/** The native folder dialog (handled by main itself). */
export const PICK_FOLDER_CHANNEL = 'snapplane:pickFolder';

/** Main → engine worker. */
export type ToWorker = { type: 'call'; id: number; method: MethodName; args: unknown } | { type: 'close' };
/** Engine worker → main. */
export type FromWorker = { type: 'ready' } | { type: 'reply'; id: number; reply: Reply } | { type: 'event'; event: ConsoleEvent } | { type: 'closed' } | { type: 'fatal'; message: string };

/** What main gives the worker at start. */
export interface WorkerConfig {
  volumes: string[];
  /** Build and show the demo volume (when no volume was given). */
  demo: boolean;
  version: string;
}
