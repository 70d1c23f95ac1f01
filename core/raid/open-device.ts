/** Opens the device behind a volume path: a RAID-4 group folder or a single image file. */
import { stat } from 'node:fs/promises';
import type { BlockDevice } from '../device/block-device.js';
import { ImageFileDevice } from '../device/image-file-device.js';
import { Raid4Device } from './raid4-device.js';

/** A folder is a RAID-4 group; anything else an image file. */
export async function openDeviceAt(path: string, readOnly: boolean): Promise<BlockDevice> {
  let folder = false;
  try {
    folder = (await stat(path)).isDirectory();
  } catch {
    // missing: the image open reports it
  }
  return folder ? Raid4Device.open(path, { readOnly }) : ImageFileDevice.open(path, { readOnly });
}
