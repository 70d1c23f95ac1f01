/**
 * What a destination is, however its address is spelled: `localhost:7400/x` and `127.0.0.1:7400/x` are one
 * destination, and its source keeps one record of it, so one set of master holds (STREAM.md §5.4). A serve
 * endpoint has an id of its own, kept in its root; a volume it serves is `<endpoint id>/<name>`. A local volume is
 * its real path (symbolic links resolved).
 */
import { randomUUID } from 'node:crypto';
import { open, realpath, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { readJsonFile } from '../common/atomic-file.js';
import { linkIntoPlace } from '../common/link-into-place.js';

/** The file in a serve root that keeps the endpoint's id (volume names cannot start with a dot). */
export const ENDPOINT_ID_FILE = '.snapplane-endpoint.json';

async function readId(path: string): Promise<string | null> {
  const known = await readJsonFile<{ id?: unknown }>(path).catch(() => null);
  return known && typeof known.id === 'string' && known.id.length > 0 ? known.id : null;
}

/**
 * The id of the serve endpoint over `root`, made on its first start; null where the root cannot keep one (a
 * read-only folder): its volumes are then known by address only, as before there were ids.
 */
export async function endpointIdOf(root: string): Promise<string | null> {
  const path = join(root, ENDPOINT_ID_FILE);
  const known = await readId(path);
  if (known) return known;
  // Made beside and linked into place: two endpoints starting over one root at once agree on the one that landed.
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    // Durable before it is linked: a power loss must not leave an empty id file (no id from then on).
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify({ id: randomUUID() }));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await linkIntoPlace(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return null;
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
  return readId(path);
}

/** The identity of the volume `name` served by endpoint `endpointId`. */
export function servedIdentity(endpointId: string, name: string): string {
  return `${endpointId}/${name}`;
}

/** The identity of a local volume at `path` (which need not exist yet): its real path. */
export async function localIdentity(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return join(await realpath(dirname(path)).catch(() => dirname(path)), basename(path));
  }
}
