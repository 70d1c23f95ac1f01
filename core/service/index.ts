/** The service facade: front ends (CLI, Electron main, web host) reach the engine only through this module. */
export { SnapplaneService } from './service.js';
export { parseVolumeRef, resolveVolumeRef } from './volume-names.js';
export type { VolumeRef, ServiceOptions, ProgressCallback } from './service.js';
export type { MirrorSettings } from './replication.js';
export { SnapplaneError, asIoError, isSnapplaneError } from '../common/errors.js';
export type { ErrorCode } from '../common/errors.js';
export { parseSize, formatBytes, BLOCK_SIZE } from '../common/units.js';
export type * from "../api/types.js";
export { parseInterval, parseAt, cadenceOf } from '../jobs/cadence.js';
export type { Cadence } from '../jobs/cadence.js';
export type { JobRecord, ScheduleJobRecord, TransferJobRecord } from './state-store.js';
export { snapplaneHome } from './state-store.js';
export type { SendOptions } from '../stream/send.js';
export { decodeResumeToken } from '../stream/receive.js';
export { ConsoleHost } from './console-host.js';
export type { ConsoleHostOptions } from './console-host.js';
export type { Router, Reply } from './router.js';
export { buildDemoVolume, ensureDemoVolume } from './demo.js';
