// Preloaded into a child process (NODE_OPTIONS=--import=…) so that its file system behaves like FAT, exFAT or a
// network mount without hard links: every link fails with EPERM, as link(2) does there. Nothing else changes.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const refuse = (existing, newPath) => Object.assign(new Error(`EPERM: operation not permitted, link '${existing}' -> '${newPath}'`), { code: 'EPERM', errno: -1, syscall: 'link', path: String(existing), dest: String(newPath) });
fs.promises.link = async (existing, newPath) => {
  throw refuse(existing, newPath);
};
fs.link = (existing, newPath, cb) => process.nextTick(cb, refuse(existing, newPath));
fs.linkSync = (existing, newPath) => {
  throw refuse(existing, newPath);
};
syncBuiltinESMExports();
