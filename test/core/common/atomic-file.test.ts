/**
 * Small state files written atomically: a writer killed between its temporary and the rename leaves
 * `<file>.<pid>.tmp`, which the next writer or remover of that file removes (a live writer's stays).
 */
import { describe, expect, it } from 'vitest';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { removeFile, writeFileAtomic } from '../../../core/common/atomic-file.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const temp = useTempDir('atomic');

describe('writeFileAtomic', () => {
  it('removes the temporaries of dead writers of the same file, and only those', async () => {
    const file = join(temp(), 'm.replacement.json');
    // A pid that surely ran and is gone: a child that has exited.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeFile(`${file}.${dead}.tmp`, '{"half');
    await writeFile(`${file}.${process.ppid}.tmp`, 'a live writer');
    await writeFile(join(temp(), `other.json.${dead}.tmp`), 'another file');
    await writeFileAtomic(file, '{"relationship":"m"}');
    expect(await readFile(file, 'utf8')).toBe('{"relationship":"m"}');
    expect((await readdir(temp())).sort()).toEqual(['m.replacement.json', `m.replacement.json.${process.ppid}.tmp`, `other.json.${dead}.tmp`].sort());
    // Removing the file (the state it held is over) takes a dead writer's temporary of it too.
    await writeFile(`${file}.${dead}.tmp`, '{"half');
    await removeFile(file);
    expect((await readdir(temp())).sort()).toEqual([`m.replacement.json.${process.ppid}.tmp`, `other.json.${dead}.tmp`].sort());
  });
});
