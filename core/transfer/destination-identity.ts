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

/** The id in an id file: none when there is no file; `damaged` says what is wrong with one that is there. */
async function readId(path: string): Promise<{ id: string | null; damaged: string | null }> {
  let known: { id?: unknown } | null;
  try {
    known = await readJsonFile<{ id?: unknown }>(path);
  } catch {
    return { id: null, damaged: 'it is not JSON' };
  }
  if (known === null) return { id: null, damaged: null };
  if (typeof known.id === 'string' && known.id.length > 0) return { id: known.id, damaged: null };
  return { id: null, damaged: 'it has no "id"' };
}

/** A serve endpoint's id, or why it has none. */
export interface EndpointId {
  id: string | null;
  /** Why there is no id (for the serve log): its volumes are then known to sources by address only. */
  problem: string | null;
}

/**
 * The id of the serve endpoint over `root`, made on its first start. Without one (a read-only folder, a damaged id
 * file) its volumes are known by address only, as before there were ids, and `problem` says why.
 */
export async function endpointIdOf(root: string): Promise<EndpointId> {
  const path = join(root, ENDPOINT_ID_FILE);
  const byAddress = 'sources know its volumes by address only (one reached by two addresses counts as two destinations, each holding its masters)';
  const damaged = (why: string): EndpointId => ({ id: null, problem: `the endpoint id file ${path} is damaged (${why}): ${byAddress}; remove it and restart to make a new id` });
  const known = await readId(path);
  if (known.id) return { id: known.id, problem: null };
  if (known.damaged) return damaged(known.damaged);
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
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') return { id: null, problem: `cannot keep an endpoint id in ${root} (${code ?? (e as Error).message}): ${byAddress}` };
  } finally {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
  const landed = await readId(path);
  return landed.id ? { id: landed.id, problem: null } : damaged(landed.damaged ?? 'it holds no id that can be read');
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
