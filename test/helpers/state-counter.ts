/**
 * A process that adds one to the state file's job counter `count` times, each under the state lock, and prints
 * `landed <n>` after each (the state-lock test runs several at once, kills some, and counts what landed).
 */
import { StateStore } from '../../core/service/state-store.js';

const [path, count] = process.argv.slice(2);
const store = new StateStore(path!);
for (let i = 1; i <= Number(count); i++) {
  await store.update((s) => {
    s.nextJobId += 1;
  });
  process.stdout.write(`landed ${i}\n`);
}
